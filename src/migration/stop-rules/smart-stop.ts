/**
 * CloudNet's smart stop: keep iterating while an iteration sends more pages
 * than get dirtied during it (the migration is gaining on the guest); once it
 * does not, keep going only while the number of dirtied pages still falls,
 * and stop at its local minimum (the smallest pause). Xen's limits stay as a
 * safety net. Runs with redundancy elimination and deltas by default.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { IterationStats, PrecopyRule, StopDecision } from './stop-rule.ts';
import { XEN_LIMIT_DEFAULTS, withDefaults, xenLimits, type RuleOptions, type XenLimitSettings } from './rule-options.ts';

export type SmartStopOptions = RuleOptions<XenLimitSettings>;

export class SmartStop implements PrecopyRule {
  readonly kind = 'precopy' as const;
  readonly name = 'smart-stop' as const;
  readonly encoding: Encoding;
  readonly skipRedirtied = true;
  readonly #limits: XenLimitSettings;
  #seekingMinimum = false;
  #lastDirtied = Number.POSITIVE_INFINITY;

  constructor(opts: SmartStopOptions = {}) {
    this.#limits = withDefaults(XEN_LIMIT_DEFAULTS, opts);
    this.encoding = opts.encoding ?? 'optimized';
  }

  afterIteration(s: IterationStats): StopDecision {
    const limit = xenLimits(s, this.#limits);
    if (limit !== undefined) return limit;
    const last = this.#lastDirtied;
    this.#lastDirtied = s.dirtied;
    if (!this.#seekingMinimum) {
      if (s.pagesSent > s.dirtied) return { stop: false, reason: 'sent > dirtied' };
      this.#seekingMinimum = true;
      return { stop: false, reason: 'sent <= dirtied: seeking the minimum of dirtied' };
    }
    if (s.dirtied < last) return { stop: false, reason: 'dirtied still falling' };
    return { stop: true, reason: 'local minimum of dirtied pages' };
  }
}
