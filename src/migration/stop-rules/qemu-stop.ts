/**
 * The QEMU default (migration/ram.c, 1.6 onwards): iterate until the pages
 * still dirty fit the downtime limit at the bandwidth the last iteration
 * measured (default downtime 300 ms), then switch over. Auto-converge (off
 * by default in QEMU, on by default here as TLM compared against it): when
 * the guest dirtied more than half as many bytes as were sent in an
 * iteration, twice, throttle the vCPUs 20%, then 10% more each time, up to
 * 99%. QEMU itself would iterate forever on a workload that never fits;
 * `maxIterations` (default 1000) is this engine's safety stop, reported.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { IterationStats, PrecopyRule, StopDecision } from './stop-rule.ts';
import { withDefaults, type RuleOptions } from './rule-options.ts';

export interface QemuStopSettings {
  readonly downtimeLimitMs: number;
  readonly autoConverge: boolean;
  /** Auto-converge's first throttle, then its step and its ceiling (percent of CPU taken). */
  readonly throttleInitial: number;
  readonly throttleIncrement: number;
  readonly throttleMax: number;
  readonly maxIterations: number;
}

export const QEMU_STOP_DEFAULTS: QemuStopSettings = Object.freeze({
  downtimeLimitMs: 300, autoConverge: true, throttleInitial: 20, throttleIncrement: 10, throttleMax: 99, maxIterations: 1000,
});

export type QemuStopOptions = RuleOptions<QemuStopSettings>;

export class QemuStop implements PrecopyRule {
  readonly kind = 'precopy' as const;
  readonly name = 'qemu' as const;
  readonly encoding: Encoding;
  readonly skipRedirtied = false;
  readonly #o: QemuStopSettings;
  #highCount = 0;
  #throttlePct = 0;

  constructor(opts: QemuStopOptions = {}) {
    this.#o = withDefaults(QEMU_STOP_DEFAULTS, opts);
    this.encoding = opts.encoding ?? 'plain';
  }

  afterIteration(s: IterationStats): StopDecision {
    const remainingMs = s.bandwidth > 0 ? (s.dirtied * s.bytesPerPage) / s.bandwidth : Number.POSITIVE_INFINITY;
    if (remainingMs <= this.#o.downtimeLimitMs) return { stop: true, reason: `remaining fits ${this.#o.downtimeLimitMs} ms` };
    if (s.iteration + 1 >= this.#o.maxIterations) return { stop: true, reason: `safety stop after ${this.#o.maxIterations} iterations` };
    if (!this.#o.autoConverge) return { stop: false, reason: 'iterate' };
    const dirtyBytes = s.dirtied * 4096;
    if (dirtyBytes > s.bytesSent / 2) this.#highCount++;
    if (this.#highCount >= 2) {
      this.#highCount = 0;
      this.#throttlePct = this.#throttlePct === 0 ? this.#o.throttleInitial : Math.min(this.#o.throttleMax, this.#throttlePct + this.#o.throttleIncrement);
      return { stop: false, reason: `auto-converge ${this.#throttlePct}%`, throttle: 1 - this.#throttlePct / 100 };
    }
    return { stop: false, reason: 'iterate' };
  }
}
