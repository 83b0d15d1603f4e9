/**
 * The control loop in one process, without sockets: daemons are FakeDaemons
 * behind fake sessions (fixtures/fake-session.ts), wall time is a
 * ManualClock, and update periods are `tick()` calls. Each step is checked
 * as it happens, in order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_PROTOCOL_VERSION, factsToWire, type HelloMessage } from '../../src/control/control-protocol.ts';
import type { LinkFacts } from '../../src/control/daemon-control.ts';
import { migrationRecord, type MigrationRun } from '../../src/controller/migration-run.ts';
import { DEPLOYMENT_YAML, testDeployment } from './fixtures/controller-harness.ts';
import { loopRig, type LoopRig } from './fixtures/loop-rig.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { deliver, fakeSession, type FakeSession } from './fixtures/fake-session.ts';

const V1 = '02:00:00:00:00:01';
const V2 = '02:00:00:00:00:02';

interface Rig extends LoopRig {
  connect(id: string, vms?: string[]): { daemon: FakeDaemon; session: FakeSession; sync(): void };
}

function rig(t: { after(fn: () => void): void }, yaml = DEPLOYMENT_YAML, resendAfterMs?: number): Rig {
  const base = loopRig(t, testDeployment(yaml), resendAfterMs !== undefined ? { resendAfterMs } : {});
  const { loop } = base;
  loop.reconcile('test start');
  return {
    ...base,
    connect(id, vms = []) {
      const daemon = new FakeDaemon(id, { role: id.startsWith('hub') ? 'hub' : 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 + id.length }, vms: vms.map((mac) => ({ mac })) });
      const session = fakeSession(id);
      const hello: HelloMessage = { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: id, facts: factsToWire(daemon.facts()) };
      loop.sessionOpened(session, hello);
      // What a real agent does: apply the pushes and ack them.
      const sync = (): void => { for (const ack of deliver(session, daemon)) loop.messageReceived(session, ack); };
      return { daemon, session, sync };
    },
  };
}

test('a daemon connecting is marked up, its VMs learned, and it is pushed its rules; its acks converge it', (t) => {
  const r = rig(t);
  const h1 = r.connect('h1', [V1]);
  assert.equal(r.store.getHost('h1')?.connected, true);
  assert.deepEqual(h1.session.sent.map((m) => m.type), ['set-links', 'set-rules']);
  h1.sync();
  assert.deepEqual(h1.daemon.rules.map((x) => [x.dst, x.action]), [[V2, { link: 'hub' }]]);
  assert.deepEqual(r.loop.appliedVersions('h1'), { linksVersion: h1.daemon.linksVersion, rulesVersion: h1.daemon.rulesVersion });
  // Converged: an update period pushes nothing.
  r.clock.advance(100);
  r.loop.tick();
  assert.deepEqual(h1.session.sent, []);
  assert.deepEqual(r.loop.connectedHosts(), ['h1']);
});

test('a push with no ack is resent once resendAfterMs has passed, not before', (t) => {
  const r = rig(t, DEPLOYMENT_YAML, 250);
  const h1 = r.connect('h1', [V1]);
  const sent = (): string[] => h1.session.sent.splice(0).map((m) => m.type);
  assert.deepEqual(sent(), ['set-links', 'set-rules']);
  r.clock.advance(100);
  r.loop.tick();
  assert.deepEqual(sent(), []);
  r.clock.advance(150);
  r.loop.tick();
  assert.deepEqual(sent(), ['set-links', 'set-rules']);
});

test('a push still queued toward its daemon is not sent again: its resend clock starts once it has left', (t) => {
  const r = rig(t, DEPLOYMENT_YAML, 250);
  const h1 = r.connect('h1', [V1]);
  const sent = (): string[] => h1.session.sent.splice(0).map((m) => m.type);
  assert.deepEqual(sent(), ['set-links', 'set-rules']);
  // A slow reader: the set is still in the session's queue when the resend falls due, period after period.
  let queued = 1_000_000;
  h1.session.queuedBytes = () => queued;
  for (let i = 0; i < 5; i++) {
    r.clock.advance(250);
    r.loop.tick();
    assert.deepEqual(sent(), [], `no second copy behind the first (period ${i + 1})`);
  }
  // It has left, and still no ack: resent once resendAfterMs has passed since.
  queued = 0;
  r.clock.advance(100);
  r.loop.tick();
  assert.deepEqual(sent(), [], 'not before resendAfterMs from when it left');
  r.clock.advance(250);
  r.loop.tick();
  assert.deepEqual(sent(), ['set-links', 'set-rules']);
});

test('a VM seen on another host is re-homed and every host\'s rule for it re-pointed at once', (t) => {
  const r = rig(t);
  const hub = r.connect('hub');
  const h1 = r.connect('h1', [V1]);
  const h2 = r.connect('h2', [V2]);
  for (const d of [hub, h1, h2]) d.sync();
  assert.deepEqual(hub.daemon.rules.find((x) => x.dst === V1)?.action, { link: 'h1' });
  // V1 leaves h1 and shows up on h2 (a migration the controller was not told of).
  h1.daemon.removePort('vm0');
  r.loop.messageReceived(h1.session, { type: 'facts', facts: factsToWire(h1.daemon.facts()) });
  h2.daemon.addPort('v1', V1);
  r.loop.messageReceived(h2.session, { type: 'facts', facts: factsToWire(h2.daemon.facts()) });
  hub.sync();
  assert.equal(r.store.getVm(V1)?.host, 'h2');
  assert.deepEqual(hub.daemon.rules.find((x) => x.dst === V1)?.action, { link: 'h2' });
});

test('update periods of traffic: matrix with frame rates, a topology, then adaptation adds a fast path pushed to both ends', (t) => {
  const yaml = DEPLOYMENT_YAML.replace('  updatePeriodMs: 100\n', '  updatePeriodMs: 100\n  smoothingIntervalMs: 200\n  fastPathMinBytesPerSec: 100000\n');
  const r = rig(t, yaml);
  const hub = r.connect('hub');
  const h1 = r.connect('h1', [V1]);
  const h2 = r.connect('h2', [V2]);
  for (const d of [hub, h1, h2]) d.sync();
  const types: string[] = [];
  r.events.subscribe((e) => types.push(e.type === 'decision' ? `decision:${e.payload.decision.kind}` : e.type));
  // 100 kB per 100 ms from v1 to v2, 70 frames: 1 MB/s, 700 frames/s.
  for (let i = 0; i < 10; i++) {
    const end = r.clock.now() + 100;
    r.loop.messageReceived(h1.session, { type: 'traffic', report: { host: 'h1', startMs: end - 100, endMs: end, entries: [{ src: 0x020000000001, dst: 0x020000000002, frames: 70, bytes: 100_000 }] } });
    r.clock.advance(100);
    r.loop.tick();
    for (const d of [h1, h2]) d.sync();
  }
  // Steady traffic: the smoothed rates are the sent ones, frames included.
  const edge = r.topology.matrix.edges.find((e) => e.src === V1 && e.dst === V2);
  assert.ok(edge !== undefined && Math.abs(edge.bytesPerSec - 1e6) < 1e-3 && Math.abs(edge.framesPerSec - 700) < 1e-6, JSON.stringify(edge));
  assert.equal(r.topology.topology.weightsAt, r.clock.now());
  const link = r.store.listLinks('fast-path')[0];
  assert.deepEqual([link?.a, link?.b, link?.requestedBy], ['h1', 'h2', 'adaptation']);
  assert.ok(h1.daemon.links.some((l) => l.peer === 'h2' && l.dial === true));
  assert.ok(h2.daemon.links.some((l) => l.peer === 'h1' && l.dial === false));
  assert.ok(types.includes('decision:fast-path-added') && types.includes('link-changed') && types.includes('traffic-updated'));
  assert.ok(types.includes('topology-changed'));
});

test("a daemon's MAC conflicts and port limits become 'security' events; other daemon events do not", (t) => {
  const r = rig(t);
  const h1 = r.connect('h1', [V1]);
  const seen: unknown[] = [];
  r.events.subscribe((e) => { if (e.type === 'security') seen.push(e.payload); });
  r.loop.messageReceived(h1.session, { type: 'event', event: { type: 'mac-conflict', mac: V1, seenAt: 'backbone link hub', home: 'port vm1', by: 'port', frames: 3 } });
  r.loop.messageReceived(h1.session, { type: 'event', event: { type: 'port-limit', port: 'vm1', limit: 'flood-rate', frames: 120 } });
  r.loop.messageReceived(h1.session, { type: 'event', event: { type: 'link-up', peer: 'hub', kind: 'backbone' } });
  assert.deepEqual(seen, [
    { host: 'h1', report: { kind: 'mac-conflict', mac: V1, seenAt: 'backbone link hub', home: 'port vm1', by: 'port', frames: 3 } },
    { host: 'h1', report: { kind: 'port-limit', port: 'vm1', limit: 'flood-rate', frames: 120 } },
  ]);
  assert.equal(r.events.listEvents({ types: ['security'] }).events.length, 2, 'kept in the event log the API serves');
});

test('a spoke on the standby hub: events, the metric, and rules re-pointed at the standby and across the trunk', async (t) => {
  const yaml = DEPLOYMENT_YAML.replace('  - { id: h1,', '  - { id: hub2, site: lab, standbyHub: true, listen: { transport: tcp, host: 127.0.0.1, port: 7004 } }\n  - { id: h1,');
  const r = rig(t, yaml);
  const backbone = (peer: string, state: 'up' | 'connecting'): LinkFacts => ({
    peer, kind: 'backbone', state, direction: 'outbound', reconnects: 0, txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0,
  });
  const hosts = { hub: r.connect('hub'), hub2: r.connect('hub2'), h1: r.connect('h1', [V1]), h2: r.connect('h2', [V2]) };
  const report = (id: keyof typeof hosts, links: LinkFacts[]): void => {
    const h = hosts[id];
    h.daemon.linkFacts = links;
    r.loop.messageReceived(h.session, { type: 'facts', facts: factsToWire(h.daemon.facts()) });
    h.sync();
  };
  report('hub2', [backbone('hub', 'up')]);
  report('h1', [backbone('hub', 'up')]);
  report('h2', [backbone('hub', 'up')]);
  for (const h of Object.values(hosts)) h.sync();
  assert.deepEqual(hosts.h1.daemon.rules.map((x) => x.action), [{ link: 'hub' }]);
  const since = r.store.listEvents(0, 1000).length;

  // h1 loses the primary and comes up on the standby; the standby's trunk is still up.
  report('h1', [backbone('hub', 'connecting')]);
  report('h1', [backbone('hub2', 'up')]);
  for (const h of Object.values(hosts)) h.sync();
  const events = r.store.listEvents(0, 1000).slice(since).map((e) => [e.type, e.data as Record<string, unknown>] as const);
  assert.ok(events.some(([type, p]) => type === 'spoke-hub-changed' && p.host === 'h1' && p.hub === 'hub2' && p.previous === 'hub'), JSON.stringify(events));
  assert.ok(events.some(([type, p]) => type === 'hub-changed' && p.hub === 'hub2' && p.state === 'active'));
  const changes = await r.registry.getSingleMetric('vnet_spoke_hub_changes_total')!.get();
  assert.equal(changes.values[0]?.value, 1);
  // Rules: h1 sends through its own hub now; the primary reaches V1 across the trunk, the standby reaches V2 the same way.
  assert.deepEqual(hosts.h1.daemon.rules.map((x) => [x.dst, x.action]), [[V2, { link: 'hub2' }]]);
  assert.deepEqual(hosts.h2.daemon.rules.map((x) => [x.dst, x.action]), [[V1, { link: 'hub' }]]);
  assert.deepEqual(hosts.hub.daemon.rules.map((x) => [x.dst, x.action]), [[V1, { link: 'hub2' }], [V2, { link: 'h2' }]]);
  assert.deepEqual(hosts.hub2.daemon.rules.map((x) => [x.dst, x.action]), [[V1, { link: 'h1' }], [V2, { link: 'hub' }]]);
  // The primary's daemon leaves the controller: down, as the API shows it.
  r.loop.sessionClosed(hosts.hub.session, 'test');
  const state = await r.registry.getSingleMetric('vnet_hub_state')!.get();
  assert.equal(state.values.find((v) => v.labels.hub === 'hub' && v.labels.state === 'down')?.value, 1);
});

test('a facts report does not scan the registry: only the reporting host\'s VMs are read, and the host list only when its backbone changed (issue 13)', (t) => {
  const r = rig(t);
  for (let i = 0; i < 5000; i++) {
    r.store.upsertVm({ mac: `02:00:00:02:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, name: undefined, ip: undefined, host: 'h2', state: 'running', source: 'learned', updatedMs: 0 });
  }
  const h1 = r.connect('h1', [V1]);
  h1.sync();
  const calls = { listVms: 0, rowsOnHost: 0, listHosts: 0 };
  const { store } = r;
  const listHosts = store.listHosts.bind(store);
  store.listHosts = () => { calls.listHosts++; return listHosts(); };
  const listVms = store.listVms.bind(store);
  const listVmsOnHost = store.listVmsOnHost.bind(store);
  store.listVms = () => { calls.listVms++; return listVms(); };
  store.listVmsOnHost = (host) => { const rows = listVmsOnHost(host); calls.rowsOnHost += rows.length; return rows; };
  r.loop.messageReceived(h1.session, { type: 'facts', facts: factsToWire(h1.daemon.facts()) });
  assert.deepEqual(calls, { listVms: 0, rowsOnHost: 1, listHosts: 0 });
  assert.equal(r.store.getHost('h1')?.facts?.ports[0]?.mac, V1);
});

test('while a migration\'s cutover is in flight the update period and the traffic samples\' writes wait for it, one period at most', (t) => {
  const r = rig(t);
  const hub = r.connect('hub');
  const h1 = r.connect('h1', [V1]);
  const h2 = r.connect('h2', [V2]);
  for (const d of [hub, h1, h2]) d.sync();
  const traffic = (): void => {
    const end = r.clock.now();
    r.loop.messageReceived(h1.session, { type: 'traffic', report: { host: 'h1', startMs: end - 100, endMs: end, entries: [{ src: 0x020000000001, dst: 0x020000000002, frames: 7, bytes: 1000 }] } });
  };
  const periods: number[] = [];
  r.events.subscribe((e) => { if (e.type === 'traffic-updated') periods.push(e.payload.at); });
  // No cutover: a report is written with its period's others when the period runs.
  traffic();
  assert.equal(r.store.trafficSince(0).length, 0, 'a report waits for its period');
  r.loop.tick();
  assert.equal(periods.length, 1);
  assert.equal(r.store.trafficSince(0).length, 1, 'written when the period ran');

  // A migration past its commit point (v1 h1→h2), its rules not yet acknowledged by h1: the cutover is in flight.
  const now = r.clock.now();
  r.store.upsertVm({ ...r.store.getVm(V1)!, host: 'h2', state: 'migrating', updatedMs: now });
  const run: MigrationRun = {
    id: 'm1', vm: { mac: V1, port: 'tap-v1' }, from: 'h1', to: 'h2', rule: 'smart-stop', deadlineMs: null, requestedBy: 'test', startedMs: now,
    step: 'commit', stepMs: now, heardMs: now, address: { host: '127.0.0.1', port: 9000 }, linkOwner: 'migration', progress: null,
    pausedMs: now, readyMs: now, commitMs: now, acknowledgedMs: null, resumedMs: null, releasedMs: null, commitSentMs: { dest: null, source: null },
    destStats: null, sourceStats: null, query: null, abort: null, cleanupAtMs: null, finishedMs: null, error: null,
  };
  r.store.putMigration(migrationRecord(run));
  r.loop.migrations.restore();
  assert.equal(r.loop.migrations.cutoverInFlight(), true);
  r.clock.advance(100);
  traffic();
  assert.equal(r.store.trafficSince(0).length, 1, 'the new samples wait');
  r.loop.tick();
  assert.equal(periods.length, 1, 'the period waits');
  r.clock.advance(99);
  r.loop.tick();
  assert.equal(periods.length, 1, 'still within one period');
  r.clock.advance(1);
  r.loop.tick();
  assert.equal(periods.length, 2, 'one period late, it runs anyway');
  assert.equal(r.store.trafficSince(0).length, 2, 'with the samples that waited');
});

test('daemons welcomed in one batch are each marked up and pushed their rules by one reconcile for them all', async (t) => {
  const r = rig(t);
  const reconciles = async (): Promise<number> => (await r.registry.getSingleMetric('vnet_reconcile_duration_seconds')!.get())
    .values.find((v) => (v as { metricName?: string }).metricName === 'vnet_reconcile_duration_seconds_count')?.value ?? 0;
  const before = await reconciles();
  const opened = ['hub', 'h1', 'h2'].map((id) => {
    const daemon = new FakeDaemon(id, { role: id === 'hub' ? 'hub' : 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 + id.length }, vms: [] });
    const hello: HelloMessage = { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: id, facts: factsToWire(daemon.facts()) };
    return { session: fakeSession(id), hello };
  });
  r.loop.sessionsOpened(opened);
  assert.equal(await reconciles() - before, 1, 'one reconcile for the batch');
  for (const { session } of opened) {
    assert.equal(r.store.getHost(session.hostId)?.connected, true, `${session.hostId} marked up`);
    assert.deepEqual(session.sent.map((m) => m.type), ['set-links', 'set-rules'], `${session.hostId} pushed its sets`);
  }
  assert.deepEqual(r.loop.connectedHosts(), ['h1', 'h2', 'hub']);
});
