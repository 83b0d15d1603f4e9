import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { realClock } from '../../common/clock.ts';
import type { Clock } from '../../common/clock.ts';
import { componentLogger } from '../../common/logger.ts';
import { PendingSlots, type PendingSlot, type PendingSlotStats } from '../../common/pending-slots.ts';
import type { Logger } from '../../common/logger.ts';
import type { AccessCommands } from '../access-model.ts';
import type { ControllerModel } from '../api-model.ts';
import { addAccessRoutes } from './access-routes.ts';
import { addImageRoutes } from './image-routes.ts';
import type { ImagePublisher } from '../image-publisher.ts';
import type { ImageCatalog } from '../image-catalog.ts';
import { authenticate, bearerToken, requireOperator } from './auth.ts';
import type { Principal } from './auth.ts';
import { ApiInvalidRequestError, ApiNotLeaderError, ApiRouteNotFoundError } from './errors.ts';
import type { LeaderRecord } from '../leader-record.ts';
import type { ReplicaStatusView } from '../replica-status.ts';
import { badTargetMessage, parseRequestTarget } from '../../common/request-target.ts';
import { EventStreamServer } from './event-stream.ts';
import type { EventStreamInit } from './event-stream.ts';
import { createApiMetrics } from './http-metrics.ts';
import type { ApiMetrics } from './http-metrics.ts';
import { DEFAULT_MAX_BODY_BYTES, readJsonBody, readRawBody, sendError, sendJson } from './http-json.ts';
import { StaticFiles } from './static-files.ts';
import type { TokenStore } from './token-store.ts';
import { API_PREFIX, createV1Router, ok } from './v1-routes.ts';
import type { RouteHandler } from './v1-routes.ts';
import type { Router } from './router.ts';
import { formatHostPort } from '../../common/host-port.ts';
import { FORWARDED_HEADER, forwardRead, SERVED_BY_HEADER } from './leader-reads.ts';

/**
 * The operator API server. Stages of a request:
 *   static    GET of the page shell (/, /app.js, /style.css, /vendor/…): no token
 *   metrics   GET /metrics: Prometheus text, no token by default (loopback;
 *             `metricsRequireToken` to require one)
 *   auth      everything under /api/ needs `Authorization: Bearer <token>`;
 *             a change (any method but GET/HEAD) needs the operator scope
 *   route     /api/v1/… → handler → JSON; errors → `{ error: { code, message } }`
 *   upgrade   the WebSocket event stream at /api/v1/events (see event-stream.ts)
 * Every request is counted and timed by route pattern.
 *
 * A connection holds a pending slot from accept to its first request's
 * headers (or upgrade): past `pendingDeadlineMs` it is cut, and over the caps
 * per source address and in total a newcomer evicts a pending one (its
 * source's oldest, else a random one; common/pending-slots.ts), so idle or
 * slow-header connections cannot hold the API. Counted in
 * `vnet_api_pending_dropped_total{reason}`; idle keep-alive connections after
 * a request close after node's keepAliveTimeout (5 s).
 */

export interface ApiServerComponents {
  logger: Logger;
  model: ControllerModel;
  tokens: TokenStore;
  /** Join tokens and host credentials (the controller's); their routes answer 501 without. */
  access?: AccessCommands | undefined;
  /** Published images and their replicas (image-catalog.ts); without it there are no image routes. */
  images?: ImageCatalog | undefined;
  /** Publishing images (the leader's; image-publisher.ts): without it the image routes are read-only. */
  imagePublisher?: ImagePublisher | undefined;
  registry: Registry;
  clock?: Clock;
  /** Wall-clock ms for API token records (default Date.now). */
  wallClock?: () => number;
  /**
   * When the controller's store writes so far are durable (`ControllerStore.committed`):
   * a change is answered only then, so an answered change survives a leader change (etcd).
   */
  committed?: () => Promise<void> | undefined;
  /**
   * Set on a controller replica that does not lead (docs/ha.md): reads are
   * served from its replicated store; a change is answered 307 to the
   * leader's API (or 503 naming it) before anything else is done. The
   * reads of `forwardReads` (route patterns, leader-reads.ts) are
   * forwarded to the leader's API and its answer relayed.
   */
  follower?: { replica: string; leader: () => Promise<LeaderRecord | undefined>; forwardReads?: ReadonlySet<string> } | undefined;
  /** The replicas and the store's health (`GET /api/v1/status`, replica-status.ts). */
  status?: (() => Promise<ReplicaStatusView>) | undefined;
}

