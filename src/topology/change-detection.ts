import type { Topology } from './classify.ts';
import { EdgeList } from './edge-list.ts';
import { DEFAULT_PRUNE_FRACTION, prune, type WeightedGraph } from './normalise.ts';
import { smoothingWeight } from './smoothing.ts';
import { declinedShare, edgeJaccard, rateMovement, sameStructure } from './structure.ts';
import { remapEdges, sameIds } from './vm-registry.ts';
import { DEFAULT_HOLD_FRACTION, DEFAULT_SETTLE_LIMIT, STRUCTURE_SIMILARITY } from './vttif-defaults.ts';

/**
 * Change detection with hysteresis on the *structure* of the communication
 * (class, layout, VMs and pruned edge set; see structure.ts), not only on
 * the weights.
 *
 * A structure other than the one announced (a `candidate`) is announced once
 *
 *   1. it has held: the same structure on `persistence` consecutive updates
 *      and for at least `holdFraction` × the smoothing interval (a flicker
 *      does not hold that long; an irregular structure, such as the mix of
 *      old and new while the filter converges, must hold
 *      IRREGULAR_HOLD_FACTOR times longer), and
 *   2. the matrix has settled on it: in the last update the rates of its
 *      edges moved by at most `settleLimit` of what the filter moves them
 *      for a step of the traffic (Σ|Δrate| / (α · Σ rate), α = 1 − e^(−Δt/τ)).
 *      While a pattern is still forming its new edges are still rising, and
 *      the leftovers of traffic that stopped (a few pings) are decaying:
 *      neither is announced; nor is a structure with more than
 *      MAX_FADING_SHARE of its rate on fading edges (edges whose last
 *      observed traffic, inferred from the filter, was under half their
 *      smoothed rate: the old pattern's leftovers in a mix of old and
 *      new), or on edges whose rate fell by more than 30% since the
 *      structure was first seen (leftovers held up by background traffic).
 *      Traffic too bursty to settle per edge (but with no fading edge) is
 *      announced once its structure has held for 2τ and its total is
 *      neither rising nor falling.
 *
 * — whatever its traffic-share distance to the last announcement: a ring
 * replacing a path differs by one edge in six (a distance of 1/6), a star
 * replacing a mix may differ by less, and both are new topologies. The first
 * topology is announced by the same rule, once the filter has seen one
 * smoothing interval of traffic (its first matrix is the first observation
 * as is, which would look settled at once); "none" is announced only after
 * something else was.
 *
 * Within the announced structure the traffic shares may still drift (the
 * filter converging, the application's balance changing): when the
 * total-variation distance of the shares to the baseline,
 *
 *     d(A, B) = ½ Σ |a/ΣA − b/ΣB|        over the union of edges,
 *
 * exceeds `detectionThreshold` for `persistence` updates, the baseline moves
 * silently (no event). d is reported with every update and event.
 *
 * Called without `smoothingIntervalMs` (the older two-parameter shape) the
 * detector knows nothing of the filter: no hold time beyond `persistence`
 * updates, and settling is measured on the raw per-update movement.
 *
 * The state is an immutable value: pass it in, get the next one back.
 */

/**
 * An irregular structure must hold this many times longer: the mix of an
 * old pattern fading and a new one rising is irregular, and lasts up to
 * ≈ 1.8τ in the smoothed matrix (until the old edges fall under the prune
 * fraction; with the faster view that releases them, vttif.ts, about half).
 */
export const IRREGULAR_HOLD_FACTOR = 4;

/** A structure is not settled while more than this share of its rate is on fading edges (structure.ts). */
export const MAX_FADING_SHARE = 0.05;

export interface ChangeDetectionParams {
  /** Share of traffic that must move within one structure for the baseline to move, in (0, 1). */
  readonly detectionThreshold: number;
  /** Fewest consecutive updates a candidate structure must hold (≥ 1). */
  readonly persistence: number;
  /** τ of the low-pass filter (ms); enables the hold time and settling relative to it. */
  readonly smoothingIntervalMs?: number;
  /** A candidate must also hold for this fraction of the smoothing interval (default 0.35). */
  readonly holdFraction?: number;
  /** Largest relative movement of the candidate's rates, per filter step, that counts as settled (default 0.5). */
  readonly settleLimit?: number;
  /** Used to prune `current` when the caller passes no pruned graph (default 0.2). */
  readonly pruneFraction?: number;
}

export interface ChangeDetectionState {
  /** Normalised matrix at the last announcement (or silent rebase). */
  readonly baseline: WeightedGraph | undefined;
  readonly announced: Topology | undefined;
  /** Pruned graph at the last announcement. */
  readonly announcedEdges: WeightedGraph | undefined;
  /** Consecutive updates so far with d > threshold within the announced structure. */
  readonly pending: number;
  /** The structure held (its latest classed observation and pruned edges), since when and for how many consecutive updates. */
  readonly candidate: Topology | undefined;
  readonly candidateEdges: WeightedGraph | undefined;
  readonly candidateSinceMs: number | undefined;
  /** The normalised graph when the candidate was first seen (for edges declining since). */
  readonly candidateGraph: WeightedGraph | undefined;
  readonly stableFor: number;
  /** Time of the first update: nothing is announced before the filter has seen one smoothing interval. */
  readonly startedAtMs: number | undefined;
  /** Last update's normalised graph and time (for how far the rates still move). */
  readonly previous: WeightedGraph | undefined;
  readonly previousAtMs: number | undefined;
}

