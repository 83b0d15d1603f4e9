import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './fixtures/controller-harness.ts';
import { FakeCluster, FakeMigrationAgent } from './fixtures/fake-migration-agent.ts';
import { testPki } from './fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';
import type { MigrationView } from '../../src/controller/api-views.ts';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/common/logger.ts';
import { startApiServer } from '../../src/controller/api/api-server.ts';
import { createApiToken, MemoryTokenStore } from '../../src/controller/api/token-store.ts';

/**
 * The coordinator over the real control channel: a controller (SQLite in a
 * temporary directory, TLS on port 0) and three daemons played by fake
 * migration agents that speak the contract (fixtures/fake-migration-agent.ts).
 * v1 (02:..:01) moves from h1 to h2; the hub and h2 send its frames on.
 */

const V1 = '02:00:00:00:00:01';
const V2 = '02:00:00:00:00:02';

async function cluster(h: Harness): Promise<{ hub: FakeMigrationAgent; h1: FakeMigrationAgent; h2: FakeMigrationAgent; all: FakeMigrationAgent[] }> {
  const pki = testPki();
  const c = new FakeCluster();
  const hub = new FakeMigrationAgent(c, 'hub', { role: 'hub', cert: pki.host('hub'), ca: pki.ca });
  const h1 = new FakeMigrationAgent(c, 'h1', { vms: [{ mac: V1, port: 'tap-v1' }], cert: pki.host('h1'), ca: pki.ca });
  const h2 = new FakeMigrationAgent(c, 'h2', { vms: [{ mac: V2, port: 'tap-v2' }], cert: pki.host('h2'), ca: pki.ca });
  const all = [hub, h1, h2];
  for (const a of all) await a.connect(h.url());
  return { hub, h1, h2, all };
}

function closeAll(agents: FakeMigrationAgent[]): () => Promise<void> {
  return async () => { await Promise.all(agents.map((a) => a.close())); };
}

test('a migration runs prepare → … → done over the control channel: every daemon ends up pointing at the destination, every step stored with its time', async (t) => {
  const h = await startHarness(t);
  const { hub, h1, h2, all } = await cluster(h);
  t.after(closeAll(all));
  await waitFor(() => hub.linkFor(V1) === 'h1' && h2.linkFor(V1) === 'hub', 'the initial rules: v1 via the hub to h1');
  const seen: MigrationView[] = [];
  t.after(h.controller.model.subscribe((e) => { if (e.type === 'migration-changed') seen.push(e.payload.migration); }));

  // The destination's copy is ready once the controller has seen the pause (reports of two daemons may arrive in any order).
  h2.hold.add('ready');
  const started = await h.controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'xen' });
  assert.deepEqual([started.vm, started.from, started.to, started.step, started.state, started.rule], [V1, 'h1', 'h2', 'prepare', 'running', 'xen']);
  await waitFor(() => h.controller.model.getMigration(started.id)?.step === 'paused', 'the source paused');
  h2.report(started.id, 'ready');
  const done = await waitFor(() => {
    const m = h.controller.model.getMigration(started.id);
    return m?.step === 'done' ? m : undefined;
  }, 'the migration done and cleaned up');

  assert.equal(done.state, 'succeeded');
  assert.ok(done.finishedAt !== null);
  assert.deepEqual(done.cutover && { ...done.cutover, timeMs: typeof done.cutover.timeMs, spans: null }, {
    timeMs: 'number', pausedAt: done.cutover!.pausedAt, acknowledgedAt: done.cutover!.acknowledgedAt, held: 15, flushed: 15, relayed: 5, lost: 0, announced: 2, spans: null,
  });
  // Where the cutover went, as the controller measured it: ready heard → commit durable → rules pushed → each re-pointed daemon's ack.
  const sp = done.cutover!.spans!;
  assert.ok(sp.ready !== null && sp.committed !== null && sp.pushed !== null && sp.acknowledged !== null, JSON.stringify(sp));
  assert.ok(sp.ready <= sp.committed && sp.committed <= sp.pushed && sp.pushed <= sp.acknowledged, JSON.stringify(sp));
  assert.ok(Object.keys(sp.acks).length > 0 && Object.keys(sp.acks).every((x) => ['hub', 'h1', 'h2'].includes(x)), JSON.stringify(sp.acks));
  for (const at of Object.values(sp.acks)) assert.ok(at >= sp.pushed && at <= sp.acknowledged, JSON.stringify(sp));

  // The registry and every daemon's rules: v1 is on h2; the hub sends to h2, h1 (the relay) straight to h2 while the link lasted.
  assert.deepEqual([h.controller.model.getVm(V1)?.host, h.controller.model.getVm(V1)?.state], ['h2', 'running']);
  await waitFor(() => h1.linkFor(V1) === 'hub', 'after the cleanup h1 goes through the hub again');
  assert.equal(hub.linkFor(V1), 'h2');
  assert.equal(h2.linkFor(V1), undefined, 'h2 holds the VM itself');
  // The migration's fast-path link went with the cleanup.
  assert.deepEqual(h.controller.store.listLinks('fast-path'), []);

  // The commands each daemon received, in order; commit only after the commit point.
  assert.deepEqual(h2.received.map((m) => m.type), ['migrate-prepare', 'migrate-commit']);
  assert.deepEqual(h1.received.map((m) => m.type), ['migrate-start', 'migrate-commit']);
  assert.deepEqual(hub.received, []);
  const startMsg = h1.received[0]!;
  assert.ok(startMsg.type === 'migrate-start' && startMsg.rule === 'xen' && startMsg.address.port === 9002 && startMsg.vm.port === 'tap-v1');

  // The store: one row per step, in order, each with its time; commit before commit-sent.
  const steps = h.controller.store.migrationSteps(started.id);
  const names = steps.map((s) => s.step);
  assert.deepEqual(names, ['prepare', 'prepared', 'start', 'phase', 'phase', 'paused', 'ready', 'commit', 'acknowledged', 'commit-sent', 'released', 'commit-sent', 'resumed', 'done', 'cleanup']);
  for (let i = 1; i < steps.length; i++) assert.ok(steps[i]!.atMs >= steps[i - 1]!.atMs, `step ${names[i]} timed after ${names[i - 1]}`);
  assert.deepEqual(steps.filter((s) => s.step === 'commit-sent').map((s) => s.state), ['source', 'destination']);
  const stored = h.controller.store.getMigration(started.id)!;
  assert.equal(stored.state, 'done');
  // Progress went out on the event stream: the phases and the figures of the engine.
  assert.ok(seen.some((m) => m.phase === 'disk'));
  assert.ok(seen.some((m) => m.phase === 'memory' && m.iteration === 2 && m.pagesLeft === 64 && m.dirtyRate === 150));
  assert.ok(seen.some((m) => m.step === 'paused' && m.phase === 'stop-and-copy'));
});

