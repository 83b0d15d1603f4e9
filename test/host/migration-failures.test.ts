/**
 * Live migration under failure, the whole stack in one process (as
 * live-migration.test.ts): the real controller and its coordinator (SQLite
 * in a temporary directory), three real daemons on TCP, each with a real
 * controller agent driving a real migration agent over mutual-TLS migration
 * channels; VM v1 (a model guest) moves from h1 to h2 while v2, on the hub,
 * sends it numbered frames.
 *
 * Each daemon's control channel goes through a TCP relay of its own, so a
 * failure is abrupt: cutting a relay resets both of its sockets at once —
 * nothing more reaches the controller or the daemon, as with a kill -9 of a
 * process at the far end. The controller is "killed" by cutting every relay
 * first (synchronously, at the chosen instant) and closing it after; a new
 * controller is then started on the same database and the relays re-pointed
 * to it. (In-process rather than a controller process: the coordinator
 * writes SQLite synchronously in each pass, so what the store holds at the
 * cut is what a kill -9 at that instant would leave.)
 *
 *   1. the destination dies in the final copy (right after the source's
 *      `paused`): aborted before the commit point; the source resumes only
 *      after migrate-abort; every frame reaches v1 at h1, in order.
 *   2a. the controller dies at the source's `paused` (before the commit
 *      point): the restarted controller aborts; v1 runs on h1.
 *   2b. the controller dies as the source gets migrate-commit (after the
 *      commit point): the restarted controller drives the cutover to the
 *      end; v1 runs on h2 only.
 *   3. the destination's `ready` is lost once: the coordinator asks with
 *      migrate-query, commits; v1 runs on h2 only.
 *
 * In every case the two copies are sampled on every report, every command
 * and every poll: never both running; at the end exactly one.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import type { MigrationCommand, MigrationControl, MigrationReport } from '../../src/control/migration-control.ts';
import type { MigrationView } from '../../src/controller/api-views.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startController, type ControllerHandle } from '../../src/controller/runtime.ts';
import { openStore } from '../../src/controller/store/store.ts';
import type { MigrationRecord, VmRecord } from '../../src/controller/store/records.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MigrationAgent } from '../../src/host/migration-agent.ts';
import { createModelGuest, ModelGuestVm } from '../../src/host/vm-runtime.ts';
import type { Guest } from '../../src/migration/guest.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { ResetRelay as Relay } from '../helpers/reset-relay.ts';
import { waitFor } from '../helpers/wait.ts';
import { startMigratingHost, TWO_HOSTS_AND_HUB } from './fixtures/two-hosts-and-hub.ts';

const logger = silentLogger();
const clock = realClock;
const V1 = parseMac('02:00:00:00:00:01');
const V2 = parseMac('02:00:00:00:00:02');
const V1_MAC = '02:00:00:00:00:01';

const DEPLOYMENT = parseDeployment(TWO_HOSTS_AND_HUB('failures'), 'failures.yaml');

/** Short enough that a lost report or a dead side is settled within the test's waits. */
const TIMEOUTS = { readyMs: 1500, queryMs: 1500, resendMs: 500, abortWaitMs: 500, ackMs: 2000, cleanupGraceMs: 200 };

interface Host {
  id: string;
  daemon: Daemon;
  migrations: MigrationAgent;
  agent: ControllerAgent;
  relay: Relay;
  /** Called with each report before the controller agent sees it; return false to drop it (lost on the way). */
  onReport?: (r: MigrationReport) => boolean;
  /** Called with each command before the migration agent gets it; return false to withhold it. */
  onCommand?: (c: MigrationCommand) => boolean;
  commands: MigrationCommand[];
  reports: MigrationReport[];
}

interface Stack {
  dir: string;
  controller: ControllerHandle;
  hub: Host;
  h1: Host;
  h2: Host;
  guest: Guest;
  gotH1: number[];
  gotH2: number[];
  /** Frames v2 sent so far (1..sent). */
  sent(): number;
  stopTraffic(): void;
  /** Look at both copies now: throws if both run; checks that the source resumed only after migrate-abort. */
  sample(): void;
  samples: number;
  /** Samples that saw the source's guest paused after its `paused` report (and no copy running). */
  pausedSamples: number;
  /** Every command and report, in the order they happened: `h1>migrate-commit`, `h2<ready`. */
  events: string[];
  /** The source reported `paused` (its guest is stopped). */
  sourcePaused: boolean;
  waitFor<T>(check: () => T, what: string, timeoutMs?: number): Promise<NonNullable<T>>;
  /** Kill the controller: every relay cut at once, then the controller closed. */
  killController(): Promise<void>;
  /** A new controller on the same database; the relays point at it. */
  restartController(): Promise<void>;
  destRunning(): boolean;
  sourceRunning(): boolean;
  migrationOver(id: string, timeoutMs?: number): Promise<MigrationView>;
}

