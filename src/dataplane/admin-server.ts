/**
 * The daemon's local admin interface: JSON over HTTP on a Unix socket (mode
 * 0600: the owner only) or on loopback with a bearer token
 * (`Authorization: Bearer TOKEN`, compared in constant time; 401 otherwise).
 * Who may reach it is set up by admin-access.ts. It shows ports, links, rules, learned MACs and counters, and lets a
 * local operator (or a test) add and remove fast-path links and rules until
 * the controller channel takes that role.
 *
 *   GET    /status                  facts: ports, links, versions, daemon counters, the control channel
 *   GET    /ports | /links | /rules | /fdb   (/links: with queue, keepalives, address, last error)
 *   GET    /metrics                  Prometheus text format (daemon-metrics.ts)
 *   GET    /counters                 traffic matrix since the last reset (peek, no reset)
 *   POST   /counters/snapshot        snapshot-and-reset (what the controller takes each period)
 *   PUT    /rules                    replace the admin rule set: [RuleSpec]
 *   POST   /links                    add a fast-path link: {peer, host, port, dial?, reason?}
 *   DELETE /links/PEER               remove a fast-path link
 *
 * Bad requests get 4xx with {error: {code, message}}; nothing here can crash the daemon.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { z } from 'zod';
import { componentLogger, type Logger } from '../common/logger.ts';
import { VnetError } from '../common/errors.ts';
import { badTargetMessage, parseRequestTarget } from '../common/request-target.ts';
import { AdminListenError } from './errors.ts';
import { formatMac } from '../common/mac.ts';
import { formatHostPort } from '../common/host-port.ts';
import { hostSchema } from '../common/address-schemas.ts';
import { ruleSpecSchema } from '../control/rule-spec.ts';
import { ruleToSpec } from './forwarding-rule.ts';
import type { Daemon } from './daemon.ts';
import type { DesiredLink } from '../control/daemon-control.ts';
import type { AdminListen } from './admin-access.ts';
import type { Registry } from 'prom-client';
import { METRICS_CONTENT_TYPE } from './daemon-metrics.ts';

const MAX_BODY = 256 * 1024;

const linkBody = z.strictObject({
  peer: z.string().min(1),
  host: hostSchema,
  port: z.number().int().min(1).max(65535),
  dial: z.boolean().optional(),
  reason: z.string().max(500).default('admin'),
});

class HttpError extends VnetError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

export interface AdminServer {
  /** "http://127.0.0.1:PORT" or "unix:/path". */
  readonly url: string;
  close(): Promise<void>;
}

export interface AdminServerComponents {
  logger: Logger;
  daemon: Daemon;
  /** The daemon's metrics, served at GET /metrics. */
  metrics?: Registry | undefined;
  /** What `GET /status` adds to the daemon's facts (the control channel's state). */
  status?: (() => Record<string, unknown>) | undefined;
}

