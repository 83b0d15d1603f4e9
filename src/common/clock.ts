/**
 * Time as a dependency. Pure logic takes `now` as an argument; shells that
 * need timers take a Clock, with a real implementation here and a manual one
 * (`ManualClock`) that tests and virtual-time runs advance by hand.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic, arbitrary origin: for durations and timers. */
  now(): number;
  /**
   * Wall-clock milliseconds since the Unix epoch (`Date.now()` for the real
   * clock): for timestamps other processes read, such as the interval of a
   * traffic report. May jump; measure durations with `now()`.
   */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
}

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref?.();
    return { cancel: () => clearInterval(t) };
  },
};

interface ManualTimer {
  at: number;
  seq: number;
  every: number | undefined;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that only moves when `advance` is called; timers fire in time order.
 * Its wall clock moves with it: `wallNow()` is `wallStartMs` (default: `start`)
 * plus the time advanced since construction.
 */
export class ManualClock implements Clock {
  #now: number;
  readonly #wallOffset: number;
  #seq = 0;
  #timers: ManualTimer[] = [];

  constructor(start = 0, opts: { wallStartMs?: number } = {}) {
    this.#now = start;
    this.#wallOffset = (opts.wallStartMs ?? start) - start;
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#wallOffset + this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.#add(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.#add(fn, ms, Math.max(ms, 1e-9));
  }

  /** Move time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (next === undefined || next.at > end) break;
      this.#now = next.at;
      if (next.every !== undefined) next.at += next.every;
      else next.cancelled = true;
      next.fn();
    }
    this.#now = end;
  }

  /**
   * Move time forward by `ms` in one step, as an event loop busy for that
   * long sees it: every timer that fell due on the way fires once, at the
   * end, in order, and an interval runs on from there (Node's `setInterval`
   * after a busy spell), where `advance` fires an interval at each period.
   */
  stall(ms: number): void {
    this.#now += Math.max(0, ms);
    const due = this.#timers.filter((t) => !t.cancelled && t.at <= this.#now).sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const t of due) {
      if (t.cancelled) continue;
      if (t.every !== undefined) t.at = this.#now + t.every;
      else t.cancelled = true;
      t.fn();
    }
  }

  /**
   * Move time forward by `ms` without running any timer: a loop busy in the
   * middle of a turn. Timers that fell due run at the next `advance` or
   * `stall` (`stall(0)`: as the loop turns again).
   */
  hold(ms: number): void {
    this.#now += Math.max(0, ms);
  }

  #add(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const t: ManualTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, every, fn, cancelled: false };
    this.#timers.push(t);
    return { cancel: () => { t.cancelled = true; } };
  }
}
