import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { detectChange, INITIAL_CHANGE_DETECTION, matrixDistance, type ChangeDetectionState } from '../../src/topology/change-detection.ts';
import { classify } from '../../src/topology/classify.ts';
import type { WeightedGraph } from '../../src/topology/normalise.ts';
import { patternEdges, type PatternKind } from '../../src/topology/patterns.ts';
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
