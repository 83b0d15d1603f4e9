/**
 * The default VTTIF parameters, in one place: the pure pipeline
 * (`vttif.ts`), change detection, the deployment file's policy defaults
 * (`src/controller/deployment-file.ts`) and the benchmarks all take them
 * from here, and docs/topology-inference.md states them once.
 *
 * Chosen from measurement (bench/topology/sequences.ts, which prints the
 * grid it ran): every ordered pair of the seven Patterns classes, each
 * started after short unrelated traffic (pings along a path, an ARP sweep),
 * with 10% and 30% seeded bursty background traffic, on 8 and 16 VMs. See
 * docs/topology-inference.md for the grid and the figures.
 */

/** Update rate, as the period between updates (ms). */
export const DEFAULT_UPDATE_PERIOD_MS = 1000;

/** Time constant τ of the low-pass filter over the traffic matrix (ms). */
export const DEFAULT_SMOOTHING_INTERVAL_MS = 5000;

/**
 * Share of the traffic that must move (total-variation distance from the last
 * announced matrix) for a change *within the same structure* to move the
 * baseline; structural changes (class or edge set) are announced whatever
 * their distance.
 */
export const DEFAULT_DETECTION_THRESHOLD = 0.3;

/** Fewest consecutive updates a candidate structure must hold (and be settled) before it is announced. */
export const DEFAULT_PERSISTENCE = 2;

/** A candidate structure must also hold for this fraction of the smoothing interval. */
export const DEFAULT_HOLD_FRACTION = 0.35;

/**
 * The matrix has settled on a structure when its edges' rates moved, in the
 * last update, by at most this fraction of what the filter would move them
 * for a step (relative innovation Σ|Δrate| / (α · Σ rate) over the pruned
 * edges, α = 1 − e^(−Δt/τ)): a pattern still forming (rates rising) or
 * fading (decaying leftovers of pings) is never announced.
 */
export const DEFAULT_SETTLE_LIMIT = 0.5;

/**
 * Pruning watches the traffic at two paces: an edge enters the pruned graph
 * once the smoothed matrix (τ) has it at the prune fraction, and leaves it as
 * soon as a faster view of the same traffic (time constant
 * `releaseFraction` × τ) has it under that fraction. Without it the edges of
 * a pattern that stopped, held up by background traffic, stay above the
 * line for about 2τ (on 8 VMs with 30% background the background alone
 * sits at 0.1–0.2 of the strongest edge), and the new pattern cannot be
 * announced before they are gone. 0 turns the faster view off.
 */
export const DEFAULT_RELEASE_FRACTION = 0.5;

/** Best class confidence under which the topology is irregular. */
export const DEFAULT_MIN_CONFIDENCE = 0.75;

/**
 * Two observed structures of the same class (same centre, grid, width) are
 * one structure while their pruned edge sets have a Jaccard similarity of
 * at least this: a flickering background edge does not make a new topology.
 */
export const STRUCTURE_SIMILARITY = 0.75;

/**
 * Irregular structures (no class to hold them together) need this much: the
 * shrinking mix of an old pattern fading under a new one stays irregular
 * while its edge set keeps changing.
 */
export const IRREGULAR_STRUCTURE_SIMILARITY = 0.9;
