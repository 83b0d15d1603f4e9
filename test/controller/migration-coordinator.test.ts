import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MigrationReport } from '../../src/control/migration-control.ts';
import type { Effects, Planned } from '../../src/controller/effects.ts';
import {
  INITIAL_COORDINATOR, planMigrations, restoreMigrations, type CoordinatorInput, type CoordinatorState, type CoordinatorWorld, type StartMigration,
} from '../../src/controller/migration-coordinator.ts';
import { DEFAULT_MIGRATION_TIMEOUTS, migrationViewOf, type MigrationRun } from '../../src/controller/migration-run.ts';
import type { MeasuredCutover } from '../../src/controller/migration-spans.ts';
import type { LinkRecord, VmRecord } from '../../src/controller/store/records.ts';

/**
 * The coordinator as a pure function, with a manual clock (`now`): every
 * transition, every timeout, the commit point and what may follow it.
 */

const T = DEFAULT_MIGRATION_TIMEOUTS;
const V1 = '02:00:00:00:00:01';
const V2 = '02:00:00:00:00:02';

/** A world the test changes as it goes: who is connected, who runs the desired rules, which links are up. */
class World implements CoordinatorWorld {
  connected = new Set(['hub', 'h1', 'h2', 'h3']);
  lagging = new Set<string>();
  up = new Set<string>();
  links: LinkRecord[] = [];
  vms = new Map<string, VmRecord>([
    [V1, { mac: V1, name: 'v1', ip: '10.0.0.1', host: 'h1', state: 'running', source: 'deployment', updatedMs: 0 }],
    [V2, { mac: V2, name: 'v2', ip: '10.0.0.2', host: 'h1', state: 'running', source: 'deployment', updatedMs: 0 }],
  ]);

  /** What the driver would have measured of a commit (migration-spans.ts). */
  measuredOf = new Map<string, MeasuredCutover>();

  rulesConverged(host: string): boolean { return !this.lagging.has(host); }
  measured(id: string): MeasuredCutover | undefined { return this.measuredOf.get(id); }
  linkUp(a: string, b: string): boolean { return this.up.has([a, b].sort().join('|')); }
  vm(mac: string): VmRecord | undefined { return this.vms.get(mac); }
}

class Bench {
  state: CoordinatorState = INITIAL_COORDINATOR;
  world = new World();
  now = 1_000_000;
  last: Effects | undefined;
  /** Every pass's effects, in order. */
  readonly passes: Effects[] = [];

  run(input: CoordinatorInput): Effects {
    return this.#take(planMigrations(this.state, input, this.world, T, this.now));
  }

  restore(runs: MigrationRun[]): Effects {
    return this.#take(restoreMigrations(runs, this.world, T, this.now));
  }

  #take(p: Planned<CoordinatorState>): Effects {
    this.state = p.state;
    this.last = p.effects;
    this.passes.push(p.effects);
    // What the applier would do to the world: VM and link writes.
    for (const w of p.effects.writes) {
      if (w.op === 'upsert-vm') this.world.vms.set(w.vm.mac, w.vm);
      if (w.op === 'put-link') this.world.links = [...this.world.links.filter((l) => !(l.a === w.link.a && l.b === w.link.b)), { ...w.link, createdMs: w.atMs }];
      if (w.op === 'delete-link') this.world.links = this.world.links.filter((l) => !(l.a === w.a && l.b === w.b));
    }
    return p.effects;
  }

  tick(ms = 0): Effects {
    this.now += ms;
    return this.run({ type: 'tick' });
  }

  report(host: string, id: string, state: MigrationReport['state'], extra: Partial<MigrationReport> = {}): Effects {
    return this.run({ type: 'report', host, report: { type: 'migration', id, state, ...extra } });
  }

  runOf(id = 'm1'): MigrationRun {
    return this.state.runs.get(id)!;
  }
}

const sent = (e: Effects | undefined): string[] => (e?.messages ?? []).map((m) => `${m.host}:${m.message.type}`);
const rows = (e: Effects | undefined): string[] => (e?.writes ?? []).flatMap((w) => (w.op === 'migration-step' ? [`${w.step.step}/${w.step.state}`] : []));
const ADDRESS = { host: '10.1.0.2', port: 9002 };
const progress = (phase: string, iteration: number, pagesLeft: number) => ({ phase, iteration, bytesSent: 1000 * iteration, pagesLeft, ramPages: 1000, dirtyRate: 50, etaMs: 400, elapsedMs: 100 * iteration });