test('the cutover waits for every connected daemon to acknowledge the rules that point at the destination before migrate-commit', async (t) => {
  const h = await startHarness(t);
  const { hub, h1, h2, all } = await cluster(h);
  t.after(closeAll(all));
  h2.hold.add('resumed');
  h1.hold.add('released');
  const m = await h.controller.model.startMigration!(V1, 'h2', 'admin');
  await waitFor(() => h2.received.some((x) => x.type === 'migrate-commit') && h1.received.some((x) => x.type === 'migrate-commit'), 'commit sent to both');
  // By then every daemon ran the cutover rules: the hub to h2, h1 (the relay) over its fast-path link to h2.
  assert.equal(hub.linkFor(V1), 'h2');
  assert.equal(h1.linkFor(V1), 'h2');
  const versions = ['hub', 'h1', 'h2'].map((x) => h.controller.store.getVersions(x).rulesVersion);
  assert.deepEqual([hub.rulesVersion, h1.rulesVersion, h2.rulesVersion], versions);
  assert.equal(h.controller.model.getMigration(m.id)?.step, 'cutover');
  // The answers come: done.
  h2.report(m.id, 'resumed', { stats: { held: 0, flushed: 0, relayed: 0, lost: 0, announced: 1 } });
  h1.report(m.id, 'released', { stats: { held: 4, flushed: 4, relayed: 0, lost: 1, announced: 0 } });
  const done = await waitFor(() => { const v = h.controller.model.getMigration(m.id); return v?.state === 'succeeded' ? v : undefined; }, 'succeeded');
  assert.deepEqual([done.cutover?.held, done.cutover?.lost, done.cutover?.announced], [4, 1, 1]);
});

