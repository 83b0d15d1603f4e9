import type { WebSocket } from 'ws';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { startHeartbeat } from '../control/heartbeat.ts';

/**
 * The controller agent's keepalive of its control channel
 * (controller-agent.ts): whether the controller has gone silent.
 *
 * Every interval the agent pings the controller. A channel on which the
 * controller sends nothing, not even a pong, for a keepalive interval after
 * a ping counts as dropped and is cut (the agent then redials) — judged at a
 * beat that comes on time, after that turn's reads (control/heartbeat.ts):
 * after this daemon's own busy spell the controller's answer may still be
 * unread in the socket when the beat's timer runs.
 */
export class ChannelKeepalive {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #beats: { stop(): void } | undefined;
  /** The channel beaten for, from its open until `stop`. */
  #ws: WebSocket | undefined;
  /** The controller said something (a pong, a message) since the last ping. */
  #heard = false;

  constructor(clock: Clock, log: Logger, intervalMs: number) {
    this.#clock = clock;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** `ws` just opened: ping it every interval, cut it when silent; `onBeat` runs at every beat first. */
  start(ws: WebSocket, onBeat: (now: number) => void): void {
    this.#heard = true;
    this.#beats?.stop();
    this.#ws = ws;
    // A beat that comes late (this daemon's loop was busy) judges no one: the controller's answer may be unread.
    // One on time judges after the turn's reads: a pong that came while the loop was busy is read by then.
    this.#beats = startHeartbeat(this.#clock, this.#intervalMs, (judging) => {
      if (ws !== this.#ws) return;
      onBeat(this.#clock.now());
      if (!this.#heard && judging) {
        this.#log.warn('controller silent for two keepalive intervals: cutting the channel');
        ws.terminate();
        return;
      }
      this.#heard = false;
      ws.ping();
    });
  }

  /** The controller said something on the channel beaten for (a pong, a message). */
  heard(): void {
    this.#heard = true;
  }

  /** The channel closed (or the agent did): no more beats for it. */
  stop(): void {
    this.#beats?.stop();
    this.#ws = undefined;
  }
}