function request(id = 'm1', mac = V1, to = 'h2', extra: Partial<StartMigration> = {}): StartMigration {
  return { id, vm: { mac, port: `tap-${mac.slice(-2)}`, name: `v${mac.slice(-1)}` }, from: 'h1', to, rule: 'smart-stop', deadlineMs: null, requestedBy: 'operator:admin', ...extra };
}

/** A bench with m1 (v1 h1→h2) started, prepared, link up, and the engine at work. */
function transferring(): Bench {
  const b = new Bench();
  b.run({ type: 'start', migration: request() });
  b.world.up.add('h1|h2');
  b.report('h2', 'm1', 'prepared', { address: ADDRESS });
  assert.equal(b.runOf().step, 'transfer');
  return b;
}

/** …and paused, ready, committed (the cutover rules not yet acknowledged by h3). */
function committed(): Bench {
  const b = transferring();
  b.report('h1', 'm1', 'paused');
  b.world.lagging = new Set(['hub', 'h1', 'h2', 'h3']);
  b.report('h2', 'm1', 'ready');
  assert.equal(b.runOf().step, 'commit');
  return b;
}

describe('migration coordinator: the steps', () => {
  it('start: the link source↔destination, the VM pinned migrating, migrate-prepare to the destination, a decision and the record', () => {
    const b = new Bench();
    const e = b.run({ type: 'start', migration: request('m1', V1, 'h2', { rule: 'time-bound', deadlineMs: 30_000 }) });
    assert.deepEqual(sent(e), ['h2:migrate-prepare']);
    const prep = e.messages[0]!.message;
    assert.ok(prep.type === 'migrate-prepare' && prep.from === 'h1' && prep.vm.mac === V1 && prep.vm.port === 'tap-01');
    assert.deepEqual(e.writes.map((w) => w.op), ['migration', 'migration-step', 'put-link', 'upsert-vm']);
    assert.deepEqual(b.world.links.map((l) => [l.a, l.b, l.kind, l.requestedBy]), [['h1', 'h2', 'fast-path', 'migration:m1']]);
    assert.deepEqual([b.world.vms.get(V1)!.host, b.world.vms.get(V1)!.state], ['h1', 'migrating']);
    assert.ok(e.reconcile !== undefined, 'the link is pushed');
    assert.ok(e.events.some((x) => x.kind === 'decision' && x.decision === 'migration-started'));
    const view = migrationViewOf(b.runOf());
    assert.deepEqual([view.step, view.phase, view.state, view.rule, view.progress], ['prepare', 'prepare', 'running', 'time-bound', 0]);
  });

  it('prepare → transfer once the destination is prepared AND the link is up; migrate-start carries the channel, the rule and the deadline', () => {
    const b = new Bench();
    b.run({ type: 'start', migration: request('m1', V1, 'h2', { rule: 'time-bound', deadlineMs: 30_000 }) });
    assert.deepEqual(sent(b.report('h2', 'm1', 'prepared', { address: ADDRESS })), [], 'the link is not up yet');
    assert.equal(b.runOf().step, 'prepare');
    b.world.up.add('h1|h2');
    const e = b.tick(100);
    assert.deepEqual(sent(e), ['h1:migrate-start']);
    assert.deepEqual(e.messages[0]!.message, { type: 'migrate-start', id: 'm1', vm: { mac: V1, port: 'tap-01', name: 'v1' }, to: 'h2', address: ADDRESS, rule: 'time-bound', deadlineMs: 30_000 });
    assert.deepEqual(rows(e), ['start/sent']);
  });

  it('progress reports move the phase and the figures; a row per phase', () => {
    const b = transferring();
    const e1 = b.report('h1', 'm1', 'progress', { progress: progress('disk', 0, 1000) });
    assert.deepEqual(rows(e1), ['phase/disk']);
    b.report('h1', 'm1', 'progress', { progress: progress('memory', 1, 500) });
    const e3 = b.report('h1', 'm1', 'progress', { progress: progress('memory', 2, 100) });
    assert.deepEqual(rows(e3), [], 'same phase: no new row');
    const v = migrationViewOf(b.runOf());
    assert.deepEqual([v.phase, v.iteration, v.pagesLeft, v.dirtyRate, v.bytesSent, v.etaMs], ['memory', 2, 100, 50, 2000, 400]);
    assert.equal(v.progress, 0.81);
    const ev = e3.events.find((x) => x.kind === 'event' && x.type === 'migration-changed');
    assert.ok(ev, 'migration-changed with the progress');
  });

  it('paused → ready: the commit point, durably, with the VM on the destination and a reconcile — and no migrate-commit in that pass', () => {
    const b = transferring();
    assert.equal(b.report('h1', 'm1', 'paused').writes.filter((w) => w.op === 'migration-step').length, 1);
    assert.equal(migrationViewOf(b.runOf()).phase, 'stop-and-copy');
    const e = b.report('h2', 'm1', 'ready');
    assert.deepEqual(sent(e), []);
    const first = e.writes[0]!;
    assert.ok(first.op === 'migration' && first.durable === true && first.migration.run?.step === 'commit');
    assert.deepEqual(rows(e), ['ready/ok', 'commit/ok']);
    assert.deepEqual([b.world.vms.get(V1)!.host, b.world.vms.get(V1)!.state], ['h2', 'migrating']);
    assert.match(e.reconcile ?? '', /cutover/);
  });

  it('the cutover waits until every connected daemon runs the new rules, then migrate-commit goes to the source, and to the destination once the source released', () => {
    const b = committed();
    assert.deepEqual(sent(b.tick(10)), []);
    b.world.lagging = new Set(['h3']);
    assert.deepEqual(sent(b.tick(10)), [], 'h3 has not acknowledged');
    b.world.lagging.clear();
    const e = b.tick(10);
    assert.deepEqual(sent(e), ['h1:migrate-commit']);
    assert.deepEqual(rows(e), ['acknowledged/ok', 'commit-sent/source']);
    assert.deepEqual(sent(b.tick(1)), [], 'the destination waits for the source to flush what it held');
    const r = b.report('h1', 'm1', 'released');
    assert.deepEqual(sent(r), ['h2:migrate-commit']);
    assert.deepEqual(rows(r), ['released/ok', 'commit-sent/destination']);
    const run = b.runOf();
    assert.equal(run.step, 'cutover');
    assert.equal(migrationViewOf(run).cutover?.timeMs, run.acknowledgedMs! - run.pausedMs!);
  });

  it('the cutover spans: the daemons\' moments from their reports, the commit\'s from the driver, shown as offsets from the source\'s pause', () => {
    const b = transferring();
    const p = 5_000_000;
    b.report('h1', 'm1', 'paused', { timing: { pausedAt: p } });
    b.now += 7;
    b.world.lagging = new Set(['hub', 'h1', 'h3']);
    b.report('h2', 'm1', 'ready', { timing: { appliedAt: p + 4 } });
    const readyAt = b.now;
    b.world.measuredOf.set('m1', { committedAt: readyAt + 2, pushedAt: readyAt + 3, acks: { h1: readyAt + 9 } });
    assert.equal(migrationViewOf(b.runOf()).cutover?.spans?.committed, null, 'the driver\'s moments are taken as the run leaves the commit step');
    b.world.lagging.clear();
    b.world.measuredOf.set('m1', { committedAt: readyAt + 2, pushedAt: readyAt + 3, acks: { h1: readyAt + 9, hub: readyAt + 11, h3: readyAt + 12 } });
    b.tick(12);
    b.report('h1', 'm1', 'released', { timing: { pausedAt: p, finalSentAt: p + 1 } });
    b.report('h2', 'm1', 'resumed', { timing: { appliedAt: p + 4, resumedAt: p + 30 } });
    const pausedHeard = b.runOf().pausedMs! - p;
    const at = (t: number): number => t - p;
    assert.deepEqual(migrationViewOf(b.runOf()).cutover?.spans, {
      pausedHeard, finalSent: 1, applied: 4, ready: at(readyAt), committed: at(readyAt + 2), pushed: at(readyAt + 3),
      acks: { h1: at(readyAt + 9), hub: at(readyAt + 11), h3: at(readyAt + 12) }, acknowledged: at(readyAt + 12), resumed: 30,
    });
    b.report('h2', 'm1', 'resumed', { timing: { appliedAt: p + 99, resumedAt: p + 99 } });
    assert.equal(migrationViewOf(b.runOf()).cutover?.spans?.resumed, 30, 'a repeated report changes no moment');
  });

  it('a daemon that does not acknowledge in ackMs does not hold the cutover: commit goes anyway, with the laggard named', () => {
    const b = committed();
    b.world.lagging = new Set(['h3']);
    assert.deepEqual(sent(b.tick(T.ackMs)), []);
    const e = b.tick(1);
    assert.deepEqual(sent(e), ['h1:migrate-commit']);
    assert.deepEqual(rows(e)[0], 'acknowledged/timeout');
    assert.deepEqual(sent(b.tick(T.resendMs)), ['h1:migrate-commit', 'h2:migrate-commit'], 'a source that does not answer does not hold the destination back past resendMs');
  });

  it('resumed + released → done with the cutover figures; the link goes after the grace period', () => {
    const b = committed();
    b.world.lagging.clear();
    b.tick(5);
    b.report('h1', 'm1', 'released', { stats: { held: 9, flushed: 8, relayed: 3, lost: 1, announced: 0 } });
    assert.equal(b.runOf().step, 'cutover');
    const e = b.report('h2', 'm1', 'resumed', { stats: { held: 1, flushed: 1, relayed: 0, lost: 0, announced: 2 } });
    assert.equal(b.runOf().step, 'cleanup');
    assert.deepEqual(rows(e), ['resumed/ok', 'done/ok']);
    const v = migrationViewOf(b.runOf());
    assert.deepEqual([v.state, v.phase, v.progress], ['succeeded', 'done', 1]);
    assert.deepEqual({ ...v.cutover, timeMs: null, pausedAt: null, acknowledgedAt: null, spans: null }, { timeMs: null, pausedAt: null, acknowledgedAt: null, held: 10, flushed: 9, relayed: 3, lost: 1, announced: 2, spans: null });
    assert.deepEqual([b.world.vms.get(V1)!.host, b.world.vms.get(V1)!.state], ['h2', 'running']);
    assert.equal(b.world.links.length, 1, 'the link stays for the grace period');
    b.tick(T.cleanupGraceMs - 1);
    assert.equal(b.world.links.length, 1);
    const c = b.tick(1);
    assert.deepEqual(b.world.links, []);
    assert.deepEqual(rows(c), ['cleanup/ok']);
    assert.equal(b.runOf().step, 'done');
  });

  it('migrate-commit is re-sent (idempotent) to a side that has not answered, and again when it reconnects', () => {
    const b = committed();
    b.world.lagging.clear();
    b.tick(1);
    assert.deepEqual(sent(b.report('h1', 'm1', 'released')), ['h2:migrate-commit']);
    assert.deepEqual(sent(b.tick(T.resendMs - 1)), []);
    assert.deepEqual(sent(b.tick(1)), ['h2:migrate-commit']);
    b.world.connected.delete('h2');
    assert.deepEqual(sent(b.tick(T.resendMs)), []);
    b.world.connected.add('h2');
    b.world.lagging.add('h2');
    assert.deepEqual(sent(b.run({ type: 'connected', host: 'h2' })), [], 'h2 first runs the cutover rules');
    b.world.lagging.clear();
    assert.deepEqual(sent(b.tick(1)), ['h2:migrate-commit']);
    assert.deepEqual(rows(b.report('h1', 'm1', 'released')), [], 'a second released changes nothing');
  });

  it('never a migrate-commit before the pass that wrote the commit point, over a whole run', () => {
    const b = committed();
    b.world.lagging.clear();
    b.tick(1);
    const commitPass = b.passes.findIndex((e) => e.writes.some((w) => w.op === 'migration' && w.durable === true));
    const firstCommit = b.passes.findIndex((e) => e.messages.some((m) => m.message.type === 'migrate-commit'));
    assert.ok(commitPass >= 0 && firstCommit > commitPass);
  });
});

