import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectedPair, metricValue, startHarness } from './fixtures/controller-harness.ts';
import { waitFor } from '../helpers/wait.ts';

test('a daemon with a host certificate registers, its VMs are learned, and it receives its rules', async (t) => {
  const h = await startHarness(t);
  const { daemon, agent } = h.daemon('h1', { vms: [{ mac: '02:00:00:00:00:01', ip: '10.0.0.1' }] });
  agent.start();
  await waitFor(() => agent.state === 'connected', 'h1 connected');
  await waitFor(() => daemon.rulesVersion > 0, 'rules pushed to h1');
  // h1 is a spoke: v2 (on h2) is reached through the hub.
  assert.deepEqual(daemon.rules.map((r) => [r.dst, r.action]), [['02:00:00:00:00:02', { link: 'hub' }]]);
  assert.equal(h.controller.model.getHost('h1')?.state, 'up');
  assert.equal(h.controller.model.getVm('02:00:00:00:00:01')?.state, 'running');
  await waitFor(() => h.controller.model.getRules('h1')?.appliedVersion === daemon.rulesVersion, 'ack recorded');
  assert.equal(await metricValue(h.registry, 'vnet_control_sessions_opened_total', { auth: 'certificate' }), 1);
});

test('an operator fast-path link is pushed to both ends, the lower id dialling, and rules follow it', async (t) => {
  const h = await startHarness(t);
  const { a, b } = await connectedPair(h);
  const link = await h.controller.model.addFastPathLink('h2', 'h1', 'test', 'operator:admin');
  assert.deepEqual([link.a, link.b, link.kind, link.requestedBy], ['h1', 'h2', 'fast-path', 'operator']);
  await waitFor(() => a.daemon.links.length === 1 && b.daemon.links.length === 1, 'links pushed');
  assert.deepEqual(a.daemon.links[0], { peer: 'h2', address: { transport: 'tcp', host: '127.0.0.1', port: 7002 }, reason: 'test', dial: true });
  assert.equal(b.daemon.links[0]!.dial, false);
  await waitFor(() => a.daemon.rules.some((r) => r.dst === '02:00:00:00:00:02' && JSON.stringify(r.action) === '{"link":"h2"}'), 'h1 rule via fast path');
  await assert.rejects(h.controller.model.addFastPathLink('h1', 'h2', 'again', 'operator:admin'), { code: 'VNET_ERR_CONFLICT' });
  await assert.rejects(h.controller.model.addFastPathLink('h1', 'nope', 'x', 'operator:admin'), { code: 'VNET_ERR_NOT_FOUND' });
  await assert.rejects(h.controller.model.removeFastPathLink('h1', 'hub', 'operator:admin'), { code: 'VNET_ERR_CONFLICT' });
  await h.controller.model.removeFastPathLink('h1', 'h2', 'operator:admin');
  await waitFor(() => a.daemon.links.length === 0 && b.daemon.links.length === 0, 'links removed');
  assert.ok(h.controller.model.listDecisions({}).some((d) => d.kind === 'fast-path-added'));
  assert.deepEqual(h.controller.store.listAudit().map((x) => x.action), ['remove-fast-path-link', 'add-fast-path-link']);
});

test('controller restart: daemons keep their rules while it is away, state is kept, and they converge again', async (t) => {
  const h = await startHarness(t);
  const { a, b } = await connectedPair(h);
  await h.controller.model.addFastPathLink('h1', 'h2', 'before restart', 'operator:admin');
  await waitFor(() => a.daemon.rules.some((r) => JSON.stringify(r.action) === '{"link":"h2"}') && b.daemon.links.length === 1, 'converged');
  const rulesBefore = structuredClone(a.daemon.rules);
  const versionsBefore = [a.daemon.linksVersion, a.daemon.rulesVersion];
  const appliedBefore = a.daemon.applied.length;
  const port = h.controller.controlPort;

  await h.controller.close();
  await waitFor(() => a.agent.state !== 'connected' && b.agent.state !== 'connected', 'agents notice the controller is gone');
  // Away: nothing is cleared.
  assert.deepEqual(a.daemon.rules, rulesBefore);
  assert.equal(b.daemon.links.length, 1);

  await h.start(port);
  await waitFor(() => a.agent.state === 'connected' && b.agent.state === 'connected', 'both reconnected');
  // The link survived in the database, and nothing had to be re-pushed: the versions match.
  assert.equal(h.controller.model.getLink('h1', 'h2')?.reason, 'before restart');
  h.controller.tick();
  assert.deepEqual([a.daemon.linksVersion, a.daemon.rulesVersion], versionsBefore);
  assert.equal(a.daemon.applied.length, appliedBefore);
  // And the restarted controller pushes new desired state as before.
  await h.controller.model.removeFastPathLink('h1', 'h2', 'operator:admin');
  await waitFor(() => a.daemon.links.length === 0 && a.daemon.linksVersion > versionsBefore[0]!, 'change after restart pushed');
});

