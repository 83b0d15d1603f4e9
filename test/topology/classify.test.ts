import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classify } from '../../src/topology/classify.ts';
import type { WeightedGraph } from '../../src/topology/normalise.ts';
import { PATTERN_KINDS, patternEdges, type PatternEdge } from '../../src/topology/patterns.ts';
import { seededRandom } from '../../src/topology/seeded-random.ts';
import { undirectedKey } from '../../src/topology/vm-registry.ts';

function graphOf(n: number, edges: readonly PatternEdge[], perm?: readonly number[]): WeightedGraph {
  const weights = new Map<number, number>();
  for (const [a, b] of edges) weights.set(undirectedKey(perm?.[a] ?? a, perm?.[b] ?? b, n), 1);
  return { ids: Array.from({ length: n }, (_, i) => `vm${i}`), weights, maxBytesPerSecond: 1 };
}

function shuffled(n: number, seed: number): number[] {
  const r = seededRandom(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

describe('classify', () => {
  it('calls an empty graph (no VM, one VM, all-zero traffic) "none"', () => {
    const t = classify(graphOf(1, []));
    assert.equal(t.class, 'none');
    assert.equal(t.edgeCount, 0);
    assert.deepEqual(t.vms, []);
  });

  for (const n of [8, 16]) {
    for (const kind of PATTERN_KINDS) {
      it(`recognises ${kind} on ${n} VMs numbered in random order, with confidence 1`, () => {
        const perm = shuffled(n, n * 31 + kind.length);
        const t = classify(graphOf(n, patternEdges(kind, n), perm));
        assert.equal(t.class, kind);
        assert.equal(t.confidence, 1);
        assert.equal(t.vms.length, n);
      });
    }
  }

  it('names the centre of a star', () => {
    const perm = shuffled(8, 5);
    const t = classify(graphOf(8, patternEdges('star', 8), perm));
    assert.equal(t.centre, `vm${perm[0]}`);
  });

  it('gives the grid dimensions of a mesh and the width of a neighbour exchange', () => {
    assert.deepEqual([classify(graphOf(12, patternEdges('mesh', 12))).rows, classify(graphOf(12, patternEdges('mesh', 12))).cols], [3, 4]);
    const t = classify(graphOf(20, patternEdges('neighbour', 20, { k: 3 }), shuffled(20, 9)));
    assert.equal(t.class, 'neighbour');
    assert.equal(t.k, 3);
  });

  it('keeps the width of a neighbour exchange when noise edges make the median degree odd', () => {
    // C_8(1..2) plus two chords: half the VMs have degree 5, the median is 5, and
    // C_8(1..3) (24 edges, 18 of them present) fits worse than C_8(1..2) (16 of 18).
    const edges: PatternEdge[] = [...patternEdges('neighbour', 8), [0, 4], [2, 6]];
    const t = classify(graphOf(8, edges, shuffled(8, 5)));
    assert.equal(t.class, 'neighbour');
    assert.equal(t.k, 2);
    assert.equal(t.confidence, 16 / 18);
  });

  it('lays out a ring in ring order: consecutive VMs in `order` are joined', () => {
    const perm = shuffled(10, 3);
    const edges = patternEdges('ring', 10);
    const t = classify(graphOf(10, edges, perm));
    const set = new Set(edges.map(([a, b]) => [`vm${perm[a]}`, `vm${perm[b]}`].sort().join('-')));
    const order = t.order!;
    for (let i = 0; i < order.length; i++) assert.ok(set.has([order[i]!, order[(i + 1) % order.length]!].sort().join('-')));
  });

  it('keeps the class with confidence < 1 when one extra edge is present', () => {
    const edges = [...patternEdges('ring', 16), [0, 8] as const];
    const t = classify(graphOf(16, edges, shuffled(16, 2)));
    assert.equal(t.class, 'ring');
    assert.ok(Math.abs(t.confidence - 16 / 17) < 1e-9, `confidence ${t.confidence}`);
  });

  it('tells a binary tree from a star and a bus (all are trees)', () => {
    assert.equal(classify(graphOf(8, patternEdges('tree', 8))).class, 'tree');
    assert.equal(classify(graphOf(8, patternEdges('star', 8))).class, 'star');
    assert.equal(classify(graphOf(8, patternEdges('bus', 8))).class, 'bus');
  });

  it('calls a random sparse graph irregular and lists its strongest edges, with the best guess', () => {
    const r = seededRandom(11);
    const n = 40;
    const weights = new Map<number, number>();
    for (let i = 0; i < 120; i++) {
      const a = Math.floor(r() * n);
      const b = Math.floor(r() * n);
      if (a !== b) weights.set(undirectedKey(a, b, n), 0.2 + 0.8 * r());
    }
    const t = classify({ ids: Array.from({ length: n }, (_, i) => `vm${i}`), weights, maxBytesPerSecond: 1 }, { maxListedEdges: 5 });
    assert.equal(t.class, 'irregular');
    assert.equal(t.edges!.length, 5);
    assert.equal(t.edgesLeftOff, weights.size - 5);
    const top = Math.max(...weights.values());
    assert.equal(t.edges![0]!.weight, top);
    assert.ok(t.bestGuess !== undefined && t.bestGuess.confidence < 0.75);
    assert.ok(t.confidence > 0 && t.confidence <= 1);
  });

  it('reports two disjoint rings as two components, and not as one ring', () => {
    const edges = [...patternEdges('ring', 6), ...patternEdges('ring', 6).map(([a, b]) => [a + 6, b + 6] as const)];
    const t = classify(graphOf(12, edges));
    assert.equal(t.components, 2);
    assert.notEqual(t.class, 'ring');
  });

  it('gives equal fingerprints for equal edge sets and different ones otherwise', () => {
    const a = classify(graphOf(8, patternEdges('ring', 8)));
    const b = classify(graphOf(8, patternEdges('ring', 8)));
    const c = classify(graphOf(8, patternEdges('ring', 8), shuffled(8, 1)));
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.fingerprint, c.fingerprint);
  });

  it('classifies a 10,000-VM random sparse graph quickly (bails out of hopeless classes)', () => {
    const r = seededRandom(3);
    const n = 10_000;
    const weights = new Map<number, number>();
    for (let v = 0; v < n; v++) for (let j = 0; j < 5; j++) weights.set(undirectedKey(v, (v + 1 + Math.floor(r() * (n - 1))) % n, n), 1);
    const started = performance.now();
    const t = classify({ ids: Array.from({ length: n }, (_, i) => `vm${i}`), weights, maxBytesPerSecond: 1 });
    const ms = performance.now() - started;
    assert.equal(t.class, 'irregular');
    assert.ok(ms < 2000, `took ${ms} ms`);
  });

  it('classifies a 10,000-VM ring exactly', () => {
    const n = 10_000;
    const t = classify(graphOf(n, patternEdges('ring', n), shuffled(n, 4)));
    assert.equal(t.class, 'ring');
    assert.equal(t.confidence, 1);
  });
});
