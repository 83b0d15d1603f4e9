import { afterReads } from '../common/after-reads.ts';
import type { Clock, TimerHandle } from '../common/clock.ts';

/**
 * The control channel's heartbeat, at both ends (the controller's ping of
 * each daemon, a daemon's keepalive of its controller): when the peer's
 * silence counts.
 *
 * Every interval one end pings the other; a peer that said nothing since
 * the last ping (no pong, no message) is cut off — except:
 *
 * - when this beat comes late (more than 1.5 intervals after the last
 *   pings): this end's own loop was busy, and the answers to the last ping
 *   may be waiting unread in the socket buffers. No one is judged at such a beat;
 *   the next one judges (never two spared in a row: a loop late at every
 *   beat still reads between beats);
 * - a beat is judged after the turn's reads (`afterReads`), never in the
 *   timer phase it fires in: after a busy spell Node runs the due timers
 *   before it reads the sockets, so the answers that came in meanwhile are
 *   still unread there. Judged in the timer phase, a loop busy at two beats
 *   in a row (the second is not spared) cut off every peer at once — the
 *   mass drop of a 1,000-host connect (docs/scale.md);
 * - for a connection with data queued toward it that is draining (a whole
 *   rule set on a slow link): the ping waits behind it and cannot have been
 *   answered yet. A peer that reads nothing at all is judged like any other.
 *
 * The next beat falls due an interval after this beat's pings left, not
 * after its timer ran (`startHeartbeat`: a chain of timeouts, not an
 * interval timer): the pings leave after the turn's reads, and a loop busy
 * between the two (a long message handled in that turn; a process not run)
 * would otherwise find the next beat already due as the pings left, and
 * judge every peer silent a moment after pinging it, with no time to
 * answer. Lateness is measured from the pings too.
 */

export const DEFAULT_PING_INTERVAL_MS = 5000;

export class Heartbeat {
  readonly #intervalMs: number;
  /** When the last beat's pings left (at first: when the heartbeat started). */
  #lastPing: number;
  #spared = false;

  constructor(intervalMs: number, now: number) {
    this.#intervalMs = intervalMs;
    this.#lastPing = now;
  }

  /** A beat at `now`: whether it may judge silence. */
  beat(now: number): boolean {
    const late = !this.#spared && now - this.#lastPing > 1.5 * this.#intervalMs;
    this.#spared = late;
    return !late;
  }

  /** This beat's pings left at `now`: the next beat is due an interval later. */
  pinged(now: number): void {
    this.#lastPing = now;
  }
}

/**
 * Beat every `intervalMs` of `clock` until stopped: `onBeat` runs after the
 * turn's reads (`afterReads`) with whether this beat may judge silence, and
 * sends the pings; the next beat is due an interval after it returned.
 */
export function startHeartbeat(clock: Clock, intervalMs: number, onBeat: (judging: boolean) => void): { stop(): void } {
  const beats = new Heartbeat(intervalMs, clock.now());
  let timer: TimerHandle | undefined;
  let stopped = false;
  const schedule = (): void => {
    timer = clock.setTimeout(() => {
      const judging = beats.beat(clock.now());
      afterReads(() => {
        if (stopped) return;
        try {
          onBeat(judging);
        } finally {
          beats.pinged(clock.now());
          schedule();
        }
      });
    }, intervalMs);
  };
  schedule();
  return { stop: () => { stopped = true; timer?.cancel(); } };
}

/** Whether a connection's silence since the last ping condemns it at a beat that judges; records what is queued toward it. */
export function silentPeer(conn: { alive: boolean; queued: number }, queuedNow: number, judging: boolean): boolean {
  const sending = queuedNow > 0 && (conn.queued === 0 || queuedNow < conn.queued);
  conn.queued = queuedNow;
  return judging && !conn.alive && !sending;
}

