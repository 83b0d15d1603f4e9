import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { detectChange, INITIAL_CHANGE_DETECTION, matrixDistance, type ChangeDetectionState } from '../../src/topology/change-detection.ts';
import { classify } from '../../src/topology/classify.ts';
import type { WeightedGraph } from '../../src/topology/normalise.ts';
import { patternEdges, type PatternKind } from '../../src/topology/patterns.ts';
import { seededRandom } from '../../src/topology/seeded-random.ts';
import { edgeJaccard, sameStructure } from '../../src/topology/structure.ts';
import { undirectedKey } from '../../src/topology/vm-registry.ts';

const ids = Array.from({ length: 8 }, (_, i) => `vm${i}`);

function graph(kind: PatternKind | 'empty', extra: [number, number, number][] = []): WeightedGraph {
  const weights = new Map<number, number>();
  if (kind !== 'empty') for (const [a, b] of patternEdges(kind, 8)) weights.set(undirectedKey(a, b, 8), 1);
  for (const [a, b, w] of extra) weights.set(undirectedKey(a, b, 8), w);
  return { ids, weights, maxBytesPerSecond: 1 };
}

const params = { detectionThreshold: 0.15, persistence: 2 };

function run(graphs: WeightedGraph[], state: ChangeDetectionState = INITIAL_CHANGE_DETECTION) {
  const events: { at: number; cls: string }[] = [];
  let s = state;
  graphs.forEach((g, i) => {
    const r = detectChange(s, g, classify(g), i, params);
    s = r.state;
    if (r.event !== undefined) events.push({ at: i, cls: r.event.topology.class });
  });
  return { events, state: s };
}

describe('matrixDistance', () => {
  it('is 0 for equal matrices, 1 for disjoint ones and for empty against non-empty, 0 for two empties', () => {
    assert.equal(matrixDistance(graph('ring'), graph('ring')), 0);
    assert.equal(matrixDistance(graph('empty', [[0, 1, 1]]), graph('empty', [[2, 3, 1]])), 1);
    assert.equal(matrixDistance(graph('empty'), graph('ring')), 1);
    assert.equal(matrixDistance(graph('empty'), graph('empty')), 0);
  });

  it('is the share of traffic that moved: ring (8 edges) vs ring plus 8 more equal edges = 0.5', () => {
    const more = graph('ring', [[0, 2, 1], [1, 3, 1], [2, 4, 1], [3, 5, 1], [4, 6, 1], [5, 7, 1], [6, 0, 1], [7, 1, 1]]);
    assert.ok(Math.abs(matrixDistance(graph('ring'), more) - 0.5) < 1e-12);
  });

  it('is scale-free and symmetric, and matches VMs by id when the id lists differ', () => {
    const a = graph('ring');
    const b: WeightedGraph = { ...graph('star'), weights: new Map([...graph('star').weights].map(([k, w]) => [k, w * 7])) };
    assert.ok(Math.abs(matrixDistance(a, b) - matrixDistance(b, a)) < 1e-12);
    const reversedIds = [...ids].reverse();
    const remapped: WeightedGraph = {
      ids: reversedIds,
      weights: new Map(patternEdges('ring', 8).map(([x, y]) => [undirectedKey(7 - x, 7 - y, 8), 1])),
      maxBytesPerSecond: 1,
    };
    assert.equal(matrixDistance(a, remapped), 0);
  });
});

describe('detectChange', () => {
  it('announces the first topology once it has persisted, and nothing for an empty matrix', () => {
    assert.deepEqual(run([graph('empty'), graph('empty')]).events, []);
    assert.deepEqual(run([graph('ring'), graph('ring'), graph('ring')]).events, [{ at: 1, cls: 'ring' }]);
  });

  it('never announces a one-period burst (hysteresis)', () => {
    const { events } = run([graph('ring'), graph('ring'), graph('ring'), graph('all-to-all'), graph('ring'), graph('ring')]);
    assert.deepEqual(events, [{ at: 1, cls: 'ring' }]);
  });

  it('announces a persistent change after `persistence` periods', () => {
    const { events } = run([graph('ring'), graph('ring'), graph('ring'), graph('all-to-all'), graph('all-to-all'), graph('all-to-all')]);
    assert.deepEqual(events, [{ at: 1, cls: 'ring' }, { at: 4, cls: 'all-to-all' }]);
  });

  it('ignores changes below the threshold', () => {
    const noisy = graph('ring', [[0, 4, 0.05]]);
    const { events } = run([graph('ring'), graph('ring'), noisy, noisy, noisy]);
    assert.deepEqual(events, [{ at: 1, cls: 'ring' }]);
  });

  it('waits for the classification to hold still before announcing', () => {
    // Over the threshold for 3 periods, but the class changes each period until the last two.
    const { events } = run([graph('ring'), graph('ring'), graph('star'), graph('all-to-all'), graph('all-to-all')]);
    assert.deepEqual(events, [{ at: 1, cls: 'ring' }, { at: 4, cls: 'all-to-all' }]);
  });

  it('moves the baseline silently when the weights drift but the topology is the one announced', () => {
    const heavier = graph('ring', [[0, 1, 20], [1, 2, 20]]); // same edges, shares moved well over 0.15
    const r = run([graph('ring'), graph('ring'), heavier, heavier, heavier]);
    assert.deepEqual(r.events, [{ at: 1, cls: 'ring' }]);
    assert.equal(matrixDistance(r.state.baseline!, heavier), 0);
  });

  it('does not modify the state passed in', () => {
    const s = INITIAL_CHANGE_DETECTION;
    detectChange(s, graph('ring'), classify(graph('ring')), 0, params);
    assert.equal(s.pending, 0);
    assert.equal(s.baseline, undefined);
  });
});

