import type { EdgeList } from './edge-list.ts';

/**
 * The strongest edges of a graph, for the listing of an irregular topology:
 * a quickselect for the cut-off weight, then a sort of the kept edges only.
 */

/**
 * The value at position k of `xs` sorted ascending (as Float64Array#sort would
 * put it), by quickselect: O(m) expected instead of a full sort. Reorders xs.
 * With a NaN present (never in weights, but this is a pure function) it sorts.
 */
function kthSmallest(xs: Float64Array, k: number): number {
  for (let i = 0; i < xs.length; i++) if (xs[i] !== xs[i]) return xs.sort()[k]!;
  let lo = 0;
  let hi = xs.length - 1;
  while (hi > lo) {
    const pivot = xs[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (xs[i]! < pivot) i++;
      while (xs[j]! > pivot) j--;
      if (i <= j) {
        const t = xs[i]!;
        xs[i++] = xs[j]!;
        xs[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return xs[k]!;
  }
  return xs[k]!;
}

/** The `count` strongest edges, strongest first (ties by key); O(m) plus a sort of the kept ones. */
export function strongest(weights: EdgeList, count: number): [number, number][] {
  let threshold = Number.NEGATIVE_INFINITY;
  if (weights.size > count && count > 0) {
    threshold = kthSmallest(Float64Array.from(weights.valueArray), weights.size - count);
  }
  const kept: [number, number][] = [];
  const keys = weights.keyArray;
  const values = weights.valueArray;
  for (let i = 0; i < keys.length; i++) if (values[i]! >= threshold) kept.push([keys[i]!, values[i]!]);
  kept.sort((x, y) => y[1] - x[1] || x[0] - y[0]);
  return kept.slice(0, count);
}
