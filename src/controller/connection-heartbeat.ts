import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { silentPeer, startHeartbeat } from '../control/heartbeat.ts';
import type { Connection } from './control-session.ts';

/**
 * The control server's heartbeat over its connections (control/heartbeat.ts
 * says when silence counts): every interval each connection that said
 * nothing since the last ping is cut, the others pinged; incomplete
 * messages in parts past their deadline are expired on the way.
 *
 * A beat is judged after the turn's reads (`startHeartbeat`), not in
 * the timer phase it fires in: after a busy spell Node runs the due timers
 * before it reads the sockets, so the pongs that came in meanwhile would
 * still be unread. Judged in the timer phase, a loop busy for a little over
 * one interval (not late enough for the beat to be spared) cut off every
 * daemon whose pong was waiting — hundreds at once in a 1,000-host connect,
 * all of them dialling again (docs/scale.md).
 */
export class ConnectionHeartbeat {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #connections: ReadonlySet<Connection>;
  readonly #beats: { stop(): void };

  constructor(components: { clock: Clock; logger: Logger; connections: ReadonlySet<Connection> }, intervalMs: number) {
    this.#clock = components.clock;
    this.#log = components.logger;
    this.#connections = components.connections;
    this.#beats = startHeartbeat(this.#clock, intervalMs, (judging) => this.#judge(judging));
  }

  stop(): void {
    this.#beats.stop();
  }

  #judge(judging: boolean): void {
    const now = this.#clock.now();
    for (const conn of this.#connections) {
      // Incomplete sequences past their deadline give their memory back.
      conn.inbox.expire(now);
      if (silentPeer(conn, conn.ws.bufferedAmount, judging)) {
        this.#log.info({ host: conn.session?.hostId, remote: conn.remoteAddress, queued: conn.queued, welcoming: conn.welcoming }, 'control connection silent: terminating');
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }
}