describe('migration coordinator: aborts before the commit point', () => {
  it('a prepare timeout aborts: migrate-abort to the destination, to the source once the destination answered; the VM runs on the source', () => {
    const b = new Bench();
    b.run({ type: 'start', migration: request() });
    assert.deepEqual(sent(b.tick(T.prepareMs)), []);
    const e = b.tick(1);
    assert.deepEqual(sent(e), ['h2:migrate-abort']);
    assert.match(b.runOf().error ?? '', /destination h2 not prepared after 10000 ms/);
    assert.deepEqual([b.world.vms.get(V1)!.host, b.world.vms.get(V1)!.state], ['h1', 'running']);
    assert.deepEqual(sent(b.report('h2', 'm1', 'aborted')), ['h1:migrate-abort']);
    const done = b.report('h1', 'm1', 'aborted');
    assert.equal(b.runOf().step, 'aborted');
    assert.deepEqual(rows(done), ['aborted/source', 'aborted/failed']);
    assert.deepEqual(b.world.links, [], 'the migration link is gone');
    assert.deepEqual(migrationViewOf(b.runOf()).state, 'failed');
  });

  it('a link that does not come up is a prepare timeout too', () => {
    const b = new Bench();
    b.run({ type: 'start', migration: request() });
    b.report('h2', 'm1', 'prepared', { address: ADDRESS });
    b.tick(T.prepareMs + 1);
    assert.match(b.runOf().error ?? '', /link h1–h2 not up/);
  });

  it('no progress from the source for progressMs aborts', () => {
    const b = transferring();
    b.report('h1', 'm1', 'progress', { progress: progress('memory', 1, 10) });
    assert.equal(b.tick(T.progressMs).messages.length, 0);
    assert.deepEqual(sent(b.tick(1)), ['h2:migrate-abort']);
  });

  it('a failed, aborted or unknown report before the commit point aborts', () => {
    for (const [host, state] of [['h1', 'failed'], ['h2', 'failed'], ['h2', 'unknown'], ['h1', 'aborted']] as const) {
      const b = transferring();
      const e = b.report(host, 'm1', state, { error: { code: 'X', message: 'boom' } });
      assert.equal(b.runOf().step, 'aborting', `${host} ${state}`);
      assert.deepEqual(sent(e), ['h2:migrate-abort']);
      assert.match(b.runOf().error ?? '', /boom/);
    }
  });

  it('the source is told to abort anyway when the destination does not answer in abortWaitMs, or is away', () => {
    const b = transferring();
    b.report('h2', 'm1', 'failed');
    assert.deepEqual(sent(b.tick(T.abortWaitMs)), ['h2:migrate-abort'], 'the destination is asked again (resendMs)');
    assert.deepEqual(sent(b.tick(1)), ['h1:migrate-abort']);
    const c = transferring();
    c.world.connected.delete('h2');
    assert.deepEqual(sent(c.tick(T.progressMs + 1)), ['h1:migrate-abort']);
    c.report('h1', 'm1', 'aborted');
    assert.equal(c.runOf().step, 'aborted', 'final without the destination (it can never resume: no commit)');
    c.world.connected.add('h2');
    assert.deepEqual(sent(c.run({ type: 'connected', host: 'h2' })), ['h2:migrate-abort'], 'told when it comes back');
    c.report('h2', 'm1', 'aborted');
    assert.equal(c.runOf().abort?.destDone, true);
  });

  it('cancel before the commit point aborts with outcome cancelled', () => {
    const b = transferring();
    const e = b.run({ type: 'cancel', id: 'm1', actor: 'admin' });
    assert.deepEqual(sent(e), ['h2:migrate-abort']);
    b.report('h2', 'm1', 'aborted');
    b.report('h1', 'm1', 'aborted');
    const v = migrationViewOf(b.runOf());
    assert.deepEqual([v.state, v.step, v.error], ['cancelled', 'aborted', 'cancelled by admin']);
  });

  it('after the commit point nothing aborts: a failed destination is an error for the operator, not an abort', () => {
    const b = committed();
    b.world.lagging.clear();
    b.tick(1);
    const e = b.report('h2', 'm1', 'failed', { error: { code: 'RESUME', message: 'no' } });
    assert.deepEqual(sent(e), []);
    assert.match(b.runOf().error ?? '', /after the commit point/);
    assert.equal(b.run({ type: 'cancel', id: 'm1', actor: 'admin' }).messages.length, 0);
  });
});

