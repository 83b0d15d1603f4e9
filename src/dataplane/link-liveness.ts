import type { Clock, TimerHandle } from '../common/clock.ts';

/**
 * A link's liveness: send a keepalive when we have sent nothing for
 * `keepaliveMs`, declare the peer dead when it has sent nothing for
 * `deadMs`. The hot path only sets `rxSeen` / `txSeen` (no clock read per
 * frame); one timer, every min(keepaliveMs/2, deadMs/4, probeMs), turns those flags
 * into times. So a keepalive goes out after keepaliveMs to 1.5 × keepaliveMs
 * of quiet, and silence is detected within deadMs + deadMs/4. Every
 * `probeMs` the same timer asks for a round-trip probe (an echo request),
 * whatever the traffic, so the link's RTT stays current.
 */
export interface LivenessEvents {
  keepalive(): void;
  /** Time for a round-trip probe (every `probeMs`, traffic or not). */
  probe(): void;
  dead(silentMs: number): void;
  /** This process could not run its timer for `stalledMs` ≥ deadMs (stopped, or its event loop blocked): the peer has given up on us. */
  stalled(stalledMs: number): void;
}

export class Liveness {
  /** Set by the link on every chunk received. */
  rxSeen = false;
  /** Set by the link on every frame sent. */
  txSeen = false;
  readonly #clock: Clock;
  readonly #keepaliveMs: number;
  readonly #deadMs: number;
  readonly #probeMs: number;
  readonly #events: LivenessEvents;
  #lastRx: number;
  #lastTx: number;
  #lastProbe: number;
  /** When the timer last ran. */
  #lastCheck: number;
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, keepaliveMs: number, deadMs: number, probeMs: number, events: LivenessEvents) {
    this.#clock = clock;
    this.#keepaliveMs = keepaliveMs;
    this.#deadMs = deadMs;
    this.#probeMs = probeMs;
    this.#events = events;
    const now = clock.now();
    this.#lastRx = now;
    this.#lastTx = now;
    this.#lastProbe = now;
    this.#lastCheck = now;
    const period = Math.max(1, Math.min(keepaliveMs / 2, deadMs / 4, probeMs));
    this.#timer = clock.setInterval(this.#check, period);
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /**
   * Whether this process stalled for deadMs or more since the timer last ran
   * (a SIGSTOP, a blocked event loop): then the peer has declared us dead by
   * now, and what waits in the socket was sent before it gave up — frames it
   * has since sent another way. The link calls this on every chunk it reads,
   * before decoding it (after a SIGCONT the poll phase may run before the
   * timers), and the timer on every tick; on a stall the `stalled` event
   * closes the link and nothing read is delivered.
   */
  checkStall(): boolean {
    if (this.#timer === undefined) return false;
    const stalledMs = this.#clock.now() - this.#lastCheck;
    if (stalledMs < this.#deadMs) return false;
    this.stop();
    this.#events.stalled(stalledMs);
    return true;
  }

  readonly #check = (): void => {
    if (this.checkStall()) return;
    const now = this.#clock.now();
    this.#lastCheck = now;
    if (this.rxSeen) {
      this.rxSeen = false;
      this.#lastRx = now;
    } else if (now - this.#lastRx >= this.#deadMs) {
      this.stop();
      this.#events.dead(now - this.#lastRx);
      return;
    }
    if (now - this.#lastProbe >= this.#probeMs) {
      this.#lastProbe = now;
      this.txSeen = false;
      this.#lastTx = now;
      this.#events.probe(); // a probe is traffic too: no keepalive in the same turn
      return;
    }
    if (this.txSeen) {
      this.txSeen = false;
      this.#lastTx = now;
    } else if (now - this.#lastTx >= this.#keepaliveMs) {
      this.#lastTx = now;
      this.#events.keepalive();
    }
  };
}
