import { buildGraph, minDegreeVertices, neighbours, pathOrder, type UndirectedGraph } from './graph-structure.ts';
import { boundFor, jaccard, type Fit } from './class-fit.ts';
import { undirectedKey } from './vm-registry.ts';

/**
 * The fits that lay the VMs out in an order (see class-fit.ts for the
 * vocabulary): ring and bus from a Warnsdorff walk started at the
 * lowest-degree vertices, neighbour exchange C_n(1..k) from the edges whose
 * ends share 2k − 2 neighbours (only ring-adjacent pairs do), each repaired
 * by pairwise swaps on small graphs when a few noise edges misled the walk.
 */

function orderEdgesPresent(g: UndirectedGraph, order: Int32Array, span: number, wrap: boolean): number {
  const n = order.length;
  let count = 0;
  for (let i = 0; i < n; i++) {
    for (let d = 1; d <= span; d++) {
      const j = i + d;
      if (j >= n && !wrap) break;
      if (g.has(order[i]!, order[j % n]!)) count++;
    }
  }
  return count;
}

/** Orders of at most this many vertices are improved by pairwise swaps (O(n³·span) at worst, bounded passes). */
const LOCAL_SEARCH_MAX_N = 64;

/**
 * Swap pairs of positions while that puts more of the graph's edges between
 * order-neighbours (within `span`). Repairs the greedy orders when a few
 * extra (noise) edges misled them; only for small graphs.
 */
function improveOrder(g: UndirectedGraph, order: Int32Array, span: number, wrap: boolean): Int32Array {
  const n = order.length;
  if (n > LOCAL_SEARCH_MAX_N) return order;
  const cur = Int32Array.from(order);
  let score = orderEdgesPresent(g, cur, span, wrap);
  for (let pass = 0; pass < 8; pass++) {
    let improved = false;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const t = cur[i]!;
        cur[i] = cur[j]!;
        cur[j] = t;
        const next = orderEdgesPresent(g, cur, span, wrap);
        if (next > score) {
          score = next;
          improved = true;
        } else {
          cur[j] = cur[i]!;
          cur[i] = t;
        }
      }
    }
    if (!improved) break;
  }
  return cur;
}

export function fitRingAndBus(g: UndirectedGraph): Fit[] {
  let bestRing: Fit | undefined;
  let bestBus: Fit | undefined;
  for (const start of minDegreeVertices(g, 3)) {
    const walked = pathOrder(g, start);
    const ringDone = g.n >= 4 && orderEdgesPresent(g, walked, 1, true) === g.n;
    const order = ringDone ? walked : improveOrder(g, walked, 1, false);
    const pathInter = orderEdgesPresent(g, order, 1, false);
    const closing = g.has(order[0]!, order[g.n - 1]!) ? 1 : 0;
    const ring = jaccard(pathInter + closing, g.m, g.n);
    const bus = jaccard(pathInter, g.m, g.n - 1);
    if (g.n >= 4 && (bestRing === undefined || ring > bestRing.confidence)) bestRing = { cls: 'ring', confidence: ring, order };
    if (g.n >= 3 && (bestBus === undefined || bus > bestBus.confidence)) bestBus = { cls: 'bus', confidence: bus, order };
  }
  return [bestRing, bestBus].filter((f): f is Fit => f !== undefined);
}

/**
 * Neighbour exchange: the width k comes from the median degree d (2k in
 * C_n(1..k)). An odd d does not say which width: a few noise edges on a
 * small graph raise half the degrees of C_8(1..2) from 4 to 5, and
 * C_8(1..3) then fits worse than C_8(1..2) does, so both ⌊d/2⌋ and ⌈d/2⌉
 * are fitted and the better kept.
 */