async function startStack(t: TestContext, name: string): Promise<Stack> {
  const pki = testPki();
  const dir = mkdtempSync(join(tmpdir(), `vnet-${name}-`));
  const startCtl = async (): Promise<ControllerHandle> => startController({ logger, registry: new Registry(), clock }, {
    deployment: DEPLOYMENT,
    dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } },
    pingIntervalMs: 60_000,
    migration: TIMEOUTS,
  });
  let controller = await startCtl();
  let controllerClosed = false;
  const hosts: Host[] = [];
  const guest = createModelGuest('v1', { profile: 'idle', memoryMiB: 4, diskMiB: 1 }, clock.now());
  let ticker: NodeJS.Timeout | undefined;
  t.after(async () => {
    clearInterval(ticker);
    for (const h of hosts) await h.agent.close();
    for (const h of hosts) await h.migrations.close();
    if (!controllerClosed) await controller.close();
    for (const h of hosts) await h.relay.close();
    for (const h of hosts) await h.daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let abortAtSource = false;
  const violations: string[] = [];
  const s = { samples: 0, pausedSamples: 0, events: [], sourcePaused: false } as unknown as Stack;
  const destRunning = (): boolean => s.h2?.migrations.vm('v1')?.guest?.runState === 'running';
  const sourceRunning = (): boolean => guest.runState === 'running';
  const sample = (): void => {
    s.samples++;
    const src = sourceRunning();
    const dst = destRunning();
    if (s.sourcePaused && !src && !abortAtSource) s.pausedSamples++;
    if (src && dst) violations.push(`both copies run (sample ${s.samples})`);
    if (src && s.sourcePaused && !abortAtSource) violations.push(`the source runs again without migrate-abort (sample ${s.samples})`);
    if (violations.length > 0) throw new Error(violations.join('; '));
  };

  const host = async (id: string, hub?: Daemon): Promise<Host> => {
    const { daemon, migrations, creds } = await startMigratingHost(pki, id, hub);
    const relay = new Relay(controller.controlPort);
    await relay.listen();
    const h = { id, daemon, migrations, relay, commands: [], reports: [] } as unknown as Host;
    // What the controller agent drives: the real migration agent, seen (and, when a test says so, interfered with) on the way.
    const control: MigrationControl = {
      handle: (c) => {
        h.commands.push(c);
        s.events.push(`${id}>${c.type}`);
        if (id === 'h1' && c.type === 'migrate-abort') abortAtSource = true;
        sample();
        if (h.onCommand !== undefined && !h.onCommand(c)) return;
        migrations.handle(c);
        sample();
      },
      onReport: (handler) => migrations.onReport((r) => {
        h.reports.push(r);
        s.events.push(`${id}<${r.state}`);
        if (id === 'h1' && r.state === 'paused') s.sourcePaused = true;
        sample();
        if (h.onReport !== undefined && !h.onReport(r)) return;
        handler(r);
      }),
    };
    h.agent = new ControllerAgent({ daemon, logger, clock, migrations: control }, {
      url: `wss://127.0.0.1:${relay.port}/control`, tls: { ca: pki.ca, cert: creds.cert, key: creds.key }, backoff: { initialMs: 20, maxMs: 100 },
    });
    hosts.push(h);
    return h;
  };
  const hub = await host('hub');
  const h1 = await host('h1', hub.daemon);
  const h2 = await host('h2', hub.daemon);

  const gotH1: number[] = [];
  const atH1 = new MemoryPort({ name: 'v1', mac: V1 });
  atH1.onDeliver((f) => { const b = Buffer.from(f); if (b.readUInt16BE(12) === 0x88b5) gotH1.push(seqOf(b)); });
  h1.daemon.addPort(atH1, '10.0.0.1');
  h1.migrations.addVm(new ModelGuestVm({ clock }, { name: 'v1', mac: V1, port: 'v1', guest }));
  const peer = new MemoryPort({ name: 'v2', mac: V2 });
  peer.onDeliver(() => undefined);
  hub.daemon.addPort(peer, '10.0.0.2');
  const gotH2: number[] = [];
  h2.migrations.onReport((r) => {
    if (r.state !== 'prepared') return;
    const port = h2.daemon.port('v1') as MemoryPort | undefined;
    port?.onDeliver((f) => { const b = Buffer.from(f); if (b.readUInt16BE(12) === 0x88b5) gotH2.push(seqOf(b)); });
  });

  const poll = async <T>(check: () => T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> => waitFor(() => { sample(); return check(); }, what, timeoutMs);

  Object.assign(s, {
    dir, controller, hub, h1, h2, guest, gotH1, gotH2,
    sent: () => seq - 1,
    stopTraffic: () => clearInterval(ticker),
    sample, destRunning, sourceRunning,
    waitFor: poll,
    killController: async () => {
      for (const h of hosts) h.relay.cut();
      for (const h of hosts) h.relay.down = true;
      controllerClosed = true;
      await controller.close();
    },
    restartController: async () => {
      controller = await startCtl();
      controllerClosed = false;
      s.controller = controller;
      for (const h of hosts) { h.relay.target = controller.controlPort; h.relay.down = false; }
    },
    migrationOver: async (id: string, timeoutMs = 30_000) => poll(() => {
      const m = s.controller.model.getMigration(id);
      return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
    }, `migration ${id} over`, timeoutMs),
  } satisfies Partial<Stack>);

  for (const h of hosts) h.agent.start();
  await poll(() => hosts.every((h) => h.agent.state === 'connected'), 'every daemon connected');
  await poll(() => controller.model.getVm(V1_MAC)?.host === 'h1', 'the controller sees v1 on h1');
  atH1.transmit(testFrame(V2, V1, 0));
  let seq = 1;
  peer.transmit(testFrame(V1, V2, seq++));
  await poll(() => gotH1.length === 1, 'v2 heard by v1 on h1');
  ticker = setInterval(() => { peer.transmit(testFrame(V1, V2, seq++)); }, 5);
  return s;
}

/** What the dead controller left in its database (read while no controller runs). */
function leftInStore(s: Stack, id: string): { migration: MigrationRecord | undefined; vm: VmRecord | undefined; steps: string[] } {
  const store = openStore({ path: join(s.dir, 'vnet.db'), logger });
  try {
    return { migration: store.getMigration(id), vm: store.getVm(V1_MAC), steps: store.migrationSteps(id).map((r) => `${r.step}:${r.state}`) };
  } finally {
    store.close();
  }
}

/** Each side's list in order, no frame twice across both. */
function assertOnceInOrder(s: Stack): void {
  const all = [...s.gotH1, ...s.gotH2];
  assert.equal(new Set(all).size, all.length, 'no frame twice');
  assert.ok(s.gotH1.every((q, i) => i === 0 || q > s.gotH1[i - 1]!), 'in order on h1');
  assert.ok(s.gotH2.every((q, i) => i === 0 || q > s.gotH2[i - 1]!), 'in order on h2');
}

function steps(s: Stack, id: string): string[] {
  return s.controller.store.migrationSteps(id).map((r) => `${r.step}:${r.state}`);
}

async function endsOnSource(s: Stack, id: string): Promise<void> {
  const over = await s.migrationOver(id);
  assert.equal(over.step, 'aborted', JSON.stringify(over));
  assert.equal(over.state, 'failed');
  assert.equal(s.controller.model.getVm(V1_MAC)?.host, 'h1', 'the store has v1 on h1');
  await s.waitFor(() => s.sourceRunning(), 'v1 runs on h1 again');
  assert.ok(!s.destRunning(), 'and not on h2');
  assert.ok(s.h1.daemon.port('v1') !== undefined, 'h1 kept the port');
  // Traffic flows at the source again: fresh frames reach v1 on h1.
  const mark = s.sent();
  await s.waitFor(() => s.gotH1.some((q) => q > mark), 'fresh frames at v1 on h1');
  s.stopTraffic();
  const sent = s.sent();
  await s.waitFor(() => s.gotH1.at(-1) === sent, 'the last frame at h1');
  assertOnceInOrder(s);
  // Before the commit point the rules point at h1 only: nothing was the destination's to lose.
  assert.deepEqual([...s.gotH1].sort((a, b) => a - b), Array.from({ length: sent }, (_, i) => i + 1), 'every frame reached v1 on h1');
  s.sample();
}

async function endsOnDestination(s: Stack, id: string): Promise<void> {
  const over = await s.migrationOver(id);
  assert.equal(over.state, 'succeeded', JSON.stringify(over));
  assert.equal(s.controller.model.getVm(V1_MAC)?.host, 'h2');
  assert.ok(s.destRunning(), 'v1 runs on h2');
  assert.equal(s.guest.runState, 'paused', 'and not on h1');
  await s.waitFor(() => s.h1.daemon.port('v1') === undefined, 'h1 dropped the port');
  const mark = s.sent();
  await s.waitFor(() => s.gotH2.some((q) => q > mark), 'fresh frames at v1 on h2');
  s.stopTraffic();
  const sent = s.sent();
  await s.waitFor(() => s.gotH2.at(-1) === sent, 'the last frame at h2');
  assertOnceInOrder(s);
  assert.deepEqual([...s.gotH1, ...s.gotH2].sort((a, b) => a - b), Array.from({ length: sent }, (_, i) => i + 1), 'no frame lost');
  s.sample();
}

test('the destination killed during the final copy: aborted before the commit point, the source resumes only on migrate-abort, its traffic flows again', { timeout: 60_000 }, async (t) => {
  const s = await startStack(t, 'dest-killed');
  let killed = false;
  s.h1.onReport = (r) => {
    if (r.state === 'paused' && !killed) {
      killed = true;
      // Abruptly, before anything else happens: its control channel reset, its migration sockets destroyed, the daemon closing.
      s.h2.relay.down = true;
      s.h2.relay.cut();
      void s.h2.migrations.close();
      void s.h2.daemon.close();
    }
    return true;
  };
  const started = await s.controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'smart-stop' });
  await endsOnSource(s, started.id);
  assert.ok(killed, 'the destination was killed at the pause');
  assert.ok(s.h1.commands.some((c) => c.type === 'migrate-abort' && c.id === started.id), 'the source got migrate-abort');
  assert.ok(!s.h1.commands.some((c) => c.type === 'migrate-commit'), 'and never migrate-commit');
  assert.ok(!s.h2.reports.some((r) => r.state === 'ready'), 'the destination never had its copy ready');
  const aborted = s.h1.reports.filter((r) => r.id === started.id && r.state === 'aborted');
  assert.ok(aborted.length > 0 && aborted.every((r) => (r.stats?.lost ?? 0) === 0), `nothing lost at the source: ${JSON.stringify(aborted)}`);
  const rows = steps(s, started.id);
  for (const want of ['prepare:sent', 'prepared:ok', 'start:sent', 'paused:ok', 'abort:failed', 'abort:source', 'aborted:source', 'aborted:failed']) {
    assert.ok(rows.includes(want), `the store has ${want}: ${JSON.stringify(rows)}`);
  }
  assert.ok(!rows.includes('commit:ok'), 'no commit point');
  assert.ok(rows.includes('stalled:source'), 'the source reported stalled (its engine lost the destination after the pause)');
  assert.deepEqual(s.h1.reports.filter((r) => r.id === started.id && r.state !== 'progress').map((r) => r.state).filter((x, i, a) => a.indexOf(x) === i), ['paused', 'stalled', 'aborted'], 'paused, stalled until the verdict, then aborted');
  assert.ok(s.pausedSamples > 0, 'the paused source was sampled');
});

