import { z } from 'zod';
import { ConfigError } from '../common/errors.ts';
import { classify, type Topology } from './classify.ts';
import { detectChange, INITIAL_CHANGE_DETECTION, type ChangeDetectionState, type TopologyChangeEvent } from './change-detection.ts';
import { ReportShapeError, type TrafficReportError } from './errors.ts';
import { normalise, prune, pruneReleased, DEFAULT_PRUNE_FRACTION, type WeightedGraph } from './normalise.ts';
import { validateReport } from './report-validation.ts';
import {
  DEFAULT_DETECTION_THRESHOLD,
  DEFAULT_HOLD_FRACTION,
  DEFAULT_MIN_CONFIDENCE,
  DEFAULT_PERSISTENCE,
  DEFAULT_RELEASE_FRACTION,
  DEFAULT_SETTLE_LIMIT,
  DEFAULT_SMOOTHING_INTERVAL_MS,
  DEFAULT_UPDATE_PERIOD_MS,
} from './vttif-defaults.ts';
import { smoothMatrix, type SmoothedMatrix } from './smoothing.ts';
import { mergeReports, type MergeIssue, type UnknownMacTraffic } from './traffic-matrix.ts';
import type { TrafficReport } from './traffic-report.ts';
import type { RegistryIndex } from './vm-registry.ts';

/**
 * VTTIF as one pure step per update period:
 *
 *   validate → merge → smooth → normalise/prune → classify → change detection
 *
 * The merged matrix is smoothed twice: with τ = the smoothing interval (the
 * matrix everything else sees) and with τ × releaseFraction (a faster view);
 * an edge is kept by pruning when it is at the prune fraction in both, so it
 * enters at the slow filter's pace and leaves at the fast one's.
 *
 * The controller calls `vttifStep(state, reports, registry, params, now)`
 * whenever reports arrive or its update timer fires, and keeps the returned
 * state. The update rate is enforced here: before 3/4 of `updatePeriodMs`
 * has passed since the last update, valid reports are only buffered in the
 * state (`due: false`); the next due step merges everything buffered.
 * Reports that fail validation are returned in `rejected` and never reach
 * the matrix.
 *
 * A caller that already validated its reports at the edge (the controller
 * does, as each arrives: `validateReport`) calls `vttifStepValidated` with
 * the validated `TrafficReport`s instead, and nothing is validated twice.
 */

export interface VttifParams {
  /** Update rate, as the period between updates (ms). */
  readonly updatePeriodMs: number;
  /** Time constant of the low-pass filter (ms). */
  readonly smoothingIntervalMs: number;
  /** Distance (share of traffic moved, see change-detection.ts) from the last announced matrix that counts as a change, in (0, 1). */
  readonly detectionThreshold: number;
  /** Fewest consecutive updates a new structure must hold before it is announced (≥ 1). */
  readonly persistence: number;
  /** A new structure must also hold for this fraction of the smoothing interval, in [0, 10]. */
  readonly holdFraction: number;
  /** Largest movement of a new structure's rates, per filter step, that counts as settled, in (0, 10]. */
  readonly settleLimit: number;
  /** Edges under this fraction of the strongest are pruned, in [0, 1). */
  readonly pruneFraction: number;
  /**
   * Time constant of the faster view of the traffic, as a fraction of the
   * smoothing interval, in [0, 1]: an edge leaves the pruned graph once that
   * view has it under the prune fraction (0: the smoothed matrix alone decides).
   */
  readonly releaseFraction: number;
  /** Best class confidence under which the topology is irregular, in (0, 1]. */
  readonly minConfidence: number;
}

export const DEFAULT_VTTIF_PARAMS: VttifParams = Object.freeze({
  updatePeriodMs: DEFAULT_UPDATE_PERIOD_MS,
  smoothingIntervalMs: DEFAULT_SMOOTHING_INTERVAL_MS,
  detectionThreshold: DEFAULT_DETECTION_THRESHOLD,
  persistence: DEFAULT_PERSISTENCE,
  holdFraction: DEFAULT_HOLD_FRACTION,
  settleLimit: DEFAULT_SETTLE_LIMIT,
  pruneFraction: DEFAULT_PRUNE_FRACTION,
  releaseFraction: DEFAULT_RELEASE_FRACTION,
  minConfidence: DEFAULT_MIN_CONFIDENCE,
});

const paramsSchema = z.strictObject({
  updatePeriodMs: z.number().int().min(10).max(3_600_000).optional(),
  smoothingIntervalMs: z.number().int().min(0).max(86_400_000).optional(),
  detectionThreshold: z.number().gt(0).lt(1).optional(),
  persistence: z.number().int().min(1).max(1000).optional(),
  holdFraction: z.number().min(0).max(10).optional(),
  settleLimit: z.number().gt(0).max(10).optional(),
  pruneFraction: z.number().min(0).lt(1).optional(),
  releaseFraction: z.number().min(0).max(1).optional(),
  minConfidence: z.number().gt(0).max(1).optional(),
});

/** Validate (strictly: unknown keys rejected) and complete VTTIF parameters; throws ConfigError naming the key. */
export function parseVttifParams(input: unknown, file?: string): VttifParams {
  const parsed = paramsSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.length > 0 ? issue.path.join('.') : (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : undefined);
    throw new ConfigError(`invalid VTTIF parameter: ${issue.message}`, { file, key });
  }
  const defined = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined));
  return Object.freeze({ ...DEFAULT_VTTIF_PARAMS, ...defined });
}

/** An update is due once this fraction of the update period has passed, so timer jitter never skips a period. */
export const DUE_FRACTION = 0.75;

/** Most valid reports buffered between updates; more are rejected. */
export const MAX_PENDING_REPORTS = 65_536;

