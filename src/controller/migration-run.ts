import type { CutoverStats, MigrationProgress, StopRuleName } from '../control/migration-control.ts';
import type { MigrationCutoverView, MigrationView } from './api-views.ts';
import { spansView, type CutoverSpans } from './migration-spans.ts';
import type { MigrationRecord, MigrationState } from './store/records.ts';

/**
 * One live migration as the coordinator (migration-coordinator.ts) keeps it:
 * its step, the times each step was reached, the engine's last progress and
 * the cutover figures. Plain JSON (null for absent): the whole record is
 * stored in `vm_migrations.run`, so a restarted controller picks it up where
 * it stood. Steps, in order:
 *
 *   prepare   fast-path link source↔destination requested; migrate-prepare sent to the destination
 *   transfer  migrate-start sent to the source; progress reports (disk, memory…)
 *   paused    the source paused the guest; waiting for the destination's `ready`
 *   commit    ── the commit point, written durably ── the VM's location is the destination;
 *             waiting until every connected daemon runs the rules that say so
 *   cutover   migrate-commit sent (source, then destination once the source released); waiting for `released` and `resumed`
 *   cleanup   done; the migration's fast-path link goes after a grace period
 *   done
 *
 *   aborting  (before the commit point only) migrate-abort to the destination, then to the source
 *   aborted   the source confirmed: the VM runs there, whole
 */

export type MigrationStep = 'prepare' | 'transfer' | 'paused' | 'commit' | 'cutover' | 'cleanup' | 'done' | 'aborting' | 'aborted';

export const PRE_COMMIT_STEPS: ReadonlySet<MigrationStep> = new Set(['prepare', 'transfer', 'paused']);
export const FINAL_STEPS: ReadonlySet<MigrationStep> = new Set(['done', 'aborted']);

export interface MigrationVm {
  mac: string;
  /** The VM's port on the source (the destination creates one of the same name). */
  port: string;
  ip?: string;
  name?: string;
  /** A QEMU VM, which QEMU's own migration moves: on a stream port, or on a TAP device behind a packet port. */
  portKind?: 'stream' | 'packet';
}

export interface MigrationAbort {
  reason: string;
  outcome: 'failed' | 'cancelled';
  atMs: number;
  /** When migrate-abort last went to each side (null: not yet). */
  destSentMs: number | null;
  sourceSentMs: number | null;
  /** The side answered `aborted` (or `unknown`, `failed`: nothing of the migration runs there). */
  destDone: boolean;
  sourceDone: boolean;
}

export interface MigrationRun {
  id: string;
  vm: MigrationVm;
  from: string;
  to: string;
  rule: StopRuleName;
  deadlineMs: number | null;
  requestedBy: string;
  startedMs: number;
  step: MigrationStep;
  /** When the current step was entered. */
  stepMs: number;
  /** The last report of the source (the no-progress timeout runs from it). */
  heardMs: number;
  /** The destination's migration channel (its `prepared` report). */
  address: { host: string; port: number } | null;
  /** Who held the source↔destination fast-path link before: none (the migration made it), adaptation (handed back at cleanup), someone else (left alone). */
  linkOwner: 'migration' | 'adaptation' | 'other';
  progress: MigrationProgress | null;
  pausedMs: number | null;
  readyMs: number | null;
  commitMs: number | null;
  /** Every connected daemon acknowledged the cutover rules (or the wait timed out). */
  acknowledgedMs: number | null;
  resumedMs: number | null;
  releasedMs: number | null;
  /** When migrate-commit last went to each side. */
  commitSentMs: { dest: number | null; source: number | null };
  destStats: CutoverStats | null;
  sourceStats: CutoverStats | null;
  /** The cutover's steps, for where its time goes (absent in runs stored before they were recorded). */
  spans?: CutoverSpans;
  /** A migrate-query in flight: when, why, and which sides answered. */
  query: { sentMs: number; why: string; dest: boolean; source: boolean } | null;
  abort: MigrationAbort | null;
  cleanupAtMs: number | null;
  finishedMs: number | null;
  error: string | null;
}

/** How long each step may take (ms). */
export interface MigrationTimeouts {
  /** From migrate-prepare to the destination's `prepared` and the fast-path link up. */
  prepareMs: number;
  /** Without a report from the source while the engine runs (before the pause). */
  progressMs: number;
  /** From the pause to the destination's `ready`; then both sides are queried. */
  readyMs: number;
  /** For the answers to a migrate-query; then abort. */
  queryMs: number;
  /** For every connected daemon to acknowledge the cutover rules; then migrate-commit goes anyway. */
  ackMs: number;
  /** Between re-sends of migrate-commit / migrate-abort to a side that has not answered. */
  resendMs: number;
  /** For the destination's `aborted` before the source is told to abort anyway. */
  abortWaitMs: number;
  /** From done to the removal of the migration's fast-path link. */
  cleanupGraceMs: number;
}