export interface ApiServerInit {
  /** Default 127.0.0.1: the API is for the operator's machine unless asked otherwise. */
  host?: string;
  port: number;
  maxBodyBytes?: number;
  metricsRequireToken?: boolean;
  eventStream?: EventStreamInit;
  /** From accept to the first request's headers (default 10 s). */
  pendingDeadlineMs?: number;
  /** Connections without a request yet, per source address (default 32) and in all (default 256). */
  maxPendingPerSource?: number;
  maxPendingTotal?: number;
}

export interface ApiServer {
  /** e.g. "http://127.0.0.1:7070" */
  url: string;
  port: number;
  /** Connections without a request yet, and what became of those before them. */
  readonly pending: { size: number; stats: Readonly<PendingSlotStats> };
  close(): Promise<void>;
}

export const DEFAULT_API_PORT = 7070;

export async function startApiServer(components: ApiServerComponents, init: ApiServerInit): Promise<ApiServer> {
  const logger = componentLogger(components.logger, 'api');
  const clock = components.clock ?? realClock;
  const metrics = createApiMetrics(components.registry);
  const statics = await StaticFiles.load();
  const status = components.status;
  const router = createV1Router(components.model, [...(status === undefined ? [] : ['status']), ...(components.images === undefined ? [] : ['images'])]);
  if (status !== undefined) router.add('GET', `${API_PREFIX}/status`, async () => ok(await status()));
  const stream = new EventStreamServer({ logger, model: components.model, tokens: components.tokens, metrics, clock }, init.eventStream ?? {});
  addAccessRoutes(router, {
    tokens: components.tokens, access: components.access, wallClock: components.wallClock ?? Date.now,
    onApiTokenRevoked: (id) => stream.disconnectToken(id, 'API token revoked'),
  });
  if (components.images !== undefined) addImageRoutes(router, components.images, components.imagePublisher);
  const ctx: HandlerContext = {
    logger,
    clock,
    metrics,
    statics,
    router,
    tokens: components.tokens,
    registry: components.registry,
    maxBodyBytes: init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    metricsRequireToken: init.metricsRequireToken ?? false,
    committed: components.committed ?? (() => undefined),
    follower: components.follower,
  };

  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    void handleRequest(ctx, req, res);
  });
  const slots = new PendingSlots({ clock, onDropped: (reason) => metrics.pendingDropped.inc({ reason }) }, {
    deadlineMs: init.pendingDeadlineMs ?? 10_000, maxPerSource: init.maxPendingPerSource ?? 32, maxTotal: init.maxPendingTotal ?? 256,
  });
  const pending = new WeakMap<Socket, PendingSlot>();
  server.on('connection', (socket: Socket) => {
    const slot = slots.admit(socket.remoteAddress ?? '?', () => socket.destroy());
    pending.set(socket, slot);
    socket.once('close', () => slot.release());
  });
  server.on('request', (req: IncomingMessage) => pending.get(req.socket)?.settle());
  server.on('upgrade', (req, socket, head) => {
    pending.get(req.socket)?.settle();
    stream.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // Not the error object: its rawPacket holds the request's bytes, bearer token included.
    logger.debug({ code: err.code, detail: err.message }, 'malformed HTTP request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  const host = init.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(init.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'API server error'));
  const port = (server.address() as AddressInfo).port;
  const url = `http://${formatHostPort({ host, port })}`;
  logger.info({ url }, 'operator API listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    get pending() {
      return { size: slots.size, stats: slots.stats };
    },
    close(): Promise<void> {
      closing ??= (async () => {
        slots.closeAll();
        await stream.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

interface HandlerContext {
  logger: Logger;
  clock: Clock;
  metrics: ApiMetrics;
  statics: StaticFiles;
  router: Router<RouteHandler>;
  tokens: TokenStore;
  registry: Registry;
  maxBodyBytes: number;
  metricsRequireToken: boolean;
  committed: () => Promise<void> | undefined;
  follower: ApiServerComponents['follower'];
}

async function handleRequest(c: HandlerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = c.clock.now();
  const method = req.method ?? 'GET';
  const methodLabel = KNOWN_METHODS.has(method) ? method : 'other';
  let route = 'unmatched';
  let status: number;
  req.on('error', (err) => c.logger.debug({ err }, 'request stream error'));
  try {
    const url = parseRequestTarget(req.url ?? '/');
    if (url === undefined) throw new ApiInvalidRequestError(badTargetMessage(req.url ?? ''), 'path');
    const path = url.pathname;
    const isRead = method === 'GET' || method === 'HEAD';
    if (isRead && c.statics.has(path)) {
      route = 'static';
      status = c.statics.serve(path, req, res, method === 'HEAD');
    } else if (path === '/metrics') {
      route = '/metrics';
      if (c.metricsRequireToken) authenticateRequest(c, req);
      if (!isRead) throw new ApiRouteNotFoundError(method, path);
      const text = await c.registry.metrics();
      res.writeHead(200, { 'content-type': c.registry.contentType, 'cache-control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : text);
      status = 200;
    } else if (path === '/api' || path.startsWith('/api/')) {
      const principal = authenticateRequest(c, req);
      const match = c.router.match(method, path);
      route = match.route.pattern;
      if (!isRead) requireOperator(principal, `${method} ${route}`);
      if (!isRead && c.follower !== undefined) {
        const leader = await c.follower.leader().catch(() => undefined);
        throw new ApiNotLeaderError(c.follower.replica, leader, `${url.pathname}${url.search}`);
      }
      if (isRead && c.follower?.forwardReads?.has(route) === true && req.headers[FORWARDED_HEADER] === undefined) {
        const leader = await c.follower.leader().catch(() => undefined);
        const answer = await forwardRead(leader, `${url.pathname}${url.search}`, req.headers.authorization, { replica: c.follower.replica });
        res.writeHead(answer.status, { 'content-type': answer.contentType, [SERVED_BY_HEADER]: answer.leader });
        res.end(method === 'HEAD' ? undefined : answer.body);
        status = answer.status;
      } else {
        const result = await match.route.handler({
          params: match.params,
          query: url.searchParams,
          principal,
          body: (maxBytes?: number) => readJsonBody(req, maxBytes ?? c.maxBodyBytes),
          bytes: (maxBytes: number) => readRawBody(req, maxBytes),
        });
        if (!isRead) await c.committed();
        status = result.status;
        if (method === 'HEAD') {
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
          res.end();
        } else {
          sendJson(res, status, result.body);
        }
      }
    } else {
      throw new ApiRouteNotFoundError(method, path);
    }
  } catch (err) {
    status = sendError(res, err, c.logger);
  }
  const seconds = (c.clock.now() - started) / 1000;
  c.metrics.requests.inc({ method: methodLabel, route, status: String(status) });
  c.metrics.duration.observe({ method: methodLabel, route }, seconds);
}

function authenticateRequest(c: HandlerContext, req: IncomingMessage): Principal {
  try {
    return authenticate(c.tokens, bearerToken(req));
  } catch (err) {
    c.metrics.authFailures.inc({ transport: 'http' });
    throw err;
  }
}