export async function startAdminServer(
  components: AdminServerComponents,
  init: AdminListen,
): Promise<AdminServer> {
  const log = componentLogger(components.logger, 'admin');
  const daemon = components.daemon;
  const adminLinks = new Map<string, DesiredLink>();
  let linksVersion = 0;
  let rulesVersion = 0;

  const authorized = 'token' in init ? bearerCheck(init.token) : () => true;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer realm="vnet-admin"');
      throw new HttpError(401, 'VNET_ERR_ADMIN_UNAUTHORIZED', 'the admin interface needs Authorization: Bearer TOKEN (the token is in the daemon\'s admin token file)');
    }
    const url = parseRequestTarget(req.url ?? '/');
    if (url === undefined) throw new HttpError(400, 'VNET_ERR_BAD_REQUEST', badTargetMessage(req.url ?? ''));
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body, null, 2);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (method === 'GET') {
      const facts = daemon.facts();
      switch (path) {
        case '/status':
          return send(200, { ...facts, ...components.status?.(), stats: { ...daemon.stats, refusedConnections: daemon.refusedConnections, listener: daemon.listenerStats }, vxlan: daemon.vxlan, members: daemon.deploymentHosts });
        case '/ports':
          return send(200, facts.ports);
        case '/links':
          return send(200, daemon.linkDetails());
        case '/metrics':
        {
          if (components.metrics === undefined) throw new HttpError(404, 'VNET_ERR_NOT_FOUND', 'this daemon has no metrics registry');
          const text = await components.metrics.metrics();
          res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
          res.end(text);
          return;
        }
        case '/rules':
          return send(200, { version: facts.rulesVersion, rules: daemon.table.rules().map(ruleToSpec) });
        case '/fdb':
          return send(200, daemon.table.learned().map((e) => ({ ...e, mac: formatMac(e.mac) })));
        case '/counters':
        {
          const totals = daemon.counters.peek();
          return send(200, { ...totals, entries: totals.entries.map((e) => ({ ...e, src: formatMac(e.src), dst: formatMac(e.dst) })) });
        }
        default:
          throw new HttpError(404, 'VNET_ERR_NOT_FOUND', `no such resource: GET ${path}`);
      }
    }
    if (method === 'POST' && path === '/counters/snapshot') {
      const snap = daemon.takeTrafficSnapshot();
      return send(200, { ...snap, entries: snap.entries.map((e) => ({ ...e, src: formatMac(e.src), dst: formatMac(e.dst) })) });
    }
    if (method === 'PUT' && path === '/rules') {
      const body = await readJson(req);
      const parsed = z.array(ruleSpecSchema).safeParse(body);
      if (!parsed.success) throw badRequest(parsed.error);
      daemon.setRules('admin', parsed.data);
      rulesVersion++;
      return send(200, { version: rulesVersion, rules: parsed.data.length });
    }
    if (method === 'POST' && path === '/links') {
      const parsed = linkBody.safeParse(await readJson(req));
      if (!parsed.success) throw badRequest(parsed.error);
      const b = parsed.data;
      adminLinks.set(b.peer, { peer: b.peer, address: { transport: 'tcp', host: b.host, port: b.port }, reason: b.reason, dial: b.dial });
      daemon.applyFastPathLinks(++linksVersion, [...adminLinks.values()]);
      return send(201, { peer: b.peer, version: linksVersion });
    }
    const m = /^\/links\/([^/]+)$/.exec(path);
    if (method === 'DELETE' && m !== null) {
      let peer: string;
      try {
        peer = decodeURIComponent(m[1]!);
      } catch {
        throw new HttpError(400, 'VNET_ERR_BAD_REQUEST', `the link's peer in ${JSON.stringify(path)} is not a valid percent-encoded host id`);
      }
      if (!adminLinks.delete(peer)) throw new HttpError(404, 'VNET_ERR_NOT_FOUND', `no admin fast-path link to ${peer}`);
      daemon.applyFastPathLinks(++linksVersion, [...adminLinks.values()]);
      return send(200, { peer, removed: true });
    }
    throw new HttpError(405, 'VNET_ERR_METHOD', `${method} ${path} is not supported`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : err instanceof VnetError ? 400 : 500;
      const code = err instanceof VnetError ? err.code : 'VNET_ERR_INTERNAL';
      if (status === 500) log.error({ err }, 'admin request failed');
      else log.debug({ code, message: (err as Error).message }, 'admin request refused');
      if (res.headersSent) return void res.end();
      const text = JSON.stringify({ error: { code, message: (err as Error).message } });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(text);
    });
  });

  if ('socket' in init) {
    // A socket left by a daemon that ended is replaced; one that a running daemon still serves is not.
    if (await socketAnswers(init.socket)) {
      throw new AdminListenError(`unix:${init.socket}`, new Error('another process is serving it (is a daemon for this host already running?)'));
    }
    rmSync(init.socket, { force: true });
    // The socket is made owner-only as it is bound (umask), not after: no moment in which another user could connect.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject).listen(init.socket, resolve);
        process.umask(umask);
      });
    } catch (err) {
      throw new AdminListenError(`unix:${init.socket}`, err);
    } finally {
      process.umask(umask);
    }
    chmodSync(init.socket, 0o600);
    log.info({ socket: init.socket }, 'admin interface listening');
    return { url: `unix:${init.socket}`, close: () => closeServer(server) };
  }
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(init.port, init.host, resolve));
  } catch (err) {
    throw new AdminListenError(formatHostPort(init), err);
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : init.port;
  log.info({ host: init.host, port }, 'admin interface listening');
  return { url: `http://${formatHostPort({ host: init.host, port })}`, close: () => closeServer(server) };
}

/** Whether something accepts connections on the Unix socket at `path` (false when there is no socket or nobody listens). */
function socketAnswers(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.setTimeout(1000, () => { probe.destroy(); resolve(false); });
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}

/** A check of an Authorization header against `token`: SHA-256 of both sides compared in constant time. */
function bearerCheck(token: string): (header: string | undefined) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (header) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    const got = createHash('sha256').update(m?.[1] ?? '').digest();
    return timingSafeEqual(want, got) && m !== null;
  };
}

function badRequest(error: z.ZodError): HttpError {
  const issue = error.issues[0]!;
  const key = issue.path.map(String).join('.') || '(body)';
  return new HttpError(400, 'VNET_ERR_BAD_REQUEST', `${key}: ${issue.message}`);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw new HttpError(413, 'VNET_ERR_BODY_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // The client went away before the body was whole: a bad request, not a failure of ours.
    throw new HttpError(400, 'VNET_ERR_BAD_REQUEST', `request body could not be read: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'VNET_ERR_BAD_JSON', 'request body is not valid JSON');
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