test('a daemon that disconnects keeps its rules and is brought up to date when it reconnects', async (t) => {
  const h = await startHarness(t);
  const a = h.daemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }] });
  a.agent.start();
  await waitFor(() => a.daemon.rulesVersion > 0, 'h1 has rules');
  await a.agent.close();
  await waitFor(() => h.controller.model.getHost('h1')?.state === 'down', 'h1 down');
  const rules = structuredClone(a.daemon.rules);
  // While h1 is away an operator adds a link that concerns it.
  await h.controller.model.addFastPathLink('h1', 'h2', 'while away', 'operator:admin');
  assert.deepEqual(a.daemon.rules, rules);
  // The daemon comes back (a new agent for the same daemon, as after a daemon restart of the channel).
  const { ControllerAgent } = await import('../../src/dataplane/controller-agent.ts');
  const { silentLogger } = await import('../../src/common/logger.ts');
  const { realClock } = await import('../../src/common/clock.ts');
  const { testPki } = await import('./fixtures/test-pki.ts');
  const pki = testPki();
  const again = new ControllerAgent({ daemon: a.daemon, logger: silentLogger(), clock: realClock }, { url: h.url(), tls: { ca: pki.ca, ...pki.host('h1') }, backoff: { initialMs: 20, maxMs: 100 } });
  t.after(() => again.close());
  again.start();
  await waitFor(() => a.daemon.links.some((l) => l.peer === 'h2'), 'link pushed after reconnect');
  assert.equal(h.controller.model.getHost('h1')?.state, 'up');
  assert.equal(await metricValue(h.registry, 'vnet_control_reconnects_total'), 1);
});

test('an agent redials with backoff after the connection drops', async (t) => {
  const h = await startHarness(t);
  const a = h.daemon('h1');
  a.agent.start();
  await waitFor(() => a.agent.state === 'connected', 'connected');
  const port = h.controller.controlPort;
  await h.controller.close();
  await waitFor(() => a.agent.state === 'backoff' || a.agent.state === 'connecting', 'backing off');
  await h.start(port);
  await waitFor(() => a.agent.state === 'connected', 'reconnected');
  assert.equal(a.agent.stats.connects, 2);
  assert.equal(a.agent.stats.disconnects, 1);
});

test('traffic reports reach the store and the matrix; link counters become metrics', async (t) => {
  const h = await startHarness(t);
  const a = h.daemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }] });
  a.daemon.linkFacts = [{ peer: 'hub', kind: 'backbone', state: 'up', direction: 'outbound', txFrames: 10, txBytes: 1000, rxFrames: 5, rxBytes: 500, txDropped: 0, decodeErrors: 2, reconnects: 1 }];
  a.agent.start();
  await waitFor(() => a.agent.state === 'connected', 'connected');
  a.daemon.addTraffic({ src: 0x020000000001, dst: 0x020000000002, frames: 3, bytes: 3000 });
  await waitFor(() => h.controller.store.trafficSince(0).length > 0, 'traffic stored');
  const s = h.controller.store.trafficSince(0)[0]!;
  assert.deepEqual([s.host, s.src, s.dst, s.frames, s.bytes], ['h1', '02:00:00:00:00:01', '02:00:00:00:00:02', 3, 3000]);
  await waitFor(() => (h.controller.model.getMatrix().edges.length > 0), 'matrix has the edge', 30_000);
  assert.equal(await metricValue(h.registry, 'vnet_link_bytes', { host: 'h1', peer: 'hub', direction: 'tx' }), 1000);
  assert.equal(await metricValue(h.registry, 'vnet_link_decode_errors', { host: 'h1' }), 2);
  const link = h.controller.model.getLink('hub', 'h1');
  assert.equal(link?.state, 'up');
  assert.equal(link?.bytes, 1500);
  const hist = await h.registry.getSingleMetric('vnet_reconcile_duration_seconds')!.get();
  assert.ok(hist.values.find((v) => (v as { metricName?: string }).metricName === 'vnet_reconcile_duration_seconds_count')!.value > 0, 'reconcile latency observed');
});

test('a daemon that refuses a change gets it counted and logged, not retried in a loop', async (t) => {
  const h = await startHarness(t, { resendAfterMs: 60_000 });
  const a = h.daemon('h1');
  a.daemon.failRules = Object.assign(new Error('bad rule'), { code: 'VNET_ERR_RULE' });
  a.agent.start();
    await waitFor(async () => (await metricValue(h.registry, 'vnet_control_nacks_total', { kind: 'rules' })) === 1, 'the refusal reaches the controller');
  h.controller.tick();
  h.controller.tick();
  // Facts go both ways every period: after two more facts reports the daemon has seen no resend.
  const reports = a.agent.stats.trafficReports;
  await waitFor(() => a.agent.stats.trafficReports >= reports + 2, 'two more periods');
  assert.equal(a.agent.stats.applyFailures, 1);
  assert.equal(await metricValue(h.registry, 'vnet_control_nacks_total', { kind: 'rules' }), 1);
  assert.equal(a.daemon.rulesVersion, 0);
});