describe('detectChange with the smoothing window (hysteresis on the structure)', () => {
  const tau = 5000;
  const windowParams = { detectionThreshold: 0.3, persistence: 2, smoothingIntervalMs: tau, holdFraction: 0.35, settleLimit: 0.5 };
  const alpha = 1 - Math.exp(-1000 / tau);
  const ring6 = patternEdges('ring', 6);
  const path6 = patternEdges('bus', 6);
  const ids6 = Array.from({ length: 6 }, (_, i) => `vm${i}`);

  /** Run a low-pass filter over per-period edge rates (1 s periods) and the detector over its output. */
  function filtered(periods: Array<Map<number, number>>, start?: Map<number, number>) {
    let smoothed = new Map(start ?? []);
    let s = INITIAL_CHANGE_DETECTION;
    const events: { at: number; cls: string; distance: number }[] = [];
    periods.forEach((obs, i) => {
      const next = new Map<number, number>();
      for (const k of new Set([...smoothed.keys(), ...obs.keys()])) {
        const v = (smoothed.get(k) ?? 0) + alpha * ((obs.get(k) ?? 0) - (smoothed.get(k) ?? 0));
        if (v >= 1) next.set(k, v);
      }
      smoothed = next;
      const max = Math.max(0, ...smoothed.values());
      const g: WeightedGraph = { ids: ids6, weights: new Map([...smoothed].map(([k, v]) => [k, v / max])), maxBytesPerSecond: max };
      const pruned: WeightedGraph = { ...g, weights: new Map([...g.weights].filter(([, w]) => w >= 0.2)) };
      const r = detectChange(s, g, classify(pruned), 1_000_000 + 1000 * i, windowParams, pruned);
      s = r.state;
      if (r.event !== undefined) events.push({ at: i, cls: r.event.topology.class, distance: r.event.distance });
    });
    return events;
  }

  const rates = (edges: readonly (readonly [number, number])[], rate: number): Map<number, number> => new Map(edges.map(([a, b]) => [undirectedKey(a, b, 6), rate]));
  const repeat = (m: Map<number, number>, n: number): Array<Map<number, number>> => Array.from({ length: n }, () => m);

  it('announces a ring that replaced a path although the share distance (1/6) is under the threshold', () => {
    const events = filtered([...repeat(rates(path6, 100_000), 30), ...repeat(rates(ring6, 100_000), 30)]);
    assert.deepEqual(events.map((e) => e.cls), ['bus', 'ring']);
    assert.ok(events[1]!.distance < windowParams.detectionThreshold, `distance ${events[1]!.distance}`);
    assert.ok(events[1]!.at - 30 <= 15, `announced ${events[1]!.at - 30} periods after the ring started`);
  });

  it('does not announce a structure while its edges are still rising, nor the leftovers of traffic that stopped', () => {
    // Pings along the path for 3 s then nothing: the decaying path is never announced.
    const stopped = filtered([...repeat(rates(path6, 200), 3), ...repeat(new Map(), 40)]);
    assert.deepEqual(stopped, []);
    // A ring rising from nothing: announced only once its rates have settled (not in the first window).
    const rising = filtered([...repeat(new Map(), 10), ...repeat(rates(ring6, 100_000), 30)]);
    assert.deepEqual(rising.map((e) => e.cls), ['ring']);
    assert.ok(rising[0]!.at - 10 >= 4, `announced ${rising[0]!.at - 10} periods after the ring started`);
  });

  it('announces nothing more over 60 periods of a stable pattern with bursty rates', () => {
    const r = seededRandom(4);
    const periods = Array.from({ length: 60 }, () => new Map([...rates(ring6, 100_000)].map(([k, v]) => [k, v * (0.5 + r())])));
    assert.deepEqual(filtered(periods).map((e) => e.cls), ['ring']);
  });
});

describe('sameStructure', () => {
  const ids = Array.from({ length: 8 }, (_, i) => `vm${i}`);
  const graph = (edges: readonly (readonly [number, number])[]): WeightedGraph => {
    const weights = new Map<number, number>();
    for (const [a, b] of edges) weights.set(undirectedKey(a, b, 8), 1);
    return { ids, weights, maxBytesPerSecond: 1 };
  };

  it('holds a neighbour exchange whose background edges changed by more than a quarter, the fitted exchange unchanged', () => {
    // C_8(1..2) with three chords, then with three others: 16 / 22 edges in common, the same exchange.
    const a = graph([...patternEdges('neighbour', 8), [0, 3], [1, 4], [2, 5]]);
    const b = graph([...patternEdges('neighbour', 8), [3, 6], [4, 7], [5, 0]]);
    const ta = classify(a);
    const tb = classify(b);
    assert.deepEqual([ta.class, ta.k, tb.class, tb.k], ['neighbour', 2, 'neighbour', 2]);
    assert.ok(edgeJaccard(a, b) < 0.75);
    assert.equal(sameStructure(ta, a, tb, b), true);
    // A different exchange on the same VMs (another ring order) is another structure.
    const c = graph(patternEdges('neighbour', 8).map(([x, y]) => [(3 * x) % 8, (3 * y) % 8] as const));
    assert.equal(sameStructure(ta, a, classify(c), c), false);
  });
});