test('a controller restart before the commit point aborts the migration: the destination first, then the source; the VM stays on the source', async (t) => {
  const h = await startHarness(t);
  const agents = await cluster(h);
  t.after(closeAll(agents.all));
  agents.h2.hold.add('ready');
  const m = await h.controller.model.startMigration!(V1, 'h2', 'admin');
  await waitFor(() => h.controller.model.getMigration(m.id)?.step === 'paused', 'the source paused');
  // Kill the controller object; the daemons lose it.
  await h.controller.close();
  await h.start();
  // The destination is back first: it is told to abort, and the source only after its answer.
  for (const a of [agents.hub, agents.h2, agents.h1]) await a.connect(h.url());
  const aborted = await waitFor(() => { const v = h.controller.model.getMigration(m.id); return v?.step === 'aborted' ? v : undefined; }, 'aborted after the restart');
  assert.equal(aborted.state, 'failed');
  assert.match(aborted.error ?? '', /restarted before the commit point/);
  assert.deepEqual(agents.h2.received.map((x) => x.type), ['migrate-prepare', 'migrate-abort']);
  assert.deepEqual(agents.h1.received.map((x) => x.type), ['migrate-start', 'migrate-abort']);
  assert.deepEqual([h.controller.model.getVm(V1)?.host, h.controller.model.getVm(V1)?.state], ['h1', 'running']);
  assert.ok(!h.controller.store.migrationSteps(m.id).some((s) => s.step === 'commit'), 'no commit point');
  await waitFor(() => agents.hub.linkFor(V1) === 'h1', 'the hub still sends v1 to h1');
});

test('a controller restart after the commit point drives the cutover again and re-sends migrate-commit until both answer', async (t) => {
  const h = await startHarness(t);
  const agents = await cluster(h);
  t.after(closeAll(agents.all));
  agents.h2.hold.add('resumed');
  agents.h1.hold.add('released');
  const m = await h.controller.model.startMigration!(V1, 'h2', 'admin');
  await waitFor(() => agents.h1.received.some((x) => x.type === 'migrate-commit'), 'commit sent');
  assert.ok(!agents.h2.received.some((x) => x.type === 'migrate-commit'), 'the destination waits for the source to release');
  await h.controller.close();
  agents.h2.hold.clear();
  agents.h1.hold.clear();
  await h.start();
  for (const a of agents.all) await a.connect(h.url());
  const done = await waitFor(() => { const v = h.controller.model.getMigration(m.id); return v?.state === 'succeeded' ? v : undefined; }, 'succeeded after the restart');
  assert.equal(done.to, 'h2');
  assert.equal(agents.h1.received.filter((x) => x.type === 'migrate-commit').length, 2, 'commit re-sent to the source');
  assert.equal(agents.h2.received.filter((x) => x.type === 'migrate-commit').length, 1, 'the destination committed once the source released');
  assert.ok(!agents.h2.received.some((x) => x.type === 'migrate-abort'), 'never aborted after the commit point');
  assert.deepEqual(h.controller.store.migrationSteps(m.id).filter((s) => s.step === 'restart').map((s) => s.state), ['redrive']);
  assert.equal(agents.hub.linkFor(V1), 'h2');
});

