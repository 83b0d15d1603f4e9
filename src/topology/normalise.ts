import { EdgeList } from './edge-list.ts';
import type { TrafficMatrix } from './traffic-matrix.ts';
import { undirectedKey } from './vm-registry.ts';

/**
 * Normalisation and pruning (VTTIF): the directed matrix becomes an
 * undirected graph — communication is treated as undirected, the weight of
 * {a, b} being rate(a→b) + rate(b→a) — whose weights are divided by the
 * strongest edge, so they lie in (0, 1]. Pruning then drops the edges below
 * a fraction of the strongest.
 *
 * Default prune fraction 0.2. Why: in a BSP-style application each pattern
 * edge carries a comparable share (the weakest pattern edges of the Patterns
 * graphs are at ≥ 0.5 of the strongest), while background traffic of 10% of
 * the total, spread over many pairs and smoothed, mostly stays under 0.15 of
 * the strongest edge per pair. Over 7,840 simulated periods (all patterns,
 * 8 and 16 VMs, 10 seeds) prune 0.1 misclassified 373 periods, 0.15 eight,
 * 0.2 none; higher would start to cut real edges of applications whose edges
 * are unequal (trees with heavier upper levels).
 *
 * `pruneReleased` prunes against two views of the same traffic, the
 * smoothed one and a faster one: an edge enters at the pace of the first and
 * leaves at the pace of the second (vttif.ts).
 */

export const DEFAULT_PRUNE_FRACTION = 0.2;

export interface WeightedGraph {
  readonly ids: readonly string[];
  /** Undirected weights keyed by undirectedKey(a, b, ids.length), each in (0, 1] after normalisation. */
  readonly weights: ReadonlyMap<number, number>;
  /** The strongest undirected edge in bytes per second (the divisor); 0 for an empty matrix. */
  readonly maxBytesPerSecond: number;
}

/** Symmetrise and divide by the strongest edge. All-zero or empty input gives an empty graph. */
export function normalise(matrix: TrafficMatrix): WeightedGraph {
  const rates = EdgeList.of(matrix.rates);
  const n = matrix.ids.length;
  const sums = n <= 4 * rates.size + 1024 ? symmetriseSorted(rates, n) : symmetriseBySort(rates, n);
  let max = 0;
  for (const v of sums.valueArray) if (v > max) max = v;
  if (max === 0) return { ids: matrix.ids, weights: EdgeList.EMPTY, maxBytesPerSecond: 0 };
  const inv = 1 / max;
  const w = sums.valueArray;
  for (let i = 0; i < w.length; i++) w[i] = w[i]! * inv;
  return { ids: matrix.ids, weights: sums, maxBytesPerSecond: max };
}

function usable(rate: number): boolean {
  return rate > 0 && rate !== Number.POSITIVE_INFINITY;
}

/** Undirected sums by re-keying every edge and sorting (any n). */
function symmetriseBySort(rates: EdgeList, n: number): EdgeList {
  const keys = new Float64Array(rates.size);
  const values = new Float64Array(rates.size);
  let len = 0;
  const rk = rates.keyArray;
  const rv = rates.valueArray;
  for (let i = 0; i < rk.length; i++) {
    const rate = rv[i]!;
    if (!usable(rate)) continue;
    const key = rk[i]!;
    keys[len] = undirectedKey(Math.floor(key / n), key % n, n);
    values[len] = rate;
    len++;
  }
  return EdgeList.fromPairs(keys, values, len);
}

/**
 * Undirected sums without a general sort: the edges a→b with a ≤ b keep their
 * key and stay in order; the edges a→b with a > b, re-keyed as {b, a}, come out
 * in key order from one counting pass over b (they arrive ordered by a); a
 * merge of the two sorted lists then adds rate(a→b) + rate(b→a). O(m + n).
 */
function symmetriseSorted(rates: EdgeList, n: number): EdgeList {
  const rk = rates.keyArray;
  const rv = rates.valueArray;
  const m = rk.length;
  const fwdKeys = new Float64Array(m);
  const fwdValues = new Float64Array(m);
  let fwd = 0;
  const revAt = new Int32Array(m);
  let rev = 0;
  const bucket = new Int32Array(n + 1);
  for (let i = 0; i < m; i++) {
    if (!usable(rv[i]!)) continue;
    const key = rk[i]!;
    const a = Math.floor(key / n);
    const b = key % n;
    if (a <= b) {
      fwdKeys[fwd] = key;
      fwdValues[fwd] = rv[i]!;
      fwd++;
    } else {
      revAt[rev++] = i;
      bucket[b + 1]!++;
    }
  }
  for (let b = 0; b < n; b++) bucket[b + 1]! += bucket[b]!;
  const revKeys = new Float64Array(rev);
  const revValues = new Float64Array(rev);
  for (let r = 0; r < rev; r++) {
    const i = revAt[r]!;
    const key = rk[i]!;
    const a = Math.floor(key / n);
    const b = key % n;
    const at = bucket[b]!++;
    revKeys[at] = b * n + a;
    revValues[at] = rv[i]!;
  }
  const keys = new Float64Array(fwd + rev);
  const values = new Float64Array(fwd + rev);
  let len = 0;
  let i = 0;
  let j = 0;
  while (i < fwd || j < rev) {
    if (j >= rev || (i < fwd && fwdKeys[i]! < revKeys[j]!)) {
      keys[len] = fwdKeys[i]!;
      values[len++] = fwdValues[i++]!;
    } else if (i >= fwd || revKeys[j]! < fwdKeys[i]!) {
      keys[len] = revKeys[j]!;
      values[len++] = revValues[j++]!;
    } else {
      keys[len] = fwdKeys[i]!;
      values[len++] = fwdValues[i++]! + revValues[j++]!;
    }
  }
  return len === 0 ? EdgeList.EMPTY : new EdgeList(keys.subarray(0, len), values.subarray(0, len));
}

/** Keep the edges whose normalised weight is at least `fraction` (in [0, 1]). */
export function prune(graph: WeightedGraph, fraction: number = DEFAULT_PRUNE_FRACTION): WeightedGraph {
  return { ids: graph.ids, weights: EdgeList.of(graph.weights).filter((w) => w >= fraction), maxBytesPerSecond: graph.maxBytesPerSecond };
}

/**
 * Keep the edges that are at least `fraction` of the strongest in `graph`
 * *and* in `recent`, a faster-smoothed view of the same traffic (same ids):
 * an edge enters at the pace of `graph`'s filter and leaves at `recent`'s
 * (vttif.ts, `releaseFraction`). The weights kept are `graph`'s.
 */
export function pruneReleased(graph: WeightedGraph, recent: WeightedGraph, fraction: number = DEFAULT_PRUNE_FRACTION): WeightedGraph {
  const fast = EdgeList.of(recent.weights);
  return {
    ids: graph.ids,
    weights: EdgeList.of(graph.weights).filter((w, key) => w >= fraction && (fast.get(key) ?? 0) >= fraction),
    maxBytesPerSecond: graph.maxBytesPerSecond,
  };
}