export interface TopologyChangeEvent {
  readonly kind: 'topology-changed';
  readonly atMs: number;
  readonly distance: number;
  /** Updates the new structure held before it was announced. */
  readonly periods: number;
  readonly previous: Topology | undefined;
  readonly topology: Topology;
}

export const INITIAL_CHANGE_DETECTION: ChangeDetectionState = Object.freeze({
  baseline: undefined,
  announced: undefined,
  announcedEdges: undefined,
  pending: 0,
  candidate: undefined,
  candidateEdges: undefined,
  candidateSinceMs: undefined,
  candidateGraph: undefined,
  stableFor: 0,
  startedAtMs: undefined,
  previous: undefined,
  previousAtMs: undefined,
});

/** A short text naming a topology's class and exact edge set (irregular graphs all share one). */
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
  /** The shares moved past the threshold within the announced structure: the baseline was moved silently. */
  readonly rebased?: boolean;
  /** Whether the matrix has settled on the current structure (see above). */
  readonly settled?: boolean;
}

/**
 * One detector update with the current normalised (unpruned) graph and its
 * classification. `pruned` is the graph the classification saw; without it,
 * `current` is pruned here with `params.pruneFraction`.
 */
export function detectChange(
  state: ChangeDetectionState,
  current: WeightedGraph,
  topology: Topology,
  nowMs: number,
  params: ChangeDetectionParams,
  pruned: WeightedGraph = prune(current, params.pruneFraction ?? DEFAULT_PRUNE_FRACTION),
): ChangeDetection {
  const distance = state.baseline === undefined ? (current.weights.size > 0 ? 1 : 0) : matrixDistance(state.baseline, current);
  const tau = params.smoothingIntervalMs;
  const settleLimit = params.settleLimit ?? DEFAULT_SETTLE_LIMIT;
  // Candidate: the structure seen now, and how long it has held. An irregular
  // observation whose edges are those of a classed candidate (one noise edge
  // spoiling a grid, say) does not break that candidate's hold, nor is it
  // announced.
  const cand = state.candidate;
  const candEdges = state.candidateEdges;
  let same = false;
  let absorbed = false;
  if (cand !== undefined && candEdges !== undefined) {
    same = sameStructure(cand, candEdges, topology, pruned);
    if (!same && topology.class === 'irregular' && cand.class !== 'irregular' && cand.class !== 'none' && edgeJaccard(candEdges, pruned) >= STRUCTURE_SIMILARITY) {
      same = true;
      absorbed = true;
    }
  }
  const structure = absorbed ? cand! : topology;
  const structureEdges = absorbed ? candEdges! : pruned;
  const holdFraction = (params.holdFraction ?? DEFAULT_HOLD_FRACTION) * (structure.class === 'irregular' ? IRREGULAR_HOLD_FACTOR : 1);
  const holdMs = tau === undefined ? 0 : holdFraction * tau;
  const stableFor = same ? state.stableFor + 1 : 1;
  const candidateSinceMs = same && state.candidateSinceMs !== undefined ? state.candidateSinceMs : nowMs;
  const heldMs = nowMs - candidateSinceMs;
  const startedAtMs = state.startedAtMs ?? nowMs;
  const warm = tau === undefined || nowMs - startedAtMs >= tau;
  const held = warm && stableFor >= params.persistence && heldMs >= holdMs;
  // Settled: the candidate's rates no longer rising or falling.
  const alpha = tau === undefined ? 1 : smoothingWeight(nowMs - (state.previousAtMs ?? nowMs), tau);
  const moved = state.previousAtMs === undefined || !(alpha > 0) ? undefined : rateMovement(state.previous, current, pruned, alpha);
  const sinceGraph = same && state.candidateGraph !== undefined ? state.candidateGraph : current;
  const settled = pruned.weights.size === 0 || (moved !== undefined && moved.fading <= MAX_FADING_SHARE &&
    declinedShare(sinceGraph, current, pruned) <= MAX_FADING_SHARE && (
    moved.absolute <= settleLimit * alpha ||
    (tau !== undefined && heldMs >= 2 * tau && Math.abs(moved.signed) <= settleLimit * alpha)
  ));
  const next: ChangeDetectionState = {
    ...state,
    candidate: absorbed ? cand : topology,
    candidateEdges: absorbed ? candEdges : pruned,
    candidateSinceMs,
    candidateGraph: sinceGraph,
    stableFor,
    startedAtMs,
    previous: current,
    previousAtMs: nowMs,
  };
  const isNew = state.announced === undefined || state.announcedEdges === undefined
    ? topology.class !== 'none'
    : !sameStructure(state.announced, state.announcedEdges, structure, structureEdges);
  if (isNew) {
    if (!(held && settled) || absorbed) return { state: { ...next, pending: 0 }, distance, settled };
    const event: TopologyChangeEvent = { kind: 'topology-changed', atMs: nowMs, distance, periods: stableFor, previous: state.announced, topology };
    return {
      state: { ...next, baseline: current, announced: topology, announcedEdges: pruned, pending: 0 },
      distance,
      event,
      settled,
    };
  }
  // The structure announced: follow drifting shares silently.
  if (!(distance > params.detectionThreshold)) return { state: { ...next, pending: 0 }, distance, settled };
  const pending = state.pending + 1;
  if (pending < params.persistence) return { state: { ...next, pending }, distance, settled };
  return { state: { ...next, baseline: current, pending: 0 }, distance, rebased: true, settled };
}