test('adaptation adds a fast-path link between hosts that talk through the hub, and removes it when they stop', async (t) => {
  const { DEPLOYMENT_YAML, testDeployment } = await import('./fixtures/controller-harness.ts');
  const yaml = DEPLOYMENT_YAML.replace('  updatePeriodMs: 100\n', '  updatePeriodMs: 100\n  smoothingIntervalMs: 200\n  fastPathMinBytesPerSec: 100000\n');
  const h = await startHarness(t, { deployment: testDeployment(yaml) });
  const { a, b } = await connectedPair(h);
  // About 1 MB/s from v1 (h1) to v2 (h2): ten times the threshold.
  a.daemon.steady = [{ src: 0x020000000001, dst: 0x020000000002, frames: 70, bytes: 100_000 }];
  await waitFor(() => h.controller.model.getLink('h1', 'h2')?.requestedBy === 'adaptation', 'adaptation adds h1-h2', 10_000);
  await waitFor(() => a.daemon.links.some((l) => l.peer === 'h2' && l.dial === true) && b.daemon.links.some((l) => l.peer === 'h1'), 'pushed to both ends');
  await waitFor(() => a.daemon.rules.some((r) => r.dst === '02:00:00:00:00:02' && JSON.stringify(r.action) === '{"link":"h2"}'), 'rule via the fast path');
  const added = h.controller.model.listDecisions({}).find((d) => d.kind === 'fast-path-added');
  assert.match(added?.reason ?? '', /through the hub/);
  assert.notEqual(h.controller.model.getTopology().class, undefined);
  // Traffic stops: the smoothed rate decays under the keep threshold and the link goes.
  a.daemon.steady = [];
  await waitFor(() => h.controller.model.getLink('h1', 'h2') === undefined, 'adaptation removes h1-h2', 10_000);
  await waitFor(() => a.daemon.links.length === 0, 'removal pushed');
  assert.ok(h.controller.model.listDecisions({}).some((d) => d.kind === 'fast-path-removed'));
});

test('a traffic report with absurd counts is refused with an error reply and never reaches the store', async (t) => {
  const h = await startHarness(t);
  const a = h.daemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }] });
  a.agent.start();
  await waitFor(() => a.agent.state === 'connected', 'connected');
  a.daemon.addTraffic({ src: 0x020000000001, dst: 0x020000000002, frames: 1, bytes: 1e15 });
  await waitFor(() => a.agent.stats.lastError !== undefined, 'error reply');
  assert.match(a.agent.stats.lastError!.code, /^VNET_ERR_/);
  assert.equal(h.controller.store.trafficSince(0).length, 0);
  assert.equal(await metricValue(h.registry, 'vnet_control_malformed_messages_total', { reason: 'traffic-report' }), 1);
});

test('a VM cutover re-points every host\'s rule for it in one reconcile, and daemons report cannot undo a migrating pin', async (t) => {
  const h = await startHarness(t);
  const hub = h.daemon('hub');
  const a = h.daemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }] });
  const b = h.daemon('h2', { vms: [{ mac: '02:00:00:00:00:02' }] });
  for (const d of [hub, a, b]) d.agent.start();
  const ruleFor = (rules: typeof a.daemon.rules, mac: string) => JSON.stringify(rules.find((r) => r.dst === mac)?.action);
  await waitFor(() => ruleFor(hub.daemon.rules, '02:00:00:00:00:01') === '{"link":"h1"}', 'hub points v1 at h1');
  // Migration: v1 is pre-created on h2 while it still runs on h1 — the registry keeps it on h1.
  h.controller.loop.setVmLocation('02:00:00:00:00:01', 'h1', 'migrating', 'migration m1 started');
  b.daemon.addPort('v1-incoming', '02:00:00:00:00:01');
  await waitFor(() => h.controller.store.getHost('h2')?.facts?.ports.length === 2, 'h2 reported the incoming port');
  h.controller.tick();
  assert.equal(h.controller.model.getVm('02:00:00:00:00:01')?.host, 'h1');
  // Cutover.
  h.controller.loop.setVmLocation('02:00:00:00:00:01', 'h2', 'running', 'migration m1 cutover');
  await waitFor(() => ruleFor(hub.daemon.rules, '02:00:00:00:00:01') === '{"link":"h2"}', 'hub re-pointed to h2');
  assert.equal(h.controller.model.getVm('02:00:00:00:00:01')?.state, 'running');
  // The source has not released its port yet and keeps reporting it: that does not move the VM back.
  const reports = a.agent.stats.trafficReports;
  await waitFor(() => a.agent.stats.trafficReports >= reports + 2, 'h1 reported twice more');
  assert.equal(h.controller.model.getVm('02:00:00:00:00:01')?.host, 'h2');
  // Released on the source; still on h2.
  a.daemon.removePort('vm0');
  await waitFor(() => h.controller.store.getHost('h1')?.facts?.ports.length === 0, 'h1 released the port');
  assert.equal(h.controller.model.getVm('02:00:00:00:00:01')?.host, 'h2');
  assert.throws(() => h.controller.loop.setVmLocation('02:00:00:00:00:99', 'h2', 'running', 'x'), { code: 'VNET_ERR_NOT_FOUND' });
});
