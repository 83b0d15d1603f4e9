import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EdgeList } from '../../src/topology/edge-list.ts';
import { seededRandom } from '../../src/topology/seeded-random.ts';

function reference(keys: number[], values: number[]): [number, number][] {
  const m = new Map<number, number>();
  keys.forEach((k, i) => m.set(k, (m.get(k) ?? 0) + values[i]!));
  return [...m].sort((a, b) => a[0] - b[0]);
}

describe('EdgeList', () => {
  for (const [label, count, maxKey] of [
    ['short list (packed sort)', 100, 1e6],
    ['long list (radix sort)', 20_000, 2 ** 32 - 1],
    ['keys beyond 2^32, short list (packed)', 300, 2 ** 31],
    ['keys near 2^53 (comparator)', 2000, 2 ** 52],
  ] as const) {
    it(`sorts and sums equal keys: ${label}`, () => {
      const r = seededRandom(count);
      const keys = Array.from({ length: count }, () => Math.floor(r() * Math.min(maxKey, count / 2)) * Math.floor(maxKey / Math.min(maxKey, count / 2)));
      const values = keys.map(() => Math.floor(r() * 100));
      const e = EdgeList.fromPairs(Float64Array.from(keys), Float64Array.from(values), count);
      assert.deepEqual([...e], reference(keys, values));
      for (let i = 1; i < e.keyArray.length; i++) assert.ok(e.keyArray[i - 1]! < e.keyArray[i]!);
    });
  }

  it('reads like a ReadonlyMap', () => {
    const e = EdgeList.of(new Map([[5, 1], [2, 3], [9, 4]]));
    assert.equal(e.size, 3);
    assert.equal(e.get(2), 3);
    assert.equal(e.get(3), undefined);
    assert.ok(e.has(9));
    assert.deepEqual([...e.keys()], [2, 5, 9]);
    assert.deepEqual([...e.values()], [3, 1, 4]);
    const seen: number[] = [];
    e.forEach((v, k) => seen.push(k, v));
    assert.deepEqual(seen, [2, 3, 5, 1, 9, 4]);
    assert.equal(EdgeList.of(e), e);
    assert.deepEqual([...e.filter((v) => v > 1)], [[2, 3], [9, 4]]);
  });

  it('is empty for no pairs', () => {
    assert.equal(EdgeList.fromPairs(new Float64Array(4), new Float64Array(4), 0).size, 0);
  });
});
