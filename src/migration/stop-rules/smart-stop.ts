/**
 * CloudNet's smart stop: keep iterating while an iteration sends more pages
 * than get dirtied during it (the migration is gaining on the guest); once it
 * does not, keep going only while the number of dirtied pages still falls,
 * and stop at its local minimum (the smallest pause). Xen's limits stay as a
 * safety net. Runs with redundancy elimination and deltas by default.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { IterationStats, PrecopyRule, StopDecision } from './stop-rule.ts';
import { xenLimits } from './xen-stop.ts';

export interface SmartStopOptions {
  readonly encoding?: Encoding;
  readonly maxIterations?: number;
  readonly minDirtyPages?: number;
  readonly maxFactor?: number;
}

export class SmartStop implements PrecopyRule {
  readonly kind = 'precopy' as const;
  readonly name = 'smart-stop' as const;
  readonly encoding: Encoding;
  readonly skipRedirtied = true;
  readonly #opts: Required<Omit<SmartStopOptions, 'encoding'>>;
  #seekingMinimum = false;
  #lastDirtied = Number.POSITIVE_INFINITY;

  constructor(opts: SmartStopOptions = {}) {
    this.encoding = opts.encoding ?? 'optimized';
    this.#opts = { maxIterations: opts.maxIterations ?? 30, minDirtyPages: opts.minDirtyPages ?? 50, maxFactor: opts.maxFactor ?? 3 };
  }

  afterIteration(s: IterationStats): StopDecision {
    const limit = xenLimits(s, this.#opts.maxIterations, this.#opts.minDirtyPages, this.#opts.maxFactor);
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