describe('migration coordinator: lost reports, stalls, restarts', () => {
  it('no ready after the pause: migrate-query to both; a destination answering ready is committed', () => {
    const b = transferring();
    b.report('h1', 'm1', 'paused');
    assert.deepEqual(sent(b.tick(T.readyMs)), []);
    assert.deepEqual(sent(b.tick(1)), ['h2:migrate-query', 'h1:migrate-query']);
    b.report('h1', 'm1', 'paused');
    b.report('h2', 'm1', 'ready');
    assert.equal(b.runOf().step, 'commit');
  });

  it('…and one answering unknown, or no answer in queryMs, is aborted', () => {
    const b = transferring();
    b.report('h1', 'm1', 'paused');
    b.tick(T.readyMs + 1);
    b.report('h2', 'm1', 'unknown');
    assert.equal(b.runOf().step, 'aborting');
    const c = transferring();
    c.report('h1', 'm1', 'paused');
    c.tick(T.readyMs + 1);
    assert.deepEqual(sent(c.tick(T.queryMs + 1)), ['h2:migrate-abort']);
    assert.match(c.runOf().error ?? '', /no ready destination after migrate-query/);
  });

  it('a daemon reconnecting during the transfer gets both sides queried; answers that settle nothing let it go on', () => {
    const b = transferring();
    assert.deepEqual(sent(b.run({ type: 'connected', host: 'h2' })), ['h2:migrate-query', 'h1:migrate-query']);
    b.report('h2', 'm1', 'prepared', { address: ADDRESS });
    b.report('h1', 'm1', 'progress', { progress: progress('memory', 3, 5) });
    assert.equal(b.runOf().query, null);
    assert.equal(b.runOf().step, 'transfer');
  });

  it('a stalled source: the destination is asked; ready → commit, anything else → abort both', () => {
    const b = transferring();
    assert.deepEqual(sent(b.report('h1', 'm1', 'stalled', { error: { code: 'E', message: 'engine died' } })), ['h2:migrate-query']);
    b.report('h2', 'm1', 'ready');
    assert.equal(b.runOf().step, 'commit');
    const c = transferring();
    c.report('h1', 'm1', 'paused');
    c.report('h1', 'm1', 'stalled');
    c.report('h2', 'm1', 'progress');
    assert.equal(c.runOf().step, 'aborting');
    assert.match(c.runOf().error ?? '', /stalled after the pause and the destination is not ready/);
  });

  it('a restart before the commit point aborts (sent as daemons come back); after it the cutover is driven again', () => {
    const b = transferring();
    b.report('h1', 'm1', 'paused');
    const before = b.runOf();
    const c = committed();
    c.world.lagging.clear();
    c.tick(1);
    const after = c.runOf();

    const r = new Bench();
    r.world.connected.clear();
    const e = r.restore([before, { ...after, id: 'm2', vm: { ...after.vm, mac: V2 } }]);
    assert.deepEqual(sent(e), [], 'nobody is connected yet');
    assert.equal(r.runOf('m1').step, 'aborting');
    assert.match(r.runOf('m1').error ?? '', /restarted before the commit point/);
    assert.equal(r.runOf('m2').step, 'commit');
    assert.ok(e.reconcile !== undefined);
    r.world.connected = new Set(['h2']);
    r.world.lagging = new Set(['h2']);
    const back = r.run({ type: 'connected', host: 'h2' });
    assert.deepEqual(sent(back), ['h2:migrate-abort'], 'm1: abort to the destination; m2: h2 first runs the cutover rules');
    r.world.lagging.clear();
    assert.deepEqual(sent(r.tick(1)), [], 'm2: the source is not back yet: its held frames go first, so the destination waits');
    r.world.connected.add('h1');
    assert.deepEqual(sent(r.run({ type: 'connected', host: 'h1' })), ['h1:migrate-commit'], 'm1: the destination has not answered yet (abortWaitMs)');
    assert.deepEqual(sent(r.report('h1', 'm2', 'released')), ['h2:migrate-commit'], 'm2: the destination after the source released');
    r.report('h2', 'm1', 'aborted');
    assert.deepEqual(sent(r.last), ['h1:migrate-abort']);
  });

  it('after a restart past the commit point, a source that stays away is given up on after resendMs: the destination is committed', () => {
    const c = committed();
    c.world.lagging.clear();
    c.tick(1);
    const r = new Bench();
    r.world.connected = new Set(['h2']);
    r.restore([c.runOf()]);
    r.run({ type: 'connected', host: 'h2' });
    assert.deepEqual(sent(r.tick(T.resendMs - 1)), []);
    assert.deepEqual(sent(r.tick(1)), ['h2:migrate-commit']);
  });
});

