/**
 * Exponential backoff with full jitter, for redialling links (the backbone to
 * the hub, fast-path links, the controller channel). Pure: the caller owns the
 * timer and the random source.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor?: number;
}

/** The default for redialling: from 200 ms, doubling, up to 10 s. */
export const DEFAULT_REDIAL_POLICY: Readonly<BackoffPolicy> = Object.freeze({ initialMs: 200, maxMs: 10_000 });

export class Backoff {
  readonly #policy: Required<BackoffPolicy>;
  #attempt = 0;
  readonly #random: () => number;

  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    this.#policy = { factor: 2, ...policy };
    this.#random = random;
  }

  /** Delay before the next attempt; grows until `reset`. Never below initialMs/2. */
  next(): number {
    const { initialMs, maxMs, factor } = this.#policy;
    const ceiling = Math.min(maxMs, initialMs * factor ** this.#attempt);
    this.#attempt++;
    return Math.round(ceiling / 2 + (this.#random() * ceiling) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}
