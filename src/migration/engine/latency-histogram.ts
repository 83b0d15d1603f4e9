/**
 * Latencies (ms) kept as a log-scale histogram: constant memory however many
 * samples, exact count, mean and maximum, quantiles to within one bin (1%
 * relative width) — enough for the p99 of a synchronous write latency over
 * millions of writes.
 */

/** Bins per factor of e: 100 gives bins about 1% wide. */
const BINS_PER_E = 100;
/** The first bin holds everything at or below this (ms). */
const FLOOR_MS = 1e-3;
/** 1 µs .. ~e^20 µs (~8 minutes): above that everything lands in the last bin. */
const BIN_COUNT = 20 * BINS_PER_E + 1;

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export class LatencyHistogram {
  readonly #bins = new Float64Array(BIN_COUNT);
  #count = 0;
  #sum = 0;
  #max = 0;

  add(ms: number): void {
    const v = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const i = v <= FLOOR_MS ? 0 : Math.min(BIN_COUNT - 1, 1 + Math.floor(Math.log(v / FLOOR_MS) * BINS_PER_E));
    this.#bins[i] = (this.#bins[i] ?? 0) + 1;
    this.#count++;
    this.#sum += v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#count;
  }

  /** The q-quantile (0..1): the upper edge of the bin holding it, capped at the maximum seen. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const want = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BIN_COUNT; i++) {
      seen += this.#bins[i] ?? 0;
      if (seen >= want) return Math.min(this.#max, i === 0 ? FLOOR_MS : FLOOR_MS * Math.exp(i / BINS_PER_E));
    }
    return this.#max;
  }

  summary(): LatencySummary {
    return {
      count: this.#count,
      meanMs: this.#count > 0 ? this.#sum / this.#count : 0,
      p50Ms: this.quantile(0.5),
      p99Ms: this.quantile(0.99),
      maxMs: this.#max,
    };
  }
}