export function fitNeighbour(g: UndirectedGraph, minConfidence: number, maxWork: number): Fit | undefined {
  const degrees = Int32Array.from(g.degree).sort();
  const median = degrees[degrees.length >> 1]!;
  let work = 0;
  for (let v = 0; v < g.n; v++) work += g.degree[v]! * g.degree[v]!;
  if (work > maxWork) return undefined;
  let best: Fit | undefined;
  for (const k of new Set([Math.floor(median / 2), Math.ceil(median / 2)])) {
    const fit = fitNeighbourOfWidth(g, k, Math.max(minConfidence, best?.confidence ?? 0));
    if (fit !== undefined && (best === undefined || fit.confidence > best.confidence)) best = fit;
  }
  return best;
}

function fitNeighbourOfWidth(g: UndirectedGraph, k: number, minConfidence: number): Fit | undefined {
  if (k < 2 || 2 * k + 1 >= g.n) return undefined;
  if (boundFor(g, g.n * k, 2 * k) < minConfidence) return undefined;
  // Cheap necessary condition on a sample first: in C_n(1..k) every vertex has two
  // edges whose ends share 2k − 2 neighbours (allow one less for noise). Random
  // graphs have almost no common neighbours and stop here.
  const samples = Math.min(g.n, 256);
  let fitting = 0;
  for (let i = 0; i < samples; i++) {
    const u = Math.floor((i * g.n) / samples);
    const nu = neighbours(g, u);
    let strong = 0;
    for (const v of nu) {
      let c = 0;
      for (const w of nu) if (w !== v && g.has(v, w)) c++;
      if (c >= 2 * k - 3 && ++strong >= 2) break;
    }
    if (strong >= 2) fitting++;
    // Stop as soon as the remaining samples cannot reach half.
    if (fitting + (samples - 1 - i) < samples * 0.5) break;
  }
  if (fitting < samples * 0.5) return undefined;
  // In C_n(1..k), adjacent-on-the-ring vertices share 2k − 2 neighbours, all other edges fewer.
  const common = new Map<number, number>();
  for (let u = 0; u < g.n; u++) {
    const nu = neighbours(g, u);
    for (const v of nu) {
      if (v <= u) continue;
      let c = 0;
      for (const w of nu) if (w !== v && g.has(v, w)) c++;
      common.set(undirectedKey(u, v, g.n), c);
    }
  }
  // Candidate ring edges two ways: every edge sharing ≥ 2k − 2 neighbours, and
  // each vertex's two edges sharing the most (kept when both ends pick them),
  // which survives a few extra (noise) edges.
  const byCount = [...common].filter(([, c]) => c >= 2 * k - 2).map(([key]) => key);
  const picks = new Map<number, number>();
  for (let u = 0; u < g.n; u++) {
    const ranked = Array.from(neighbours(g, u)).sort(
      (a, b) => common.get(undirectedKey(u, b, g.n))! - common.get(undirectedKey(u, a, g.n))! || a - b,
    );
    for (const v of ranked.slice(0, 2)) {
      const key = undirectedKey(u, v, g.n);
      picks.set(key, (picks.get(key) ?? 0) + 1);
    }
  }
  const mutual = [...picks].filter(([, c]) => c === 2).map(([key]) => key);
  let best: Fit | undefined;
  for (const keys of [byCount, mutual]) {
    const sub = buildGraph(keys, g.n);
    if (sub.n < 3) continue;
    for (const start of minDegreeVertices(sub, 2)) {
      const subOrder = pathOrder(sub, start);
      // Sub-graph vertices → g's vertices, then any vertex the sub-graph missed.
      const order = new Int32Array(g.n);
      const placed = new Uint8Array(g.n);
      let len = 0;
      for (const x of subOrder) {
        const v = sub.vms[x]!;
        order[len++] = v;
        placed[v] = 1;
      }
      for (let v = 0; v < g.n; v++) if (placed[v] === 0) order[len++] = v;
      const inter = orderEdgesPresent(g, order, k, true);
      const improved = inter === g.n * k ? order : improveOrder(g, order, k, true);
      const confidence = jaccard(orderEdgesPresent(g, improved, k, true), g.m, g.n * k);
      if (best === undefined || confidence > best.confidence) best = { cls: 'neighbour', confidence, k, order: improved };
    }
  }
  return best;
}
