import type { SchedulerClockConfig } from './scheduler-config.ts';

/**
 * The scheduling policy's clock (the deployment file's `scheduler.clock`):
 * the time a policy sees — the hour its client-weight curve, its load curve
 * or its price series is read at — as a function of the controller's wall
 * clock. By default the two are the same. `startAt` sets the policy's time
 * at the controller's start; `speedup` runs it faster (720: a day in two
 * minutes, the demo's compressed day), counted from that start:
 *
 *   policy(wall) = (startAt ?? wall₀) + (wall − wall₀) × speedup
 *
 * Only the scheduler reads it. The data plane, the migration engine, the
 * coordinator's time-outs and auto-migrate's cool-down keep the wall clock,
 * and so does `scheduler.intervalMs` (how often the policy runs).
 */
/** What the scheduler reads its policy's time from (SchedulerClock; tests: a clock they step). */
export interface PolicyClock {
  /** How much faster than the wall clock the policy's time runs (shown beside it). */
  readonly speedup: number;
  /** Whether the policy's time differs from the wall clock's. */
  readonly shifted: boolean;
  /** The policy's time (ms since the epoch) at wall time `wallMs`. */
  at(wallMs: number): number;
}

export class SchedulerClock implements PolicyClock {
  readonly speedup: number;
  readonly #startWallMs: number;
  readonly #startPolicyMs: number;

  /** `startWallMs`: the controller's start, on its wall clock. */
  constructor(config: Readonly<SchedulerClockConfig>, startWallMs: number) {
    this.speedup = config.speedup;
    this.#startWallMs = startWallMs;
    this.#startPolicyMs = config.startAt ?? startWallMs;
  }

  /** Whether the policy's time differs from the wall clock's. */
  get shifted(): boolean {
    return this.speedup !== 1 || this.#startPolicyMs !== this.#startWallMs;
  }

  /** The policy's time (ms since the epoch) at wall time `wallMs`. */
  at(wallMs: number): number {
    return this.#startPolicyMs + (wallMs - this.#startWallMs) * this.speedup;
  }
}
