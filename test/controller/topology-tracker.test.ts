import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMac } from '../../src/common/mac.ts';
import type { TopologyEdge, TopologyView } from '../../src/controller/api-views.ts';
import type { VmRecord } from '../../src/controller/store/records.ts';
import { TopologyTracker } from '../../src/controller/topology-tracker.ts';
import type { TrafficReport } from '../../src/topology/traffic-report.ts';
import { parseVttifParams } from '../../src/topology/vttif.ts';

// Three VMs on three hosts; a bus v1 — v2 — v3 (v1 ↔ v2 and v2 ↔ v3).
const V1 = '02:00:00:00:00:01';
const V2 = '02:00:00:00:00:02';
const V3 = '02:00:00:00:00:03';
const vm = (mac: string, host: string): VmRecord => ({ mac, name: undefined, ip: undefined, host, state: 'running', source: 'deployment', updatedMs: 0 });
const VMS = [vm(V1, 'h1'), vm(V2, 'h2'), vm(V3, 'h3')];
const PERIOD = 100;

/** One period's reports ending at `endMs`: each host reports what its VM sent, `bytes` per pair with 1000-byte frames. */
function reports(endMs: number, pairs: Array<[string, string, number]>): TrafficReport[] {
  const host = new Map(VMS.map((v) => [v.mac, v.host!]));
  const byHost = new Map<string, TrafficReport['entries'][number][]>();
  for (const [src, dst, bytes] of pairs) {
    const h = host.get(src)!;
    byHost.set(h, [...(byHost.get(h) ?? []), { src: parseMac(src), dst: parseMac(dst), frames: bytes / 1000, bytes }]);
  }
  return [...byHost].map(([h, entries]) => ({ host: h, startMs: endMs - PERIOD, endMs, entries }));
}

const bus = (a: number, b: number): Array<[string, string, number]> => [[V1, V2, a], [V2, V1, a], [V2, V3, b], [V3, V2, b]];

function tracker(): TopologyTracker {
  return new TopologyTracker(parseVttifParams({ updatePeriodMs: PERIOD, smoothingIntervalMs: 200, detectionThreshold: 0.9 }));
}

test('the matrix carries smoothed frame rates beside byte rates (first update: the observation itself)', () => {
  const t = tracker();
  const out = t.step(VMS, reports(1000, bus(10_000, 5000)), 1000);
  assert.equal(out.due, true);
  const edge = out.matrix.edges.find((e) => e.src === V1 && e.dst === V2)!;
  // 10,000 bytes in 100 ms = 100,000 B/s; 10 frames in 100 ms = 100 frames/s.
  assert.equal(edge.bytesPerSec, 100_000);
  assert.equal(edge.framesPerSec, 100);
  assert.equal(out.matrix.edges.find((e) => e.src === V2 && e.dst === V3)!.framesPerSec, 50);
  // The next period at twice the frames: the frame rate moves towards it through the same filter as the bytes.
  const next = t.step(VMS, reports(1100, bus(20_000, 5000)), 1100);
  const e2 = next.matrix.edges.find((e) => e.src === V1 && e.dst === V2)!;
  const alpha = 1 - Math.exp(-100 / 200);
  assert.ok(Math.abs(e2.bytesPerSec - (100_000 + alpha * 100_000)) < 1e-6, `bytes/s ${e2.bytesPerSec}`);
  assert.ok(Math.abs(e2.framesPerSec - (100 + alpha * 100)) < 1e-9, `frames/s ${e2.framesPerSec}`);
});

test('reports between two due periods are buffered for frames as for bytes', () => {
  const t = tracker();
  t.step(VMS, reports(1000, bus(10_000, 10_000)), 1000);
  // Half a period later: not due, buffered.
  const early = t.step(VMS, reports(1050, bus(10_000, 10_000)).map((r) => ({ ...r, startMs: 1000 })), 1050);
  assert.equal(early.due, false);
  const due = t.step(VMS, reports(1100, bus(10_000, 10_000)).map((r) => ({ ...r, startMs: 1050 })), 1100);
  assert.equal(due.due, true);
  // 20 frames over 100 ms of reports: 200 frames/s observed, smoothed from 100.
  const alpha = 1 - Math.exp(-100 / 200);
  const e = due.matrix.edges.find((x) => x.src === V1 && x.dst === V2)!;
  assert.ok(Math.abs(e.framesPerSec - (100 + alpha * 100)) < 1e-9, `frames/s ${e.framesPerSec}`);
});

test('the announced topology keeps its structure while its edges carry the current smoothed weights every period', () => {
  const t = tracker();
  let now = 1000;
  let announced: TopologyView | undefined;
  for (let i = 0; i < 10 && announced === undefined; i++, now += PERIOD) {
    const out = t.step(VMS, reports(now, bus(10_000, 10_000)), now);
    if (out.changed !== undefined) announced = out.topology;
  }
  assert.ok(announced !== undefined, 'a topology is announced');
  assert.equal(announced.edges.length, 2);
  assert.equal(announced.weightsAt, announced.detectedAt);
  const at = (view: TopologyView, a: string, b: string): TopologyEdge => view.edges.find((e) => (e.a === a && e.b === b) || (e.a === b && e.b === a))!;
  assert.equal(at(announced, V1, V2).weight, 1);
  assert.equal(at(announced, V2, V3).weight, 1);

  // v2 — v3 slows to 0.8 and v1 — v2 doubles: the same structure (both edges stay above the prune fraction, so
  // no announcement), other weights and rates. (Slower still, v2 — v3 would be pruned: a new structure.)
  const seen: number[] = [];
  for (let i = 0; i < 6; i++, now += PERIOD) {
    const out = t.step(VMS, reports(now, bus(20_000, 8000)), now);
    assert.equal(out.changed, undefined, `no announcement at ${now}`);
    assert.equal(out.topology.class, announced.class);
    assert.equal(out.topology.detectedAt, announced.detectedAt);
    assert.equal(out.topology.weightsAt, now);
    assert.deepEqual(out.topology.edges.map((e) => [e.a, e.b]), announced.edges.map((e) => [e.a, e.b]));
    // The rate of an edge is the smoothed matrix's, both directions summed.
    const m = (s: string, d: string): number => out.matrix.edges.find((e) => e.src === s && e.dst === d)?.bytesPerSec ?? 0;
    assert.ok(Math.abs(at(out.topology, V1, V2).bytesPerSec - (m(V1, V2) + m(V2, V1))) < 1e-6);
    assert.ok(Math.abs(at(out.topology, V2, V3).bytesPerSec - (m(V2, V3) + m(V3, V2))) < 1e-6);
    seen.push(at(out.topology, V2, V3).weight);
  }
  // The weaker edge's weight falls period after period, towards 8000 / 20,000.
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! < seen[i - 1]!, `weights ${seen.join(', ')}`);
  assert.ok(seen.at(-1)! < 0.5 && seen.at(-1)! > 0.4, `weights ${seen.join(', ')}`);
  assert.equal(t.topology.edges.find((e) => e.a === V2 || e.b === V2) !== undefined, true);
  // The view the API serves is the tracker's current one.
  assert.equal(t.topology.weightsAt, now - PERIOD);
});
