/**
 * TLM's time-bound rule. Two channels: mtx sends all of RAM once, first page
 * to last, skipping pages it knows dtx will re-send; dtx sends dirtied pages.
 * The guest is throttled once mtx has covered `throttleAfter` of RAM (TLM:
 * 8 vCPUs over-committed on 2 cores, share 0.25, after 50%), and harder
 * whenever the link could not otherwise carry what is owed plus what the
 * guest keeps dirtying before the bound (down to `minShare`). Stop
 * (pause, send the rest) when mtx is done and the rest fits the downtime
 * target, or when the rest would otherwise miss the deadline.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { StopDecision, TimeBoundRuleApi, TimeBoundStats } from './stop-rule.ts';

export interface TimeBoundOptions {
  /** Total migration time (live + pause) to finish within, from the memory phase start. */
  readonly deadlineMs: number;
  readonly downtimeTargetMs?: number;
  readonly throttleAfter?: number;
  readonly throttleShare?: number;
  /** Lowest CPU share the rule goes down to near the deadline. */
  readonly minShare?: number;
  /** Headroom kept before the deadline, as a share of it. */
  readonly margin?: number;
  readonly encoding?: Encoding;
}

export class TimeBound implements TimeBoundRuleApi {
  readonly kind = 'time-bound' as const;
  readonly name = 'time-bound' as const;
  readonly encoding: Encoding;
  readonly deadlineMs: number;
  readonly #downtime: number;
  readonly #after: number;
  readonly #share: number;
  readonly #minShare: number;
  readonly #margin: number;

  constructor(opts: TimeBoundOptions) {
    this.deadlineMs = opts.deadlineMs;
    this.#downtime = opts.downtimeTargetMs ?? 300;
    this.#after = opts.throttleAfter ?? 0.5;
    this.#share = opts.throttleShare ?? 0.25;
    this.#minShare = opts.minShare ?? 0.05;
    this.#margin = opts.margin ?? 0.03;
    this.encoding = opts.encoding ?? 'optimized';
  }

  decide(s: TimeBoundStats): StopDecision {
    if (!(s.bandwidth > 0)) return { stop: false, reason: 'measuring bandwidth' };
    const restMs = (s.remainingPages * s.bytesPerPage) / s.bandwidth;
    const left = this.deadlineMs * (1 - this.#margin) - s.elapsedMs;
    if (s.mtxDone && restMs <= this.#downtime) return { stop: true, reason: `rest fits ${this.#downtime} ms` };
    if (restMs >= left) return { stop: true, reason: 'deadline: stop and send the rest' };
    let throttle = s.throttle;
    // TLM: over-commit the vCPUs once mtx has covered `throttleAfter` of RAM.
    if (s.mtxFraction >= this.#after) throttle = Math.min(throttle, this.#share);
    // The bound in sight: the link must carry what is owed plus what the guest keeps
    // dirtying, and leave the pause its target. Find the CPU share for which it can.
    const budget = left - this.#downtime;
    const dirtyBytes = s.dirtyRateFullShare * s.bytesPerPage; // per ms, at a CPU share of 1
    if (budget > 0 && dirtyBytes > 0) {
      const allowedDirty = s.bandwidth - (s.remainingPages * s.bytesPerPage) / budget;
      const needed = allowedDirty <= 0 ? this.#minShare : allowedDirty / dirtyBytes;
      if (needed < throttle) throttle = Math.max(this.#minShare, needed * 0.9);
    }
    if (throttle !== s.throttle) return { stop: false, reason: 'throttle', throttle };
    return { stop: false, reason: 'continue' };
  }
}
