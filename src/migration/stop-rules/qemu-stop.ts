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

export interface QemuStopOptions {
  readonly downtimeLimitMs?: number;
  readonly autoConverge?: boolean;
  readonly throttleInitial?: number;
  readonly throttleIncrement?: number;
  readonly throttleMax?: number;
  readonly maxIterations?: number;
  readonly encoding?: Encoding;
}

export class QemuStop implements PrecopyRule {
  readonly kind = 'precopy' as const;
  readonly name = 'qemu' as const;
  readonly encoding: Encoding;
  readonly skipRedirtied = false;
  readonly #downtime: number;
  readonly #autoConverge: boolean;
  readonly #initial: number;
  readonly #increment: number;
  readonly #max: number;
  readonly #maxIterations: number;
  #highCount = 0;
  #throttlePct = 0;

  constructor(opts: QemuStopOptions = {}) {
    this.#downtime = opts.downtimeLimitMs ?? 300;
    this.#autoConverge = opts.autoConverge ?? true;
    this.#initial = opts.throttleInitial ?? 20;
    this.#increment = opts.throttleIncrement ?? 10;
    this.#max = opts.throttleMax ?? 99;
    this.#maxIterations = opts.maxIterations ?? 1000;
    this.encoding = opts.encoding ?? 'plain';
  }

  afterIteration(s: IterationStats): StopDecision {
    const remainingMs = s.bandwidth > 0 ? (s.dirtied * s.bytesPerPage) / s.bandwidth : Number.POSITIVE_INFINITY;
    if (remainingMs <= this.#downtime) return { stop: true, reason: `remaining fits ${this.#downtime} ms` };
    if (s.iteration + 1 >= this.#maxIterations) return { stop: true, reason: `safety stop after ${this.#maxIterations} iterations` };
    if (!this.#autoConverge) return { stop: false, reason: 'iterate' };
    const dirtyBytes = s.dirtied * 4096;
    if (dirtyBytes > s.bytesSent / 2) this.#highCount++;
    if (this.#highCount >= 2) {
      this.#highCount = 0;
      this.#throttlePct = this.#throttlePct === 0 ? this.#initial : Math.min(this.#max, this.#throttlePct + this.#increment);
      return { stop: false, reason: `auto-converge ${this.#throttlePct}%`, throttle: 1 - this.#throttlePct / 100 };
    }
    return { stop: false, reason: 'iterate' };
  }
}