test('the controller killed before the commit point and restarted on its database: the migration is aborted, v1 runs on the source', { timeout: 60_000 }, async (t) => {
  const s = await startStack(t, 'ctl-precommit');
  let kill: Promise<void> | undefined;
  s.h1.onReport = (r) => {
    if (r.state === 'paused' && kill === undefined) {
      kill = s.killController(); // the relays are cut synchronously: this `paused` never reaches the controller
    }
    return true;
  };
  const started = await s.controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'smart-stop' });
  await s.waitFor(() => kill !== undefined, 'the source paused');
  await kill;
  const left = leftInStore(s, started.id);
  const stored = left.migration;
  assert.equal(stored?.state, 'running', 'the store holds the migration open');
  assert.ok(!left.steps.includes('commit:ok'), JSON.stringify(left.steps));
  assert.ok(stored?.run !== undefined && ['transfer', 'paused'].includes(stored.run.step), `before the commit point: ${stored?.run?.step}`);
  // The destination finishes its copy with the controller gone; its `ready` is queued for the next controller.
  await s.waitFor(() => s.h2.migrations.stateOf(started.id) === 'ready', 'the destination ready, not running');
  assert.ok(!s.destRunning());
  await s.restartController();
  await endsOnSource(s, started.id);
  assert.ok(!s.h2.commands.some((c) => c.type === 'migrate-commit') && !s.h1.commands.some((c) => c.type === 'migrate-commit'), 'no migrate-commit to anyone');
  // The coordinator may have settled the source while the destination was still reconnecting (it only runs on a commit, which never comes): it hears the abort once back.
  await s.waitFor(() => s.h2.migrations.stateOf(started.id) === 'aborted', 'the destination discarded its copy');
  await s.waitFor(() => steps(s, started.id).includes('aborted:destination'), 'the store has the destination\'s aborted');
  assert.ok(s.h2.commands.some((c) => c.type === 'migrate-abort' && c.id === started.id));
  assert.equal(s.h2.daemon.port('v1'), undefined, 'the destination dropped its held port');
  const rows = steps(s, started.id);
  assert.ok(rows.includes('abort:failed') && rows.includes('aborted:failed') && !rows.includes('commit:ok'), JSON.stringify(rows));
  assert.match(s.controller.model.getMigration(started.id)?.error ?? '', /restarted before the commit point/);
});

