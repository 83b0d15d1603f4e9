/**
 * The Xen default (xc_domain_save, Xen 3.x/4.x): iterate at most 30 times
 * (max_iters = 29 after the first pass), stop when fewer than 50 pages were
 * dirtied during an iteration, or once 3x RAM has been sent (max_factor 3).
 * Pages re-dirtied during an iteration are skipped (sent next time). Full
 * pages only, no redundancy elimination: the baseline CloudNet improved on.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { IterationStats, PrecopyRule, StopDecision } from './stop-rule.ts';

export interface XenStopOptions {
  readonly maxIterations?: number;
  readonly minDirtyPages?: number;
  readonly maxFactor?: number;
  readonly encoding?: Encoding;
}

export class XenStop implements PrecopyRule {
  readonly kind = 'precopy' as const;
  readonly name = 'xen' as const;
  readonly encoding: Encoding;
  readonly skipRedirtied = true;
  readonly #maxIterations: number;
  readonly #minDirty: number;
  readonly #maxFactor: number;

  constructor(opts: XenStopOptions = {}) {
    this.#maxIterations = opts.maxIterations ?? 30;
    this.#minDirty = opts.minDirtyPages ?? 50;
    this.#maxFactor = opts.maxFactor ?? 3;
    this.encoding = opts.encoding ?? 'plain';
  }

  afterIteration(s: IterationStats): StopDecision {
    return xenLimits(s, this.#maxIterations, this.#minDirty, this.#maxFactor) ?? { stop: false, reason: 'iterate' };
  }
}

/** The three Xen limits, shared with smart stop as its safety net. */
export function xenLimits(s: IterationStats, maxIterations: number, minDirty: number, maxFactor: number): StopDecision | undefined {
  if (s.dirtied < minDirty) return { stop: true, reason: `fewer than ${minDirty} dirty pages` };
  if (s.iteration + 1 >= maxIterations) return { stop: true, reason: `${maxIterations} iterations` };
  if (s.totalPagesSent >= maxFactor * s.ramPages) return { stop: true, reason: `${maxFactor}x RAM sent` };
  return undefined;
}
