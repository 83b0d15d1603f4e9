import type { Topology } from './classify.ts';
import { EdgeList } from './edge-list.ts';
import type { WeightedGraph } from './normalise.ts';
import { remapEdges, sameIds } from './vm-registry.ts';
import { IRREGULAR_STRUCTURE_SIMILARITY, STRUCTURE_SIMILARITY } from './vttif-defaults.ts';

/**
 * What change detection holds still and compares: the *structure* of the
 * communication — its class, the class's layout (star centre, grid shape,
 * exchange width), the VMs taking part, and the pruned edge set — and how
 * far the smoothed rates of that edge set still move from one update to the
 * next (whether the matrix has settled on it). Pure, O(n + m).
 */

/** The weights of `g` keyed over `ids` (undirected keys), VMs matched by id; edges of VMs not in `ids` are dropped. */
export function alignTo(g: WeightedGraph, ids: readonly string[]): EdgeList {
  if (sameIds(g.ids, ids)) return EdgeList.of(g.weights);
  const indexOfId = new Map<string, number>();
  ids.forEach((id, i) => indexOfId.set(id, i));
  return remapEdges(g.weights, g.ids, { ids, indexOfId }, true);
}

/** Jaccard similarity |A ∩ B| / |A ∪ B| of two edge sets (VMs matched by id); 1 for two empty sets. */
export function edgeJaccard(a: WeightedGraph, b: WeightedGraph): number {
  const ka = alignTo(a, b.ids).keyArray;
  const kb = EdgeList.of(b.weights).keyArray;
  if (ka.length === 0 && kb.length === 0) return 1;
  let inter = 0;
  let i = 0;
  let j = 0;
  while (i < ka.length && j < kb.length) {
    if (ka[i]! < kb[j]!) i++;
    else if (kb[j]! < ka[i]!) j++;
    else {
      inter++;
      i++;
      j++;
    }
  }
  return inter / (ka.length + kb.length - inter);
}

function sameVms(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}

/**
 * Whether two observations are the same structure: same class, same layout
 * (centre, rows × cols, k), same VMs (but for irregular graphs), and pruned
 * edge sets at least `similarity` alike (Jaccard; irregular graphs at
 * least IRREGULAR_STRUCTURE_SIMILARITY) — or, for ring, bus and neighbour
 * exchange, fitted ideals (ring order, width) that alike — so one flickering
 * background edge is not a new structure while a ring that lost or gained an
 * edge is (its class changes).
 */
export function sameStructure(
  a: Topology,
  aEdges: WeightedGraph,
  b: Topology,
  bEdges: WeightedGraph,
  similarity: number = STRUCTURE_SIMILARITY,
): boolean {
  if (a.class !== b.class) return false;
  if (a.class === 'none') return true;
  if (a.centre !== b.centre || a.rows !== b.rows || a.cols !== b.cols || a.k !== b.k) return false;
  if (a.class !== 'irregular' && !sameVms(a.vms, b.vms)) return false;
  const needed = a.class === 'irregular' ? Math.max(similarity, IRREGULAR_STRUCTURE_SIMILARITY) : similarity;
  return edgeJaccard(aEdges, bEdges) >= needed || idealJaccard(a, b) >= needed;
}

/** The ideal graph a ring, bus or neighbour-exchange fit laid out (its `order`), as id-pair keys; undefined for other classes. */
function idealEdges(t: Topology): Set<string> | undefined {
  const order = t.order;
  if (order === undefined || (t.class !== 'ring' && t.class !== 'bus' && t.class !== 'neighbour')) return undefined;
  const span = t.class === 'neighbour' ? (t.k ?? 1) : 1;
  const wrap = t.class !== 'bus';
  const n = order.length;
  const keys = new Set<string>();
  for (let i = 0; i < n; i++) {
    for (let d = 1; d <= span; d++) {
      if (i + d >= n && !wrap) break;
      const x = order[i]!;
      const y = order[(i + d) % n]!;
      if (x !== y) keys.add(x < y ? `${x}\n${y}` : `${y}\n${x}`);
    }
  }
  return keys;
}