export const DEFAULT_MIGRATION_TIMEOUTS: Readonly<MigrationTimeouts> = {
  prepareMs: 10_000,
  progressMs: 30_000,
  readyMs: 30_000,
  queryMs: 10_000,
  ackMs: 10_000,
  resendMs: 5_000,
  abortWaitMs: 5_000,
  cleanupGraceMs: 5_000,
};

/** The column state of a run (vm_migrations.state). */
export function recordState(run: MigrationRun): MigrationState {
  if (run.step === 'aborting') return 'aborting';
  if (run.step === 'aborted') return run.abort?.outcome ?? 'failed';
  if (run.step === 'cleanup' || run.step === 'done') return run.error === null ? 'done' : 'failed';
  return 'running';
}

export function migrationRecord(run: MigrationRun): MigrationRecord {
  return {
    id: run.id, vmMac: run.vm.mac, fromHost: run.from, toHost: run.to, state: recordState(run), requestedBy: run.requestedBy,
    startedMs: run.startedMs, finishedMs: run.finishedMs ?? undefined, error: run.error ?? undefined, run,
  };
}

/** The cutover time: from the source's pause to every connected daemon acknowledging the new rules. */
export function cutoverView(run: MigrationRun): MigrationCutoverView | null {
  if (run.pausedMs === null && run.destStats === null && run.sourceStats === null) return null;
  const d = run.destStats;
  const s = run.sourceStats;
  return {
    timeMs: run.pausedMs !== null && run.acknowledgedMs !== null ? Math.max(0, run.acknowledgedMs - run.pausedMs) : null,
    pausedAt: run.pausedMs,
    acknowledgedAt: run.acknowledgedMs,
    held: (s?.held ?? 0) + (d?.held ?? 0),
    flushed: (s?.flushed ?? 0) + (d?.flushed ?? 0),
    relayed: s?.relayed ?? 0,
    lost: (s?.lost ?? 0) + (d?.lost ?? 0),
    announced: d?.announced ?? 0,
    spans: run.spans === undefined ? null : spansView(run.spans, run),
  };
}

function phaseOf(run: MigrationRun): MigrationView['phase'] {
  switch (run.step) {
    case 'prepare': return 'prepare';
    case 'transfer': return run.progress?.phase === 'disk' ? 'disk' : run.progress === null || run.progress.phase === 'starting' ? 'prepare' : 'memory';
    case 'paused': return 'stop-and-copy';
    case 'commit': return 'cutover';
    case 'cutover': return run.resumedMs !== null ? 'resume' : 'cutover';
    case 'cleanup': case 'done': return 'done';
    default: return run.pausedMs !== null ? 'stop-and-copy' : run.progress?.phase === 'disk' ? 'disk' : run.progress !== null ? 'memory' : 'prepare';
  }
}

const STEP_PROGRESS: Partial<Record<MigrationStep, number>> = { paused: 0.92, commit: 0.95, cutover: 0.97, cleanup: 1, done: 1 };

function fractionOf(run: MigrationRun): number {
  const fixed = STEP_PROGRESS[run.step];
  if (fixed !== undefined) return fixed;
  const p = run.progress;
  if (p === null || p.ramPages === 0 || p.phase === 'disk' || p.phase === 'starting') return 0;
  return Math.round(Math.min(0.9, Math.max(0, 0.9 * (1 - p.pagesLeft / p.ramPages))) * 1000) / 1000;
}

/** The operator's view of a run (api-model.ts). */
export function migrationViewOf(run: MigrationRun): MigrationView {
  const p = run.progress;
  const state: MigrationView['state'] = run.step === 'aborting' || run.step === 'aborted'
    ? run.abort?.outcome ?? 'failed'
    : run.error !== null ? 'failed' : run.step === 'cleanup' || run.step === 'done' ? 'succeeded' : 'running';
  return {
    id: run.id, vm: run.vm.mac, from: run.from, to: run.to, phase: phaseOf(run), progress: fractionOf(run),
    bytesSent: p?.bytesSent ?? 0,
    bytesTotal: p === null ? null : p.bytesSent + p.pagesLeft * 4096,
    etaMs: run.step === 'transfer' || run.step === 'paused' ? p?.etaMs ?? null : null,
    state, startedAt: run.startedMs, finishedAt: run.finishedMs, error: run.error,
    step: run.step, rule: run.rule, requestedBy: run.requestedBy,
    enginePhase: p?.phase ?? null, iteration: p?.iteration ?? null, pagesLeft: p?.pagesLeft ?? null, dirtyRate: p?.dirtyRate ?? null,
    cutover: cutoverView(run),
  };
}
