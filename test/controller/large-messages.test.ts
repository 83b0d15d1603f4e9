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
