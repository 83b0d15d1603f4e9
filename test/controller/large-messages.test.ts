/**
 * Reports and rule sets larger than one control message (protocol 3): sent
 * in parts, reassembled, used only whole (control-parts.ts, part-assembler.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { formatMac, parseMac } from '../../src/common/mac.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { metricValue, startHarness } from './fixtures/controller-harness.ts';
import { testPki } from './fixtures/test-pki.ts';
import { hello, rawClient } from './fixtures/raw-control-client.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { factsToWire } from '../../src/control/control-protocol.ts';
import { waitFor } from '../helpers/wait.ts';

const mac = (i: number): string => formatMac(0x021000000000 + i);

test('a traffic report of 50,000 pairs goes in parts and reaches the traffic matrix intact', async (t) => {
  const h = await startHarness(t);
  const vms = Array.from({ length: 224 }, (_, i) => ({ mac: mac(i) }));
  const { daemon, agent } = h.daemon('h1', { vms });
  const pairs: Array<[string, string]> = [];
  for (let s = 0; s < vms.length && pairs.length < 50_000; s++) {
    for (let d = 0; d < vms.length && pairs.length < 50_000; d++) if (s !== d) pairs.push([vms[s]!.mac, vms[d]!.mac]);
  }
  let bytes = 0;
  for (const [i, [src, dst]] of pairs.entries()) {
    daemon.addTraffic({ src: parseMac(src), dst: parseMac(dst), frames: 1 + (i % 7), bytes: 1000 + i });
    bytes += 1000 + i;
  }
  agent.start();
  // One report, several parts: more than a message holds.
  await waitFor(() => h.controller.model.getMatrix().edges.length === pairs.length, 'all 50,000 pairs in the matrix', 60_000);
  const edges = new Set(h.controller.model.getMatrix().edges.map((e) => `${e.src}>${e.dst}`));
  assert.ok(pairs.every(([s, d]) => edges.has(`${s}>${d}`)));
  const samples = h.controller.store.trafficSince(0);
  assert.equal(samples.length, pairs.length);
  assert.equal(samples.reduce((sum, x) => sum + x.bytes, 0), bytes);
  // Stored as one record (one etcd key), not a row per pair.
  assert.equal((h.controller.store.db.prepare('SELECT count(*) AS n FROM traffic_reports').get() as { n: number }).n, 1);
  assert.equal(await metricValue(h.registry, 'vnet_control_malformed_messages_total'), 0);
});

test('a rule set for 20,000 VMs goes in parts and is applied by a daemon as one version, and acknowledged', async (t) => {
  const h = await startHarness(t);
  // h2 says hello with 20,000 ports: its facts too go in parts (more ports than one message carries).
  const vms = Array.from({ length: 20_000 }, (_, i) => ({ mac: mac(i) }));
  const h2 = h.daemon('h2', { vms });
  h2.agent.start();
  const pki = testPki();
  const hub = await Daemon.start({ logger: silentLogger(), transport: new MemoryTransport({ logger: silentLogger() }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub' });
  const applied: number[] = [];
  const control = {
    hostId: hub.hostId,
    facts: () => hub.facts(),
    applyFastPathLinks: (v: number, l: Parameters<Daemon['applyFastPathLinks']>[1]) => hub.applyFastPathLinks(v, l),
    applyRules: (v: number, r: Parameters<Daemon['applyRules']>[1]) => { hub.applyRules(v, r); applied.push(v); },
    takeTrafficSnapshot: () => hub.takeTrafficSnapshot(),
    onEvent: (fn: Parameters<Daemon['onEvent']>[0]) => hub.onEvent(fn),
  };
  const agent = new ControllerAgent({ daemon: control, logger: silentLogger(), clock: realClock }, { url: h.url(), tls: { ca: pki.ca, ...pki.host('hub') }, backoff: { initialMs: 20, maxMs: 100 } });
  t.after(async () => { await agent.close(); await hub.close(); });
  agent.start();
  await waitFor(() => h.controller.store.listVms().filter((v) => v.host === 'h2' && v.state === 'running').length >= 20_000, 'the 20,000 VMs of h2 learned', 60_000);
  const wanted = await waitFor(() => {
    const desired = h.controller.store.getVersions('hub').rulesVersion;
    return desired > 0 && hub.rulesVersion === desired && h.controller.loop.appliedVersions('hub')?.rulesVersion === desired ? desired : undefined;
  }, 'the hub at the desired rules version, acknowledged', 60_000);
  const rules = hub.table.rules().filter((r) => r.origin === 'controller');
  const toH2 = new Set(rules.filter((r) => r.action.kind === 'link' && r.action.link === 'h2' && r.dst.kind === 'eq').map((r) => (r.dst as { mac: number }).mac));
  assert.ok(vms.every((v) => toH2.has(parseMac(v.mac))), 'a rule to h2 for every VM');
  assert.ok(applied.includes(wanted));
  assert.equal(agent.stats.partsRefused + agent.stats.partsDropped, 0);
});

/** A traffic message of h1 (v1 → v2), with a part header unless whole. */
/** Reports' intervals count from a recent instant, set by the test: a period stores its reports, then prunes those past retention. */
let T0 = 0;

