import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { VnetError } from '../../common/errors.ts';
import type { Clock, TimerHandle } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import type { ControllerQueries } from '../api-model.ts';
import type { ControllerEventSource, EventView } from '../api-events.ts';
import { authenticate, bearerToken } from './auth.ts';
import type { Principal } from './auth.ts';
import { ApiInvalidRequestError, ApiRouteNotFoundError, statusForCode } from './errors.ts';
import { badTargetMessage, parseRequestTarget } from '../../common/request-target.ts';
import type { ApiMetrics } from './http-metrics.ts';
import { parseRequest, queryObject, streamQuerySchema } from './schemas.ts';
import { verifyApiToken } from './token-store.ts';
import type { TokenStore } from './token-store.ts';

/**
 * The event stream: a WebSocket at /api/v1/events. Stages of a connection:
 *   upgrade   path, query (`since`, `token`) and token checked before the
 *             handshake; a refusal is a plain HTTP error with the JSON body
 *   hello     { kind: "hello", since, latestSeq, oldestSeq, gap }
 *   replay    retained events with seq > since, in order
 *   live      { kind: "event", event } for each new event
 * A client that reads too slowly (more than `maxBufferedBytes` queued) is
 * closed with 1013 and resumes with ?since=<last seq it saw>. Dead peers are
 * found by ping/pong. Messages from the client are ignored. A stream whose
 * token is revoked is closed at once (1008, `disconnectToken`); the
 * heartbeat also closes any whose token is no longer valid.
 */

export const EVENTS_PATH = '/api/v1/events';

export type StreamMessage =
  | { kind: 'hello'; since: number; latestSeq: number; oldestSeq: number; gap: boolean }
  | { kind: 'event'; event: EventView };

export interface EventStreamComponents {
  logger: Logger;
  model: ControllerEventSource & Pick<ControllerQueries, 'listEvents'>;
  tokens: TokenStore;
  metrics: ApiMetrics;
  clock: Clock;
}

export interface EventStreamInit {
  maxBufferedBytes?: number;
  pingIntervalMs?: number;
}

const CLOSE_GRACE_MS = 500;
/** WebSocket close code for a stream whose token was revoked (policy violation). */
export const CLOSE_POLICY = 1008;
const STATUS_TEXT: Readonly<Record<number, string>> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 500: 'Internal Server Error' };

export class EventStreamServer {
  readonly #c: EventStreamComponents;
  readonly #maxBuffered: number;
  readonly #wss: WebSocketServer;
  readonly #ping: TimerHandle;
  readonly #alive = new WeakMap<WebSocket, boolean>();
  readonly #tokenOf = new WeakMap<WebSocket, { tokenId: string; token: string }>();

  constructor(components: EventStreamComponents, init: EventStreamInit = {}) {
    this.#c = components;
    this.#maxBuffered = init.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: 4096, clientTracking: true });
    this.#ping = components.clock.setInterval(() => this.#heartbeat(), init.pingIntervalMs ?? 30_000);
  }

  /** The HTTP server's 'upgrade' handler. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.#c.logger.debug({ err }, 'event stream socket error'));
    let since: number | undefined;
    let principal: Principal;
    try {
      const url = parseRequestTarget(req.url ?? '/');
      if (url === undefined) throw new ApiInvalidRequestError(badTargetMessage(req.url ?? ''), 'path');
      if (url.pathname !== EVENTS_PATH) throw new ApiRouteNotFoundError('GET', url.pathname);
      const q = parseRequest(streamQuerySchema, queryObject(url.searchParams), 'query');
      since = q.since;
      try {
        principal = authenticate(this.#c.tokens, bearerToken(req) ?? q.token);
      } catch (err) {
        this.#c.metrics.authFailures.inc({ transport: 'ws' });
        throw err;
      }
    } catch (err) {
      refuse(socket, err);
      return;
    }
    const token = (bearerToken(req) ?? new URL(req.url ?? '/', 'http://localhost').searchParams.get('token'))!;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#tokenOf.set(ws, { tokenId: principal.tokenId, token });
      this.#attach(ws, since, principal);
    });
  }

  #attach(ws: WebSocket, requestedSince: number | undefined, principal: Principal): void {
    const { model, metrics, logger } = this.#c;
    metrics.wsClients.inc();
    this.#alive.set(ws, true);
    ws.on('pong', () => this.#alive.set(ws, true));
    ws.on('error', (err) => logger.debug({ err }, 'event stream error'));
    const head = model.listEvents({ limit: 1 });
    const since = requestedSince ?? head.latestSeq;
    // A gap: events after `since` are gone, or the client is ahead of this controller's history (it was reset).
    const gap = (head.oldestSeq > 0 && since + 1 < head.oldestSeq && head.latestSeq > since) || since > head.latestSeq;
    ws.send(JSON.stringify({ kind: 'hello', since, latestSeq: head.latestSeq, oldestSeq: head.oldestSeq, gap } satisfies StreamMessage));
    logger.debug({ actor: principal.actor, since, gap }, 'event stream opened');

    let closed = false;
    let unsubscribe: (() => void) | undefined;
    const stop = (): void => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
    };
    unsubscribe = model.subscribe(
      (event) => {
        if (closed) return;
        if (ws.readyState !== ws.OPEN) return;
        if (ws.bufferedAmount > this.#maxBuffered) {
          logger.info({ actor: principal.actor, seq: event.seq }, 'event stream client too slow; closing');
          ws.close(1013, `too slow; reconnect with since=${event.seq - 1}`);
          stop();
          return;
        }
        ws.send(JSON.stringify({ kind: 'event', event } satisfies StreamMessage));
        metrics.wsEventsSent.inc();
      },
      { since },
    );
    if (closed) unsubscribe();
    ws.on('close', () => {
      stop();
      metrics.wsClients.dec();
    });
  }

  /** Close every stream opened with this token (it was revoked); returns how many. */
  disconnectToken(tokenId: string, why: string): number {
    let closed = 0;
    for (const ws of this.#wss.clients) {
      if (this.#tokenOf.get(ws)?.tokenId !== tokenId) continue;
      ws.close(CLOSE_POLICY, why);
      closed++;
    }
    if (closed > 0) this.#c.logger.info({ tokenId, streams: closed }, 'closed the event streams of a revoked token');
    return closed;
  }

  #heartbeat(): void {
    for (const ws of this.#wss.clients) {
      const held = this.#tokenOf.get(ws);
      if (held !== undefined && verifyApiToken(this.#c.tokens, held.token) === undefined) {
        ws.close(CLOSE_POLICY, 'API token no longer valid');
        continue;
      }
      if (this.#alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      this.#alive.set(ws, false);
      ws.ping();
    }
  }

  /** Close every stream (1001 going away) and stop the heartbeat. */
  async close(): Promise<void> {
    this.#ping.cancel();
    // Send every client a close frame and wait (bounded) for the closing handshakes; then cut what is left.
    const closing = [...this.#wss.clients].map(
      (ws) =>
        new Promise<void>((resolve) => {
          ws.once('close', () => resolve());
          ws.close(1001, 'controller shutting down');
        }),
    );
    await Promise.race([Promise.all(closing), new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())]);
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

/** Answer a refused upgrade with an HTTP error and the JSON error body. */
function refuse(socket: Duplex, err: unknown): void {
  const code = err instanceof VnetError ? err.code : 'VNET_ERR_INTERNAL';
  const status = err instanceof VnetError ? statusForCode(err.code) : 500;
  const message = status === 500 ? 'internal error' : (err as Error).message;
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
