/**
 * Stop rules: when to stop iterating and pause the guest, and how hard to
 * throttle it meanwhile. Pure decision logic: a rule sees numbers the sender
 * measured (with `now` among them) and returns a decision; it does no I/O.
 *
 *   precopy rules (xen, qemu, smart-stop) decide at the end of each iteration
 *   the time-bound rule (TLM) decides continuously while its two channels run
 */
import type { Encoding } from '../engine/content-encoder.ts';

export type StopRuleName = 'xen' | 'qemu' | 'smart-stop' | 'time-bound';
export const STOP_RULE_NAMES: readonly StopRuleName[] = ['xen', 'qemu', 'smart-stop', 'time-bound'];

export interface IterationStats {
  /** The iteration that just ended; 0 is the first pass over all of RAM. */
  readonly iteration: number;
  readonly now: number;
  /** Since the memory phase began. */
  readonly elapsedMs: number;
  readonly iterationMs: number;
  /** Pages this iteration sent (any record kind) and skipped (re-dirtied or unchanged). */
  readonly pagesSent: number;
  readonly bytesSent: number;
  /** Pages dirtied during this iteration: what the next one would send. */
  readonly dirtied: number;
  readonly totalPagesSent: number;
  readonly totalBytesSent: number;
  readonly ramPages: number;
  /** Bytes per millisecond this iteration moved. */
  readonly bandwidth: number;
  /** Mean record bytes per page this iteration sent (full page size if none). */
  readonly bytesPerPage: number;
  readonly throttle: number;
}

export interface StopDecision {
  readonly stop: boolean;
  readonly reason: string;
  /** New CPU share for the guest, when the rule changes it. */
  readonly throttle?: number;
}

export interface PrecopyRule {
  readonly kind: 'precopy';
  readonly name: Exclude<StopRuleName, 'time-bound'>;
  readonly encoding: Encoding;
  /** Skip pages dirtied again since this iteration started (they will be sent next time): Xen's peek. */
  readonly skipRedirtied: boolean;
  afterIteration(s: IterationStats): StopDecision;
}

export interface TimeBoundStats {
  readonly now: number;
  readonly elapsedMs: number;
  /** Share of RAM the full-pass channel (mtx) has covered. */
  readonly mtxFraction: number;
  readonly mtxDone: boolean;
  /** Pages still owed to the destination if the guest paused now. */
  readonly remainingPages: number;
  readonly bytesPerPage: number;
  readonly bandwidth: number;
  /** Distinct pages the guest dirties per millisecond, recently, scaled to a CPU share of 1. */
  readonly dirtyRateFullShare: number;
  readonly throttle: number;
}

export interface TimeBoundRuleApi {
  readonly kind: 'time-bound';
  readonly name: 'time-bound';
  readonly encoding: Encoding;
  readonly deadlineMs: number;
  decide(s: TimeBoundStats): StopDecision;
}

export type StopRule = PrecopyRule | TimeBoundRuleApi;
