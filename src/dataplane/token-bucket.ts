/**
 * A token bucket on an injected millisecond clock: `rate` tokens a second,
 * at most `burst` saved up, one taken per admitted event. The per-port
 * limits (new MACs a second, flooded frames a second) are each one of these.
 *
 * Refilling is lazy: `take(now)` adds what accrued since the previous call,
 * so an idle bucket costs nothing and a busy one one subtraction and a
 * compare per event.
 */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  #lastMs: number;

  constructor(rate: number, burst: number, nowMs: number) {
    if (!(rate >= 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a finite number >= 0, got ${rate}`);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`burst must be a finite number >= 1, got ${burst}`);
    this.rate = rate;
    this.burst = burst;
    this.#tokens = burst;
    this.#lastMs = nowMs;
  }

  /** Take one token if there is one; returns whether the event is admitted. */
  take(nowMs: number): boolean {
    if (nowMs > this.#lastMs) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((nowMs - this.#lastMs) * this.rate) / 1000);
      this.#lastMs = nowMs;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Tokens available now (tests, the admin interface). */
  available(nowMs: number): number {
    const accrued = nowMs > this.#lastMs ? ((nowMs - this.#lastMs) * this.rate) / 1000 : 0;
    return Math.min(this.burst, this.#tokens + accrued);
  }
}
