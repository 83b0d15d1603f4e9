/**
 * A port that drops frames says so at warn — but at most one line per
 * interval, never one per frame. The first drop is reported at once; drops
 * within the interval after a report are summed by reason and reported in
 * one line when it ends (a timer, so the tail of a burst is not lost).
 *
 *   {"dropped":{"refused":3,"queue-full":120},"lastError":"EIO","intervalMs":10000} frames dropped
 *
 * Cost per drop: one Map update; no allocation once the reasons are known.
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';

/** Default: one warning line per port per 10 s at most. */
export const DEFAULT_DROP_WARNING_INTERVAL_MS = 10_000;

export class DropWarning {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #message: string;
  readonly #pending = new Map<string, number>();
  readonly #describe: (error: number | string) => string;
  #lastError: number | string | undefined;
  #lastAt: number | undefined;
  #timer: TimerHandle | undefined;
  /** Warning lines written so far. */
  lines = 0;

  /** `describe` turns the error noted with a drop (an errno, a code) into words, once per line written. */
  constructor(components: { logger: Logger; clock: Clock }, init: { message: string; intervalMs?: number; describe?: (error: number | string) => string }) {
    this.#describe = init.describe ?? String;
    this.#log = components.logger;
    this.#clock = components.clock;
    this.#message = init.message;
    this.#intervalMs = init.intervalMs ?? DEFAULT_DROP_WARNING_INTERVAL_MS;
  }

  /** Count `count` frames dropped for `reason` (e.g. refused, queue-full, too-large); `error` is the last errno or code, if any. */
  note(reason: string, count = 1, error?: number | string): void {
    if (count <= 0) return;
    this.#pending.set(reason, (this.#pending.get(reason) ?? 0) + count);
    if (error !== undefined) this.#lastError = error;
    if (this.#timer !== undefined) return;
    const now = this.#clock.now();
    if (this.#lastAt === undefined || now - this.#lastAt >= this.#intervalMs) {
      this.#flush(now);
      return;
    }
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#flush(this.#clock.now());
    }, this.#lastAt + this.#intervalMs - now);
  }

  /** Report what is pending now and stop the timer (the port is closing). */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#flush(this.#clock.now());
  }

  #flush(now: number): void {
    if (this.#pending.size === 0) return;
    const dropped = Object.fromEntries(this.#pending);
    this.#pending.clear();
    this.#log.warn({ dropped, ...(this.#lastError !== undefined ? { lastError: this.#describe(this.#lastError) } : {}), intervalMs: this.#intervalMs }, this.#message);
    this.#lastError = undefined;
    this.#lastAt = now;
    this.lines++;
  }
}