async function apiServer(t: { after(fn: () => Promise<void>): void }, h: Harness): Promise<(method: string, path: string, body?: unknown) => Promise<{ status: number; json: any }>> {
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', Date.now());
  const server = await startApiServer({ logger: silentLogger(), model: h.controller.model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  return async (method, path, body) => {
    const res = await fetch(`${server.url}${path}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: await res.json() };
  };
}

test('the API starts (202) and cancels migrations on the real controller, and refuses what it cannot do with 400/404/409', async (t) => {
  const h = await startHarness(t);
  const { h1, h2, all } = await cluster(h);
  t.after(closeAll(all));
  const api = await apiServer(t, h);
  h1.hold.add('paused');
  h2.hold.add('ready');
  assert.equal((await api('POST', '/api/v1/migrations', { vm: 'v1', to: 'h2', rule: 'fast' })).status, 400);
  assert.equal((await api('POST', '/api/v1/migrations', { vm: 'v1', to: 'h2', deadlineS: -1 })).status, 400);
  const unknownVm = await api('POST', '/api/v1/migrations', { vm: 'v9', to: 'h2' });
  assert.deepEqual([unknownVm.status, unknownVm.json.error.code], [404, 'VNET_ERR_MIGRATION_UNKNOWN_VM']);
  assert.equal((await api('POST', '/api/v1/migrations', { vm: 'v1', to: 'h9' })).status, 404);
  const same = await api('POST', '/api/v1/migrations', { vm: 'v1', to: 'h1' });
  assert.deepEqual([same.status, same.json.error.code], [409, 'VNET_ERR_MIGRATION_SAME_HOST']);

  const started = await api('POST', '/api/v1/migrations', { vm: V1, to: 'h2', rule: 'time-bound', deadlineS: 20 });
  assert.equal(started.status, 202, JSON.stringify(started.json));
  assert.deepEqual([started.json.vm, started.json.to, started.json.rule, started.json.state], [V1, 'h2', 'time-bound', 'running']);
  const again = await api('POST', '/api/v1/migrations', { vm: 'v1', to: 'h2' });
  assert.deepEqual([again.status, again.json.error.code], [409, 'VNET_ERR_MIGRATION_IN_PROGRESS']);
  await waitFor(() => h1.received.some((m) => m.type === 'migrate-start'), 'the engine started');
  const start = h1.received.find((m) => m.type === 'migrate-start');
  assert.ok(start?.type === 'migrate-start' && start.deadlineMs === 20_000);

  const cancel = await api('POST', `/api/v1/migrations/${started.json.id}/cancel`);
  assert.equal(cancel.status, 202);
  const cancelled = await waitFor(async () => { const r = await api('GET', `/api/v1/migrations/${started.json.id}`); return r.json.step === 'aborted' ? r.json : undefined; }, 'cancelled');
  assert.equal(cancelled.state, 'cancelled');
  assert.match(cancelled.error, /^cancelled by (operator:)?admin$/);
  assert.deepEqual(h2.received.map((m) => m.type), ['migrate-prepare', 'migrate-abort']);
  assert.equal((await api('POST', `/api/v1/migrations/${started.json.id}/cancel`)).status, 409);
  assert.equal((await api('POST', '/api/v1/migrations/zz/cancel')).status, 404);
  assert.ok(h.controller.store.listAudit().some((a) => a.action === 'cancel-migration'));

  // A committed migration cannot be cancelled; a down destination is refused.
  h1.hold.clear();
  h2.hold.clear();
  h2.hold.add('resumed');
  const second = await api('POST', '/api/v1/migrations', { vm: 'v1', to: 'h2' });
  await waitFor(() => h.controller.model.getMigration(second.json.id)?.step === 'cutover', 'cutover');
  const late = await api('POST', `/api/v1/migrations/${second.json.id}/cancel`);
  assert.deepEqual([late.status, late.json.error.code], [409, 'VNET_ERR_MIGRATION_COMMITTED']);
  await h2.close();
  await waitFor(() => h.controller.model.getHost('h2')?.state === 'down', 'h2 down');
  const down = await api('POST', '/api/v1/migrations', { vm: 'v2', to: 'h2' });
  assert.deepEqual([down.status, down.json.error.code], [409, 'VNET_ERR_MIGRATION_SAME_HOST'], 'v2 runs on h2 already');
  const toDown = await api('POST', '/api/v1/migrations', { vm: 'v2', to: 'hub' });
  assert.deepEqual([toDown.status, toDown.json.error.code], [409, 'VNET_ERR_MIGRATION_HOST_DOWN'], 'its source h2 is down');
});

test('lost reports are found by migrate-query: when a daemon reconnects mid-migration, and when no ready comes in readyMs after the pause', async (t) => {
  const h = await startHarness(t, { migration: { readyMs: 150, queryMs: 5000 } });
  const { h1, h2, all } = await cluster(h);
  t.after(closeAll(all));
  // The source's pause and the destination's ready are both lost.
  h1.hold.add('paused');
  h2.hold.add('ready');
  const m = await h.controller.model.startMigration!('v1', 'h2', 'admin');
  await waitFor(() => h1.received.some((x) => x.type === 'migrate-start'), 'transfer');
  assert.equal(h.controller.model.getMigration(m.id)?.step, 'transfer');
  // The source's channel drops and comes back: both sides are asked; the source answers paused, the destination ready.
  await h1.close();
  await h1.connect(h.url());
  const first = await waitFor(() => { const v = h.controller.model.getMigration(m.id); return v?.state === 'succeeded' ? v : undefined; }, 'committed through the query');
  assert.equal(first.to, 'h2');
  assert.ok(h1.received.some((x) => x.type === 'migrate-query') && h2.received.some((x) => x.type === 'migrate-query'));
  const steps = h.controller.store.migrationSteps(m.id).map((s) => `${s.step}/${s.state}`);
  assert.ok(steps.indexOf('query/sent') < steps.indexOf('commit/ok'), steps.join(' '));

  // Back to h1; this time only the destination's ready is lost: readyMs after the pause the coordinator asks.
  h1.hold.clear();
  h2.hold.clear();
  h1.hold.add('ready');
  await waitFor(() => h.controller.model.getVm(V1)?.state === 'running', 'v1 running on h2');
  const back = await h.controller.model.startMigration!('v1', 'h1', 'admin');
  const done = await waitFor(() => { const v = h.controller.model.getMigration(back.id); return v?.state === 'succeeded' ? v : undefined; }, 'committed after the ready timeout');
  assert.equal(done.to, 'h1');
  const names = h.controller.store.migrationSteps(back.id).map((s) => `${s.step}/${s.state}`);
  assert.deepEqual(names.slice(names.indexOf('paused/ok'), names.indexOf('commit/ok') + 1), ['paused/ok', 'query/sent', 'ready/ok', 'commit/ok']);
});