function trafficPart(seq: number, part: { index: number; count: number } | undefined, endMs = 2000, bytes = 100): string {
  const entries = [{ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', frames: 1, bytes }];
  return JSON.stringify({ type: 'traffic', seq, snapshot: { startMs: T0 + 1000, endMs: T0 + endMs, entries }, ...(part !== undefined ? { part } : {}) });
}

test('forged, overlapping and incomplete part sequences are refused with a clear error; nothing of them is used', async (t) => {
  const h = await startHarness(t);
  T0 = Date.now() - 5000;
  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h1'));
  await waitFor(() => c.received.some((m) => m['type'] === 'welcome'), 'welcome');
  const errors = (): Array<Record<string, unknown>> => c.received.filter((m) => m['type'] === 'error');

  // Overlap: part 1 twice. The sequence is dropped; its last part then has no start.
  c.ws.send(trafficPart(1, { index: 0, count: 2 }));
  c.ws.send(trafficPart(1, { index: 0, count: 2 }));
  c.ws.send(trafficPart(1, { index: 1, count: 2 }));
  // Parts that disagree outside their lists (another interval).
  c.ws.send(trafficPart(2, { index: 0, count: 2 }));
  c.ws.send(trafficPart(2, { index: 1, count: 2 }, 3000));
  // A count that changes midway, and a part beyond the count.
  c.ws.send(trafficPart(3, { index: 0, count: 3 }));
  c.ws.send(trafficPart(3, { index: 1, count: 2 }));
  c.ws.send(trafficPart(4, { index: 2, count: 2 }));
  await waitFor(() => errors().length === 5, 'five refusals');
  assert.ok(errors().slice(0, 4).every((e) => e['code'] === 'VNET_ERR_CONTROL_PARTS' && e['fatal'] === false && e['inReplyTo'] === 'parts'));
  assert.match(String(errors()[0]!['message']), /traffic report 1 part 1 of 2: expected part 2/);
  assert.match(String(errors()[2]!['message']), /disagrees with part 1/);
  // An index beyond the count never passes the decoder.
  assert.equal(errors()[4]!['code'], 'VNET_ERR_CONTROL_MESSAGE');

  // Incomplete: seq 5 never finishes; seq 6 (whole) supersedes it. Only seq 6 is used.
  c.ws.send(trafficPart(5, { index: 0, count: 2 }, 2000, 555));
  c.ws.send(trafficPart(6, undefined, 2500, 666));
  await waitFor(() => h.controller.store.trafficSince(0).length === 1, 'the whole report stored');
  assert.deepEqual(h.controller.store.trafficSince(0).map((x) => x.bytes), [666]);
  // Late: the rest of seq 5 is stale.
  c.ws.send(trafficPart(5, { index: 1, count: 2 }, 2000, 555));
  await waitFor(() => errors().length === 6, 'stale part refused');
  assert.match(String(errors()[5]!['message']), /traffic report 6 has already begun/);
  assert.equal(await metricValue(h.registry, 'vnet_control_malformed_messages_total', { reason: 'parts' }), 5);
  assert.equal(await metricValue(h.registry, 'vnet_control_malformed_messages_total', { reason: 'parts-dropped' }), 1);
  assert.deepEqual(h.controller.store.trafficSince(0).map((x) => x.bytes), [666]);
  assert.equal(h.controller.model.getHost('h1')?.state, 'up');
});

test('a hello whose facts come in parts is welcomed only once they are whole; anything else in between is refused', async (t) => {
  const h = await startHarness(t);
  const facts = factsToWire(new FakeDaemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }, { mac: '02:00:00:00:00:03' }] }).facts());
  const half = (ports: typeof facts.ports): typeof facts => ({ ...facts, ports });
  const good = await rawClient(h, testPki().host('h1'));
  good.ws.send(hello('h1', { facts: half(facts.ports.slice(0, 1)), part: { index: 0, count: 2 } }));
  good.ws.send(JSON.stringify({ type: 'facts', seq: 0, facts: half(facts.ports.slice(1)), part: { index: 1, count: 2 } }));
  await waitFor(() => good.received.some((m) => m['type'] === 'welcome'), 'welcome after the last part');
  await waitFor(() => h.controller.store.getVm('02:00:00:00:00:03')?.host === 'h1', 'the VM of part 2 learned');
  good.ws.close();

  const bad = await rawClient(h, testPki().host('h2'));
  bad.ws.send(hello('h2', { part: { index: 0, count: 2 } }));
  bad.ws.send(trafficPart(1, undefined));
  assert.equal(await bad.closed, 4000);
  assert.equal(bad.received[0]?.['code'], 'VNET_ERR_CONTROL_STATE');
  assert.ok(!bad.received.some((m) => m['type'] === 'welcome'));
  assert.notEqual(h.controller.model.getHost('h2')?.state, 'up');
});

test('a single message over the limit is still refused, and over 4x the limit still closes the channel', async (t) => {
  const h = await startHarness(t, { maxMessageBytes: 4096 });
  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h1'));
  await waitFor(() => c.received.some((m) => m['type'] === 'welcome'), 'welcome');
  // A part is one message: over the limit it is refused, never assembled.
  c.ws.send(trafficPart(1, { index: 0, count: 2 }).replace('"entries":[', `"entries":[${'{"src":"02:00:00:00:00:01","dst":"02:00:00:00:00:02","frames":1,"bytes":1},'.repeat(80)}`));
  await waitFor(() => c.received.some((m) => m['code'] === 'VNET_ERR_CONTROL_MESSAGE_TOO_LARGE'), 'too large');
  c.ws.send('x'.repeat(4 * 4096 + 10));
  assert.equal(await c.closed, 1009);
});
