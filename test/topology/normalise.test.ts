import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalise, prune, pruneReleased } from '../../src/topology/normalise.ts';
import { edgeKey, undirectedKey } from '../../src/topology/vm-registry.ts';

const ids = ['a', 'b', 'c', 'd'];

describe('normalise and prune', () => {
  it('gives an empty graph for an empty or all-zero matrix', () => {
    assert.equal(normalise({ ids, rates: new Map() }).weights.size, 0);
    const z = normalise({ ids, rates: new Map([[edgeKey(0, 1, 4), 0]]) });
    assert.equal(z.weights.size, 0);
    assert.equal(z.maxBytesPerSecond, 0);
  });

  it('symmetrises (a→b plus b→a) and divides by the strongest edge', () => {
    const g = normalise({ ids, rates: new Map([[edgeKey(0, 1, 4), 300], [edgeKey(1, 0, 4), 100], [edgeKey(2, 3, 4), 100]]) });
    assert.equal(g.maxBytesPerSecond, 400);
    assert.equal(g.weights.get(undirectedKey(0, 1, 4)), 1);
    assert.equal(g.weights.get(undirectedKey(2, 3, 4)), 0.25);
  });

  it('ignores NaN, infinite and negative rates rather than spreading them', () => {
    const g = normalise({ ids, rates: new Map([[edgeKey(0, 1, 4), Number.NaN], [edgeKey(1, 2, 4), Number.POSITIVE_INFINITY], [edgeKey(2, 3, 4), -5], [edgeKey(0, 3, 4), 10]]) });
    assert.deepEqual([...g.weights], [[undirectedKey(0, 3, 4), 1]]);
  });

  it('prunes edges below the fraction and keeps those at or above', () => {
    const g = normalise({ ids, rates: new Map([[edgeKey(0, 1, 4), 100], [edgeKey(1, 2, 4), 20], [edgeKey(2, 3, 4), 19]]) });
    const p = prune(g, 0.2);
    assert.deepEqual([...p.weights.keys()].sort(), [undirectedKey(0, 1, 4), undirectedKey(1, 2, 4)].sort());
  });

  it('with a faster view, keeps only the edges at the fraction in both, with the slow weights', () => {
    // 1–2 is still at 0.3 in the smoothed matrix but its recent traffic stopped; 2–3 rose in the recent view only.
    const slow = normalise({ ids, rates: new Map([[edgeKey(0, 1, 4), 100], [edgeKey(1, 2, 4), 30], [edgeKey(2, 3, 4), 10]]) });
    const fast = normalise({ ids, rates: new Map([[edgeKey(0, 1, 4), 100], [edgeKey(1, 2, 4), 5], [edgeKey(2, 3, 4), 50]]) });
    const p = pruneReleased(slow, fast, 0.2);
    assert.deepEqual([...p.weights], [[undirectedKey(0, 1, 4), 1]]);
    assert.equal(p.maxBytesPerSecond, 100);
  });
});