/**
 * Jaccard similarity of the ideal graphs two observations of one class were
 * fitted to (ring, bus, neighbour exchange; 0 for the other classes). A few
 * background edges hovering at the prune line can move an observed edge set
 * by more than a quarter while the fitted ring order, and so the
 * application's pattern, stays the same: that is not a new structure.
 */
function idealJaccard(a: Topology, b: Topology): number {
  const ia = idealEdges(a);
  const ib = idealEdges(b);
  if (ia === undefined || ib === undefined || ia.size === 0) return 0;
  let inter = 0;
  for (const key of ib) if (ia.has(key)) inter++;
  return inter / (ia.size + ib.size - inter);
}

export interface RateMovement {
  /** Σ |rate_t − rate_{t−1}| / Σ rate_t over the edges: how much they moved in the last update. */
  readonly absolute: number;
  /** Σ (rate_t − rate_{t−1}) / Σ rate_t: positive while rising, about −α while decaying. */
  readonly signed: number;
  /**
   * Share of the rate Σ rate_t on edges that are fading: whose traffic in the
   * last update, inferred from the filter (o = rate_{t−1} + Δrate / α), was
   * under FADE_RATIO of their smoothed rate — the leftovers of a pattern or
   * of pings that stopped.
   */
  readonly fading: number;
}

/** An edge whose last observation is under this fraction of its smoothed rate is fading. */
export const FADE_RATIO = 0.5;

/**
 * How far the absolute rates (normalised weight × the graph's divisor) of
 * the edges of `edges` moved between the previous normalised graph and the
 * current one. Undefined without a previous graph; zero for no edges.
 */
export function rateMovement(previous: WeightedGraph | undefined, current: WeightedGraph, edges: WeightedGraph, alpha = 1): RateMovement | undefined {
  if (previous === undefined) return undefined;
  const keys = alignTo(edges, current.ids).keyArray;
  if (keys.length === 0) return { absolute: 0, signed: 0, fading: 0 };
  const cur = EdgeList.of(current.weights);
  const prev = alignTo(previous, current.ids);
  let sum = 0;
  let abs = 0;
  let signed = 0;
  let fading = 0;
  for (const key of keys) {
    const now = (cur.get(key) ?? 0) * current.maxBytesPerSecond;
    const before = (prev.get(key) ?? 0) * previous.maxBytesPerSecond;
    sum += now;
    abs += Math.abs(now - before);
    signed += now - before;
    if (alpha > 0 && before + (now - before) / alpha < FADE_RATIO * now) fading += now;
  }
  if (!(sum > 0)) return { absolute: abs > 0 ? Number.POSITIVE_INFINITY : 0, signed: abs > 0 ? Number.NEGATIVE_INFINITY : 0, fading: 0 };
  return { absolute: abs / sum, signed: signed / sum, fading: fading / sum };
}

/** An edge whose rate fell under this fraction of its rate when the structure was first seen is declining. */
export const DECLINE_RATIO = 0.7;

/**
 * Share of the current rate (over the edges of `edges`) on edges whose rate
 * fell under DECLINE_RATIO of what it was in `since` (the graph when the
 * structure was first seen): the old pattern's leftovers, held up by
 * background traffic, in a mix that otherwise looks still.
 */
export function declinedShare(since: WeightedGraph, current: WeightedGraph, edges: WeightedGraph): number {
  const keys = alignTo(edges, current.ids).keyArray;
  if (keys.length === 0) return 0;
  const cur = EdgeList.of(current.weights);
  const before = alignTo(since, current.ids);
  let sum = 0;
  let declined = 0;
  for (const key of keys) {
    const now = (cur.get(key) ?? 0) * current.maxBytesPerSecond;
    const then = (before.get(key) ?? 0) * since.maxBytesPerSecond;
    sum += now;
    if (now < DECLINE_RATIO * then) declined += now;
  }
  return sum > 0 ? declined / sum : 0;
}