for (const lost of [false, true]) {
  const what = lost ? 'migrate-commit to the source lost with it' : 'the source acts on migrate-commit as it dies';
  test(`the controller killed after the commit point (${what}) and restarted on its database: the cutover is driven to the end, v1 runs on the destination only`, { timeout: 60_000 }, async (t) => {
    const s = await startStack(t, lost ? 'ctl-commit-lost' : 'ctl-postcommit');
    let kill: Promise<void> | undefined;
    s.h1.onCommand = (c) => {
      // The commit point is written before migrate-commit leaves; the controller dies as it arrives at the source.
      if (c.type === 'migrate-commit' && kill === undefined) {
        kill = s.killController();
        return !lost;
      }
      return true;
    };
    const started = await s.controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'smart-stop' });
    await s.waitFor(() => kill !== undefined, 'migrate-commit at the source', 30_000);
    await kill;
    const left = leftInStore(s, started.id);
    const stored = left.migration;
    assert.ok(stored?.run !== undefined && ['commit', 'cutover'].includes(stored.run.step), `past the commit point: ${stored?.run?.step}`);
    assert.equal(left.vm?.host, 'h2', 'the commit point moved v1 to h2 in the store');
    assert.ok(left.steps.includes('commit:ok'), JSON.stringify(left.steps));
    if (lost) {
      await s.waitFor(() => s.h2.migrations.stateOf(started.id) === 'ready', 'the destination ready');
      assert.ok(['paused', 'sent'].includes(s.h1.migrations.stateOf(started.id) ?? ''), `the source still paused: ${s.h1.migrations.stateOf(started.id)}`);
    } else {
      // Its `released` reaches only the next controller.
      await s.waitFor(() => s.h1.migrations.stateOf(started.id) === 'released', 'the source released v1');
    }
    assert.ok(!s.destRunning() && !s.sourceRunning(), 'neither copy runs while the controller is away');
    assert.ok(!s.h2.commands.some((c) => c.type === 'migrate-commit'), 'the destination has not heard the verdict');
    await s.restartController();
    await endsOnDestination(s, started.id);
    // The restarted controller committed the source first (its held frames reach v1 first), the destination once it released.
    const released = s.events.indexOf('h1<released');
    const destCommit = s.events.indexOf('h2>migrate-commit');
    assert.ok(released >= 0 && destCommit > released, `the source released before the destination heard migrate-commit: ${JSON.stringify(s.events.filter((e) => !e.endsWith('progress')))}`);
    assert.equal(s.h1.migrations.stateOf(started.id), 'released');
    assert.equal(s.h2.migrations.stateOf(started.id), 'resumed');
    assert.ok(!s.h1.commands.some((c) => c.type === 'migrate-abort') && !s.h2.commands.some((c) => c.type === 'migrate-abort'), 'nothing aborted');
    const rows = steps(s, started.id);
    assert.ok(rows.includes('restart:redrive') && rows.includes('resumed:ok') && rows.includes('released:ok') && rows.includes('done:ok'), JSON.stringify(rows));
  });
}

test('the destination\'s ready lost: the coordinator finds it with migrate-query and commits; exactly one copy runs', { timeout: 60_000 }, async (t) => {
  const s = await startStack(t, 'ready-lost');
  let dropped = 0;
  s.h2.onReport = (r) => {
    if (r.state === 'ready' && dropped === 0) { dropped++; return false; }
    return true;
  };
  const started = await s.controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'smart-stop' });
  await endsOnDestination(s, started.id);
  assert.equal(dropped, 1, 'one ready dropped');
  assert.ok(s.h2.commands.some((c) => c.type === 'migrate-query' && c.id === started.id), 'the destination was queried');
  const rows = steps(s, started.id);
  assert.ok(rows.includes('query:sent') && rows.includes('commit:ok') && !rows.some((r) => r.startsWith('abort')), JSON.stringify(rows));
});
