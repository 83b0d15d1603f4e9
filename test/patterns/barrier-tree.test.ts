import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { barrierTree } from '../../src/patterns/barrier-tree.ts';
import { quantile, summariseRounds } from '../../src/patterns/round-stats.ts';
import { PATTERN_KINDS, patternEdges } from '../../src/topology/patterns.ts';

describe('barrierTree', () => {
  it('spans every pattern on 4..16 workers using only pattern edges, rooted at 0', () => {
    for (const kind of PATTERN_KINDS) {
      for (let n = 4; n <= 16; n++) {
        let edges;
        try {
          edges = patternEdges(kind, n);
        } catch {
          continue;
        }
        const t = barrierTree(n, edges);
        assert.ok(t, `${kind}/${n}`);
        const set = new Set(edges.map(([a, b]) => `${a}-${b}`));
        assert.equal(t.parent[0], undefined);
        for (let i = 1; i < n; i++) {
          const p = t.parent[i]!;
          assert.ok(set.has(`${Math.min(p, i)}-${Math.max(p, i)}`), `${kind}/${n}: tree edge ${p}-${i} not in the pattern`);
          assert.ok(t.children[p]!.includes(i));
        }
        assert.equal(t.children.reduce((s, c) => s + c.length, 0), n - 1);
      }
    }
  });

  it('has the BFS height (bus of 8: 7, star: 1, ring of 8: 4)', () => {
    assert.equal(barrierTree(8, patternEdges('bus', 8))!.height, 7);
    assert.equal(barrierTree(8, patternEdges('star', 8))!.height, 1);
    assert.equal(barrierTree(8, patternEdges('ring', 8))!.height, 4);
  });

  it('is undefined for a graph that does not reach every worker', () => {
    assert.equal(barrierTree(4, [[0, 1], [2, 3]]), undefined);
  });
});

describe('round statistics', () => {
  it('gives mean, median, p95, min, max and total', () => {
    const s = summariseRounds([5, 1, 3, 2, 4]);
    assert.deepEqual(s, { meanMs: 3, medianMs: 3, p95Ms: 4.8, minMs: 1, maxMs: 5, totalMs: 15 });
    assert.equal(quantile([], 0.5), Number.NaN);
  });
});