export interface VttifState {
  readonly smoothed: SmoothedMatrix | undefined;
  /** The same traffic smoothed faster (τ × releaseFraction): edges leave the pruned graph at its pace. */
  readonly recent: SmoothedMatrix | undefined;
  readonly detection: ChangeDetectionState;
  readonly lastUpdateMs: number | undefined;
  readonly pending: readonly TrafficReport[];
  readonly topology: Topology | undefined;
}

export const INITIAL_VTTIF_STATE: VttifState = Object.freeze({
  smoothed: undefined,
  recent: undefined,
  detection: INITIAL_CHANGE_DETECTION,
  lastUpdateMs: undefined,
  pending: Object.freeze([]) as readonly TrafficReport[],
  topology: undefined,
});

export interface RejectedReport {
  /** Position in the `reports` argument. */
  readonly index: number;
  readonly host: string | undefined;
  readonly error: TrafficReportError;
}

export interface VttifStepResult {
  readonly state: VttifState;
  /** False when the update period has not passed: reports were buffered, nothing recomputed. */
  readonly due: boolean;
  readonly rejected: readonly RejectedReport[];
  /** The smoothed directed matrix (bytes/s). */
  readonly matrix: SmoothedMatrix | undefined;
  /** Normalised, unpruned undirected graph (what change detection compares). */
  readonly normalised?: WeightedGraph;
  /** Normalised and pruned (what classification sees): edges at the prune fraction in the smoothed matrix and in the faster view. */
  readonly pruned?: WeightedGraph;
  readonly topology: Topology | undefined;
  /** Distance from the last announced matrix. */
  readonly distance?: number;
  /** Whether the matrix has settled on the current structure (change-detection.ts). */
  readonly settled?: boolean;
  readonly event?: TopologyChangeEvent;
  readonly unknown: readonly UnknownMacTraffic[];
  readonly issues: readonly MergeIssue[];
}

function hostOf(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const h = (input as { host?: unknown }).host;
  return typeof h === 'string' ? h.slice(0, 253) : undefined;
}

/** One VTTIF update on untrusted reports (validated here). Pure: same inputs, same outputs; the input state is not modified. */
export function vttifStep(
  state: VttifState,
  reports: readonly unknown[],
  registry: RegistryIndex,
  params: VttifParams,
  nowMs: number,
): VttifStepResult {
  const rejected: RejectedReport[] = [];
  const valid: TrafficReport[] = [];
  reports.forEach((input, index) => {
    const v = validateReport(input);
    if (!v.ok) rejected.push({ index, host: hostOf(input), error: v.error });
    else valid.push(v.report);
  });
  if (rejected.length === 0) return vttifStepValidated(state, valid, registry, params, nowMs);
  // Keep each rejection's position in `reports`: map the validated step's buffer rejections back.
  const positions = reports.map((_, i) => i).filter((i) => !rejected.some((r) => r.index === i));
  const r = vttifStepValidated(state, valid, registry, params, nowMs);
  const all = [...rejected, ...r.rejected.map((x) => ({ ...x, index: positions[x.index]! }))].sort((a, b) => a.index - b.index);
  return { ...r, rejected: all };
}

/**
 * One VTTIF update on reports the caller has already validated
 * (`validateReport` at the edge, as they arrive). Pure; the input state is
 * not modified. Only the buffer limit can reject a report here.
 */
export function vttifStepValidated(
  state: VttifState,
  reports: readonly TrafficReport[],
  registry: RegistryIndex,
  params: VttifParams,
  nowMs: number,
): VttifStepResult {
  const rejected: RejectedReport[] = [];
  const pending: TrafficReport[] = [...state.pending];
  reports.forEach((report, index) => {
    if (pending.length >= MAX_PENDING_REPORTS) {
      rejected.push({ index, host: report.host, error: new ReportShapeError('(report)', `more than ${MAX_PENDING_REPORTS} reports pending`) });
    } else pending.push(report);
  });
  const due = state.lastUpdateMs === undefined || nowMs - state.lastUpdateMs >= DUE_FRACTION * params.updatePeriodMs;
  if (!due) {
    return {
      state: { ...state, pending },
      due: false,
      rejected,
      matrix: state.smoothed,
      topology: state.topology,
      unknown: [],
      issues: [],
    };
  }
  const merged = mergeReports(pending, registry);
  const smoothed = smoothMatrix(state.smoothed, merged, registry, nowMs, { smoothingIntervalMs: params.smoothingIntervalMs });
  const normalised = normalise(smoothed);
  const recent = params.releaseFraction > 0 && params.smoothingIntervalMs > 0
    ? smoothMatrix(state.recent, merged, registry, nowMs, {
      smoothingIntervalMs: params.releaseFraction * params.smoothingIntervalMs,
      // Missing data is held as long as in the smoothed matrix: an unreported host's edges do not leave sooner.
      maxHoldMs: 3 * params.smoothingIntervalMs,
    })
    : undefined;
  const pruned = recent === undefined
    ? prune(normalised, params.pruneFraction)
    : pruneReleased(normalised, normalise(recent), params.pruneFraction);
  const topology = classify(pruned, { minConfidence: params.minConfidence });
  const detection = detectChange(state.detection, normalised, topology, nowMs, params, pruned);
  return {
    state: { smoothed, recent, detection: detection.state, lastUpdateMs: nowMs, pending: [], topology },
    due: true,
    rejected,
    matrix: smoothed,
    normalised,
    pruned,
    topology,
    distance: detection.distance,
    ...(detection.settled !== undefined ? { settled: detection.settled } : {}),
    ...(detection.event !== undefined ? { event: detection.event } : {}),
    unknown: merged.unknown,
    issues: merged.issues,
  };
}
