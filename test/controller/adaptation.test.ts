/**
 * Adaptation end to end in one process, with the real parts: the controller
 * (SQLite, control channel, VTTIF, adaptation), daemons with their agents
 * over mutual TLS on loopback, memory-port VMs running a Patterns graph as
 * L2 traffic (the demo's wiring, src/cli/demo-runner.ts).
 *
 * pattern traffic → topology event → fast-path links added, with their
 * reasons, and carrying the traffic (the hub forwards nothing more) →
 * traffic stops → links removed once the smoothed rate falls under the
 * keep threshold (hysteresis), each step a decision in the API's list and
 * on the event stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { startDemo } from '../../src/cli/demo-runner.ts';
import type { EventView } from '../../src/controller/api-events.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { waitFor } from '../helpers/wait.ts';

const YAML = `name: adapt
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: c1, site: lab, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: c2, site: lab, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: c3, site: lab, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: c4, site: lab, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
vms:
  - { name: vm0, mac: "02:00:00:00:06:00", ip: 10.60.0.10, host: c1 }
  - { name: vm1, mac: "02:00:00:00:06:01", ip: 10.60.0.11, host: c2 }
  - { name: vm2, mac: "02:00:00:00:06:02", ip: 10.60.0.12, host: c3 }
  - { name: vm3, mac: "02:00:00:00:06:03", ip: 10.60.0.13, host: c4 }
  - { name: vm4, mac: "02:00:00:00:06:04", ip: 10.60.0.14, host: c1 }
controller:
  control: { host: 127.0.0.1, port: 0 }
  api: { host: 127.0.0.1, port: 0 }
policy:
  updatePeriodMs: 200
  smoothingIntervalMs: 400
  detectionThreshold: 0.25
  fastPathBudget: 6
  fastPathMinBytesPerSec: 40000
`;

test('pattern traffic → topology event → fast-path links carrying it → traffic stops → links removed after hysteresis', { timeout: 60_000 }, async (t) => {
  const workDir = mkdtempSync(join(tmpdir(), 'vnet-adapt-'));
  t.after(() => rmSync(workDir, { recursive: true, force: true }));
  // A ring over vm0..vm4: vm4 sits with vm0 on c1, so the ring crosses c1–c2, c2–c3, c3–c4 and c4–c1.
  const demo = await startDemo({ logger: silentLogger() }, { deployment: parseDeployment(YAML, 'adapt.yaml'), workDir, ephemeralPorts: true, pattern: 'ring', cycleMs: 1e9, bytesPerSecond: 100_000, netns: false });
  t.after(() => demo.close());
  const traffic = demo.traffic;
  assert.ok(traffic !== undefined, 'memory-port traffic generator');
  traffic.stop();
  const model = demo.process.controller.model;
  const events: EventView[] = [];
  t.after(model.subscribe((e) => { if (e.type !== 'traffic-updated') events.push(e); }));
  await waitFor(() => model.listHosts().every((h) => h.state === 'up') && model.listVms().every((v) => v.state === 'running'), 'every host up, every VM running', 20_000);
  const hubTx = (): number => demo.daemons.get('hub')!.facts().links.reduce((s, l) => s + l.txFrames, 0);
  const fastPath = (a: string, b: string) => demo.daemons.get(a)!.facts().links.find((l) => l.peer === b && l.kind === 'fast-path');
  const pairs: Array<[string, string]> = [['c1', 'c2'], ['c2', 'c3'], ['c3', 'c4'], ['c1', 'c4']];

  const hubBefore = hubTx();
  traffic.start();
  await waitFor(() => hubTx() > hubBefore + 50, 'traffic through the hub before any fast path');

  // The topology event, and the class on the API.
  await waitFor(() => events.some((e) => e.type === 'topology-changed' && e.payload.topology.class === 'ring'), 'topology-changed: ring', 10_000);
  assert.equal(model.getTopology().class, 'ring');
  assert.equal(model.getTopology().edges.length, 5);

  // Fast-path links for every host pair the ring crosses, requested by adaptation, with their reasons.
  await waitFor(() => pairs.every(([a, b]) => model.getLink(a, b)?.kind === 'fast-path'), 'fast-path links for the ring', 10_000);
  for (const [a, b] of pairs) {
    const l = model.getLink(a, b)!;
    assert.equal(l.requestedBy, 'adaptation');
    assert.match(l.reason, /through the hub/);
  }
  assert.equal(model.getLink('c1', 'c3'), undefined, 'no link for a pair the ring does not use');
  const added = model.listDecisions({}).filter((d) => d.kind === 'fast-path-added');
  assert.deepEqual(added.map((d) => `${d.detail.a as string}-${d.detail.b as string}`).sort(), pairs.map(([a, b]) => `${a}-${b}`).sort());
  assert.ok(added.every((d) => /through the hub/.test(d.reason)));
  assert.ok(events.some((e) => e.type === 'decision' && e.payload.decision.kind === 'fast-path-added'), 'decisions on the event stream');

  // Carrying the traffic: every link up and its counters growing, and the hub forwarding nothing more.
  await waitFor(() => pairs.every(([a, b]) => fastPath(a, b)?.state === 'up'), 'fast paths up at the daemons', 10_000);
  const carried = new Map(pairs.map(([a, b]) => [`${a}-${b}`, fastPath(a, b)!.txFrames]));
  await waitFor(() => pairs.every(([a, b]) => fastPath(a, b)!.txFrames > carried.get(`${a}-${b}`)! + 20), 'frames on every fast path', 10_000);
  let quietSince = Date.now();
  let last = hubTx();
  await waitFor(() => {
    const now = hubTx();
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
    return Date.now() - quietSince >= 600;
  }, 'the hub no longer forwarding the ring (600 ms without a frame)', 10_000);
  assert.ok(model.listLinks().filter((l) => l.kind === 'fast-path').every((l) => l.state === 'up'));

  // Traffic stops: hysteresis keeps the links while the smoothed rate decays, then they go.
  const stopped = Date.now();
  traffic.stop();
  await waitFor(() => model.listLinks().every((l) => l.kind !== 'fast-path'), 'fast-path links removed', 15_000);
  assert.ok(Date.now() - stopped >= 200, 'not removed within the same period the traffic stopped');
  const removed = model.listDecisions({}).filter((d) => d.kind === 'fast-path-removed');
  assert.equal(removed.length, 4);
  assert.ok(removed.every((d) => d.reason.length > 0));
  assert.ok(events.some((e) => e.type === 'link-removed' && e.payload.actor === 'adaptation'));
  await waitFor(() => [...demo.daemons.values()].every((d) => d.facts().links.every((l) => l.kind !== 'fast-path')), 'daemons closed the fast paths', 10_000);
});

test('a link that would pay off but does not fit the budget is a decision with its reason, logged once while it holds', async (t) => {
  const { connectedPair, DEPLOYMENT_YAML, startHarness, testDeployment } = await import('./fixtures/controller-harness.ts');
  const yaml = DEPLOYMENT_YAML.replace('  updatePeriodMs: 100\n', '  updatePeriodMs: 100\n  smoothingIntervalMs: 200\n  fastPathMinBytesPerSec: 100000\n  fastPathBudget: 0\n');
  const h = await startHarness(t, { deployment: testDeployment(yaml) });
  const { a } = await connectedPair(h);
  a.daemon.steady = [{ src: 0x020000000001, dst: 0x020000000002, frames: 70, bytes: 100_000 }];
  const held = (): number => h.controller.model.listDecisions({}).filter((d) => d.kind === 'no-change' && /fast-path budget \(0\) full/.test(d.reason)).length;
  await waitFor(() => held() === 1, 'budget decision', 10_000);
  const d = h.controller.model.listDecisions({}).find((x) => x.kind === 'no-change')!;
  assert.match(d.reason, /h1↔h2 would save .* but the total budget of 0 links/);
  assert.deepEqual((d.detail.notChosen as Array<{ a: string; b: string }>).map((x) => `${x.a}-${x.b}`), ['h1-h2']);
  // Several more periods with the same traffic: no repeat, and no link.
  const ticks = a.agent.stats.trafficReports;
  await waitFor(() => a.agent.stats.trafficReports >= ticks + 5, 'five more periods');
  assert.equal(held(), 1);
  assert.equal(h.controller.model.getLink('h1', 'h2'), undefined);
});
