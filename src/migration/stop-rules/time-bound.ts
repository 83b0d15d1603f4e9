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
import { withDefaults, type RuleOptions } from './rule-options.ts';

export interface TimeBoundSettings {
  readonly downtimeTargetMs: number;
  /** Share of RAM mtx must have covered before the guest is throttled, and the CPU share it is throttled to. */
  readonly throttleAfter: number;
  readonly throttleShare: number;
  /** Lowest CPU share the rule goes down to near the deadline. */
  readonly minShare: number;
  /** Headroom kept before the deadline, as a share of it. */
  readonly margin: number;
}

export const TIME_BOUND_DEFAULTS: TimeBoundSettings = Object.freeze({ downtimeTargetMs: 300, throttleAfter: 0.5, throttleShare: 0.25, minShare: 0.05, margin: 0.03 });

export type TimeBoundOptions = RuleOptions<TimeBoundSettings> & {
  /** Total migration time (live + pause) to finish within, from the memory phase start. */
  readonly deadlineMs: number;
};

export class TimeBound implements TimeBoundRuleApi {
  readonly kind = 'time-bound' as const;
  readonly name = 'time-bound' as const;
  readonly encoding: Encoding;
  readonly deadlineMs: number;
  readonly #o: TimeBoundSettings;

  constructor(opts: TimeBoundOptions) {
    this.deadlineMs = opts.deadlineMs;
    this.#o = withDefaults(TIME_BOUND_DEFAULTS, opts);
    this.encoding = opts.encoding ?? 'optimized';
  }

  decide(s: TimeBoundStats): StopDecision {
    if (!(s.bandwidth > 0)) return { stop: false, reason: 'measuring bandwidth' };
    const restMs = (s.remainingPages * s.bytesPerPage) / s.bandwidth;
    const left = this.deadlineMs * (1 - this.#o.margin) - s.elapsedMs;
    if (s.mtxDone && restMs <= this.#o.downtimeTargetMs) return { stop: true, reason: `rest fits ${this.#o.downtimeTargetMs} ms` };
    if (restMs >= left) return { stop: true, reason: 'deadline: stop and send the rest' };
    let throttle = s.throttle;
    // TLM: over-commit the vCPUs once mtx has covered `throttleAfter` of RAM.
    if (s.mtxFraction >= this.#o.throttleAfter) throttle = Math.min(throttle, this.#o.throttleShare);
    // The bound in sight: the link must carry what is owed plus what the guest keeps
    // dirtying, and leave the pause its target. Find the CPU share for which it can.
    const budget = left - this.#o.downtimeTargetMs;
    const dirtyBytes = s.dirtyRateFullShare * s.bytesPerPage; // per ms, at a CPU share of 1
    if (budget > 0 && dirtyBytes > 0) {
      const allowedDirty = s.bandwidth - (s.remainingPages * s.bytesPerPage) / budget;
      const needed = allowedDirty <= 0 ? this.#o.minShare : allowedDirty / dirtyBytes;
      if (needed < throttle) throttle = Math.max(this.#o.minShare, needed * 0.9);
    }
    if (throttle !== s.throttle) return { stop: false, reason: 'throttle', throttle };
    return { stop: false, reason: 'continue' };
  }
}
