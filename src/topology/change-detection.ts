import type { Topology } from './classify.ts';
import { EdgeList } from './edge-list.ts';
import type { WeightedGraph } from './normalise.ts';
import { remapEdges, sameIds } from './vm-registry.ts';

/**
 * Threshold change detection with hysteresis. The distance between two
 * normalised (unpruned) matrices A and B is the total-variation distance of
 * their traffic shares: each is divided by its own total, then
 *
 *     d(A, B) = ½ Σ |a/ΣA − b/ΣB|        over the union of edges,
 *
 * the fraction of the traffic that would have to move to other VM pairs to
 * turn one into the other: 0 for the same shares, 1 for disjoint pairs (and
 * for empty against non-empty). Shares are robust where max-normalised
 * weights are not: a burst on one pair moves the maximum and with it every
 * weight, but moves the shares only by the burst's own size. The detector
 * compares the current matrix with the *baseline* — the matrix at the last
 * announcement,
 * not the previous period — so slow drift adds up and is caught, while
 * period-to-period jitter does not. A new topology is announced only when
 * d > detectionThreshold for `persistence` consecutive updates; then the
 * current matrix becomes the baseline. A single burst (one period over the
 * threshold) resets the count and is never announced. Two further rules
 * keep announcements meaningful while the low-pass filter converges: the
 * topology (class and pruned edge set) must itself have held for
 * `persistence` updates, so a transient mix of old and new is not
 * announced; and when the matrix moved but the topology is the one already
 * announced, the baseline moves silently (no event).
 *
 * The state is an immutable value: pass it in, get the next one back.
 */

export interface ChangeDetectionParams {
  readonly detectionThreshold: number;
  readonly persistence: number;
}

export interface ChangeDetectionState {
  readonly baseline: WeightedGraph | undefined;
  readonly announced: Topology | undefined;
  /** Consecutive updates so far with d > threshold. */
  readonly pending: number;
  /** Signature of the last update's topology, and for how many consecutive updates it has held. */
  readonly lastSignature: string | undefined;
  readonly stableFor: number;
}

export interface TopologyChangeEvent {
  readonly kind: 'topology-changed';
  readonly atMs: number;
  readonly distance: number;
  /** Updates the change persisted before it was announced. */
  readonly periods: number;
  readonly previous: Topology | undefined;
  readonly topology: Topology;
}

export const INITIAL_CHANGE_DETECTION: ChangeDetectionState = Object.freeze({
  baseline: undefined,
  announced: undefined,
  pending: 0,
  lastSignature: undefined,
  stableFor: 0,
});

/** What must hold still before a topology is announced: class and pruned edge set (any irregular graph counts as one). */
export function topologySignature(t: Topology): string {
  return t.class === 'irregular' ? 'irregular' : `${t.class}:${t.fingerprint}`;
}

/** Total-variation distance between the traffic shares of two graphs (VMs matched by id), in [0, 1]. */
export function matrixDistance(a: WeightedGraph, b: WeightedGraph): number {
  let wa: EdgeList;
  if (sameIds(a.ids, b.ids)) wa = EdgeList.of(a.weights);
  else {
    const indexOfId = new Map<string, number>();
    b.ids.forEach((id, i) => indexOfId.set(id, i));
    wa = remapEdges(a.weights, a.ids, { ids: b.ids, indexOfId }, true);
  }
  const wb = EdgeList.of(b.weights);
  let sumA = 0;
  let sumB = 0;
  for (const w of wa.valueArray) sumA += w;
  for (const w of wb.valueArray) sumB += w;
  if (sumA === 0 || sumB === 0) return sumA === sumB ? 0 : 1;
  const ka = wa.keyArray;
  const va = wa.valueArray;
  const kb = wb.keyArray;
  const vb = wb.valueArray;
  let diff = 0;
  let i = 0;
  let j = 0;
  while (i < ka.length || j < kb.length) {
    if (j >= kb.length || (i < ka.length && ka[i]! < kb[j]!)) diff += va[i++]! / sumA;
    else if (i >= ka.length || kb[j]! < ka[i]!) diff += vb[j++]! / sumB;
    else diff += Math.abs(va[i++]! / sumA - vb[j++]! / sumB);
  }
  return diff / 2;
}

export interface ChangeDetection {
  readonly state: ChangeDetectionState;
  readonly distance: number;
  readonly event?: TopologyChangeEvent;
  /** The matrix moved past the threshold but the topology is the one announced: the baseline was moved silently. */
  readonly rebased?: boolean;
}

/** One detector update with the current normalised graph and its classification. */
export function detectChange(
  state: ChangeDetectionState,
  current: WeightedGraph,
  topology: Topology,
  nowMs: number,
  params: ChangeDetectionParams,
): ChangeDetection {
  const distance = state.baseline === undefined ? (current.weights.size > 0 ? 1 : 0) : matrixDistance(state.baseline, current);
  const signature = topologySignature(topology);
  const stableFor = signature === state.lastSignature ? state.stableFor + 1 : 1;
  const next = { ...state, lastSignature: signature, stableFor };
  if (!(distance > params.detectionThreshold)) return { state: { ...next, pending: 0 }, distance };
  const pending = state.pending + 1;
  if (pending < params.persistence) return { state: { ...next, pending }, distance };
  if (state.announced !== undefined && topologySignature(state.announced) === signature && signature !== 'irregular') {
    // The weights drifted (e.g. the filter still converging) but the topology is the one announced.
    return { state: { ...next, baseline: current, announced: topology, pending: 0 }, distance, rebased: true };
  }
  // Wait until the classification itself holds still, so a transient mix of old and new is never announced.
  if (stableFor < params.persistence) return { state: { ...next, pending }, distance };
  const event: TopologyChangeEvent = {
    kind: 'topology-changed',
    atMs: nowMs,
    distance,
    periods: pending,
    previous: state.announced,
    topology,
  };
  return { state: { ...next, baseline: current, announced: topology, pending: 0 }, distance, event };
}