describe('migration coordinator: two at once, and links', () => {
  it('two migrations run independently; the second on the same host pair inherits the link from the first', () => {
    const b = new Bench();
    b.run({ type: 'start', migration: request('m1', V1, 'h2') });
    b.run({ type: 'start', migration: request('m2', V2, 'h2') });
    assert.equal(b.runOf('m1').linkOwner, 'migration');
    assert.equal(b.runOf('m2').linkOwner, 'other');
    b.world.up.add('h1|h2');
    b.report('h2', 'm1', 'prepared', { address: ADDRESS });
    b.report('h2', 'm2', 'prepared', { address: ADDRESS });
    assert.deepEqual([b.runOf('m1').step, b.runOf('m2').step], ['transfer', 'transfer']);
    b.report('h1', 'm1', 'failed');
    b.report('h2', 'm1', 'aborted');
    b.report('h1', 'm1', 'aborted');
    assert.equal(b.runOf('m1').step, 'aborted');
    assert.equal(b.runOf('m2').step, 'transfer', 'm2 goes on');
    assert.deepEqual(b.world.links.map((l) => l.requestedBy), ['migration:m2'], 'the link passed to m2');
    assert.equal(b.runOf('m2').linkOwner, 'migration');
  });

  it('an adaptation link is taken for the migration and handed back at cleanup; an operator link is left alone', () => {
    const b = new Bench();
    b.world.links = [{ a: 'h1', b: 'h2', kind: 'fast-path', requestedBy: 'adaptation', reason: 'traffic', createdMs: 0 }];
    b.run({ type: 'start', migration: request() });
    assert.deepEqual(b.world.links.map((l) => l.requestedBy), ['migration:m1']);
    b.run({ type: 'cancel', id: 'm1', actor: 'admin' });
    b.report('h2', 'm1', 'aborted');
    b.report('h1', 'm1', 'aborted');
    assert.deepEqual(b.world.links.map((l) => l.requestedBy), ['adaptation']);
    const c = new Bench();
    c.world.links = [{ a: 'h1', b: 'h2', kind: 'fast-path', requestedBy: 'operator:admin', reason: 'by hand', createdMs: 0 }];
    const e = c.run({ type: 'start', migration: request() });
    assert.ok(!e.writes.some((w) => w.op === 'put-link'));
    assert.equal(c.runOf().linkOwner, 'other');
  });

  it('reports of unknown migrations or from a third host change nothing', () => {
    const b = transferring();
    assert.deepEqual(b.report('h1', 'nope', 'ready').writes, []);
    assert.deepEqual(b.report('h3', 'm1', 'ready').writes, []);
    assert.equal(b.runOf().step, 'transfer');
  });
});

describe('migration coordinator: a query that settles nothing', () => {
  it('paused, queried, the destination still receiving: another readyMs before the next query', () => {
    const b = transferring();
    b.report('h1', 'm1', 'paused');
    b.tick(T.readyMs + 1);
    b.report('h1', 'm1', 'paused');
    b.report('h2', 'm1', 'progress');
    assert.equal(b.runOf().query, null);
    assert.deepEqual(sent(b.tick(T.readyMs)), []);
    assert.deepEqual(sent(b.tick(1)), ['h2:migrate-query', 'h1:migrate-query']);
  });
});
