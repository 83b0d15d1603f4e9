/**
 * The Xen default (xc_domain_save, Xen 3.x/4.x): iterate at most 30 times
 * (max_iters = 29 after the first pass), stop when fewer than 50 pages were
 * dirtied during an iteration, or once 3x RAM has been sent (max_factor 3).
 * Pages re-dirtied during an iteration are skipped (sent next time). Full
 * pages only, no redundancy elimination: the baseline CloudNet improved on.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { IterationStats, PrecopyRule, StopDecision } from './stop-rule.ts';
import { XEN_LIMIT_DEFAULTS, withDefaults, xenLimits, type RuleOptions, type XenLimitSettings } from './rule-options.ts';

export type XenStopOptions = RuleOptions<XenLimitSettings>;

export class XenStop implements PrecopyRule {
  readonly kind = 'precopy' as const;
  readonly name = 'xen' as const;
  readonly encoding: Encoding;
  readonly skipRedirtied = true;
  readonly #limits: XenLimitSettings;

  constructor(opts: XenStopOptions = {}) {
    this.#limits = withDefaults(XEN_LIMIT_DEFAULTS, opts);
    this.encoding = opts.encoding ?? 'plain';
  }

  afterIteration(s: IterationStats): StopDecision {
    return xenLimits(s, this.#limits) ?? { stop: false, reason: 'iterate' };
  }
}
