/**
 * What a source migration (source-migration.ts) says in each of its states:
 * the `migration` report of the control protocol, from the state and what
 * the migration has seen so far. Pure: the caller says when to report.
 *
 *   starting, running   progress (zero until the engine's first event)
 *   paused, sent        paused, with the last progress and the cutover's timing
 *   stalled, failed     the state and its error
 *   released            the frames held, flushed, relayed and lost, and the timing
 *   aborted             the frames held and given back to the port, if it was paused
 *
 * An `extra` error (a command refused in this state) rides on the report of
 * the state unchanged.
 */
import type { VnetError } from '../common/errors.ts';
import type { CutoverStats, CutoverTiming, MigrationProgress, MigrationReport } from '../control/migration-control.ts';
import type { ProgressEvent } from '../migration/engine/progress.ts';
import { errorBody, reportOf } from './agent-context.ts';
import type { HoldStats } from './migration-daemon.ts';

export type SourceState = 'starting' | 'running' | 'paused' | 'sent' | 'stalled' | 'released' | 'failed' | 'aborted';

/** The states in which the guest is paused here (and a commit may release it). */
export const PAUSED_STATES: ReadonlySet<SourceState> = new Set(['paused', 'sent', 'stalled']);

/** What a source migration has to report. */
export interface SourceReportInput {
  readonly id: string;
  readonly state: SourceState;
  /** The engine's last progress, in the protocol's shape. */
  readonly progress: MigrationProgress | undefined;
  /** The cutover's steps here (wall clock): the pause, the final copy handed to the channel. */
  readonly timing: { readonly pausedAt?: number; readonly finalSentAt?: number };
  /** The port's held frames, once they were released (to the destination or back to the port). */
  readonly hold: HoldStats | undefined;
  /** Why it failed or stalled. */
  readonly error: VnetError | undefined;
  /** Frames relayed on to the destination since the commit (asked only once released). */
  relayed(): number;
}

export function sourceReport(s: SourceReportInput, extra?: VnetError): MigrationReport {
  const err = extra ?? s.error;
  const error = err !== undefined ? { error: errorBody(err) } : {};
  const extraError = extra !== undefined ? { error: errorBody(extra) } : {};
  switch (s.state) {
    case 'starting':
    case 'running':
      return reportOf(s.id, 'progress', { progress: s.progress ?? startingProgress(), ...extraError });
    case 'paused':
    case 'sent':
      return reportOf(s.id, 'paused', { ...(s.progress !== undefined ? { progress: s.progress } : {}), ...timingField(s), ...extraError });
    case 'stalled':
      return reportOf(s.id, 'stalled', error);
    case 'released':
      return reportOf(s.id, 'released', { stats: cutoverStats(s), ...timingField(s), ...extraError });
    case 'failed':
      return reportOf(s.id, 'failed', error);
    case 'aborted':
      return reportOf(s.id, 'aborted', { ...(s.hold !== undefined ? { stats: cutoverStats(s) } : {}), ...error });
  }
}

function timingField(s: SourceReportInput): { timing?: CutoverTiming } {
  return s.timing.pausedAt === undefined ? {} : { timing: { ...s.timing } };
}

function cutoverStats(s: SourceReportInput): CutoverStats {
  const h = s.hold ?? { held: 0, flushed: 0, lost: 0, queued: 0, reclaimed: 0 };
  const relayed = s.state === 'released' ? s.relayed() : 0;
  return { held: h.held, flushed: h.flushed, relayed, lost: h.lost, announced: 0 };
}

function startingProgress(): MigrationProgress {
  return { phase: 'starting', iteration: 0, bytesSent: 0, pagesLeft: 0, ramPages: 0, dirtyRate: 0, etaMs: null, elapsedMs: 0 };
}

const count = (n: number): number => (Number.isFinite(n) ? Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.round(n))) : 0);
const bounded = (n: number): number => (Number.isFinite(n) ? Math.min(1e12, Math.max(0, n)) : 0);

/** The engine's progress event in the control protocol's shape (counts whole, rates bounded). */
export function toWireProgress(e: ProgressEvent): MigrationProgress {
  return {
    phase: e.phase,
    iteration: count(e.iteration),
    bytesSent: count(e.bytesSent),
    pagesLeft: count(e.pagesLeft),
    ramPages: count(e.ramPages),
    dirtyRate: bounded(e.dirtyRate),
    etaMs: Number.isFinite(e.etaMs) ? bounded(Math.round(e.etaMs)) : null,
    elapsedMs: count(e.elapsedMs),
  };
}
