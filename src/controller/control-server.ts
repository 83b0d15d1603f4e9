import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { Clock, TimerHandle } from '../common/clock.ts';
import type { VnetError } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import {
  CONTROL_PATH, CONTROL_PROTOCOL_VERSION, DEFAULT_MAX_CONTROL_MESSAGE_BYTES, decodeDaemonMessage, encodeControlMessage, snapshotFromWire,
  type ControllerMessage, type DaemonMessage, type HelloMessage,
} from '../control/control-protocol.ts';
import { validateReport } from '../topology/report-validation.ts';
import type { TrafficReport } from '../topology/traffic-report.ts';
import type { ControllerMetrics } from './metrics.ts';
import { ControlAuthError, ControlStateError, JoinTokenError, UnknownHostError } from './errors.ts';
import { acceptHostCertificate, peerCertificateIdentity, verifyHostCredential } from './host-identity.ts';
import { joinWithToken } from './join-tokens.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * The controller's end of the control channel: an HTTPS server (TLS with
 * `requestCert`, the deployment CA) that upgrades `/control` to a WebSocket.
 *
 *   accept → hello (within helloTimeoutMs) → authenticate → welcome → session
 *
 * Authentication, in order: a client certificate signed by the deployment CA
 * whose CN (or a DNS subjectAltName) is the host id of the hello, unless that
 * certificate was revoked (host-identity.ts); else the host credential issued
 * at an earlier join; else a join token (join-tokens.ts: never for a host that
 * already has an identity; it earns a credential, sent in the welcome). The
 * host must be in the deployment. Anything else is refused with an `error`
 * message and the socket closed. `disconnectHost` closes a host's session
 * when its identity is revoked.
 *
 * After the welcome, every message is decoded by the total decoder: a bad one
 * gets an `error` reply and is counted; the session stays up. A traffic
 * report is validated here, once (`validateReport`: counts, MACs, interval),
 * and reaches the handler as a checked `TrafficReport`; a bad one is refused
 * the same way. The server knows nothing of desired state: it hands sessions
 * and messages to a ControlHandler.
 */

export type SessionAuth = 'certificate' | 'credential' | 'join-token';

export interface ControlSession {
  readonly id: number;
  readonly hostId: string;
  readonly auth: SessionAuth;
  readonly remoteAddress: string;
  /** Queue a message; false if the session is closed. */
  send(message: ControllerMessage): boolean;
  close(code?: number, reason?: string): void;
}

export type SessionMessage = Exclude<DaemonMessage, { type: 'hello' }>;

/** What a handler receives from a session: the decoded message, a traffic report validated. */
export type SessionInput = Exclude<SessionMessage, { type: 'traffic' }> | { type: 'traffic'; report: TrafficReport };

export interface ControlHandler {
  /** Called after the welcome was sent. Replaces any earlier session of the same host (already closed). */
  sessionOpened(session: ControlSession, hello: HelloMessage): void;
  messageReceived(session: ControlSession, message: SessionInput): void;
  sessionClosed(session: ControlSession, reason: string): void;
}

export interface ControlServerComponents {
  store: ControllerStore;
  handler: ControlHandler;
  metrics: ControllerMetrics;
  logger: Logger;
  clock: Clock;
  /** Wall-clock milliseconds, for token expiry and records (default Date.now). */
  wallClock?: () => number;
  /**
   * The handler threw (a bug in the controller, not bad input: input is
   * refused before the handler sees it). The daemon gets an error reply and
   * the session stays up; default: logged at error level.
   */
  onHandlerError?: (err: unknown) => void;
}

export interface ControlServerInit {
  host: string;
  port: number;
  tls: { key: string | Buffer; cert: string | Buffer; ca: string | Buffer };
  updatePeriodMs: number;
  maxMessageBytes?: number;
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
}

export const CLOSE_PROTOCOL_ERROR = 4000;
export const CLOSE_REPLACED = 4001;
export const CLOSE_AUTH_FAILED = 4003;
/** The host's credential or certificate was revoked while it was connected. */
export const CLOSE_REVOKED = 4004;
export const CLOSE_HELLO_TIMEOUT = 4008;
/** How long close() waits for daemons to finish the WebSocket close handshake. */
const CLOSE_GRACE_MS = 1000;

interface Connection {
  ws: WebSocket;
  session: SessionImpl | undefined;
  alive: boolean;
  helloTimer: TimerHandle | undefined;
  tls: TLSSocket;
  remoteAddress: string;
  /** Refused or replaced: whatever else arrives on it is ignored. */
  done: boolean;
}

class SessionImpl implements ControlSession {
  readonly id: number;
  readonly hostId: string;
  readonly auth: SessionAuth;
  readonly remoteAddress: string;
  readonly #ws: WebSocket;

  constructor(id: number, hostId: string, auth: SessionAuth, remoteAddress: string, ws: WebSocket) {
    this.id = id;
    this.hostId = hostId;
    this.auth = auth;
    this.remoteAddress = remoteAddress;
    this.#ws = ws;
  }

  send(message: ControllerMessage): boolean {
    if (this.#ws.readyState !== this.#ws.OPEN) return false;
    this.#ws.send(encodeControlMessage(message));
    return true;
  }

  close(code = 1000, reason = ''): void {
    this.#ws.close(code, reason);
  }
}

export class ControlServer {
  readonly #c: ControlServerComponents;
  readonly #init: ControlServerInit;
  readonly #log: Logger;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  readonly #sessions = new Map<string, Connection>();
  readonly #everSeen = new Set<string>();
  #nextId = 1;
  #ping: TimerHandle | undefined;
  #closed = false;

  constructor(components: ControlServerComponents, init: ControlServerInit) {
    this.#c = components;
    this.#init = init;
    this.#log = componentLogger(components.logger, 'control-server');
    this.#maxBytes = init.maxMessageBytes ?? DEFAULT_MAX_CONTROL_MESSAGE_BYTES;
    this.#now = components.wallClock ?? Date.now;
    this.#server = createServer({
      key: init.tls.key, cert: init.tls.cert, ca: init.tls.ca,
      requestCert: true,
      // Daemons without a certificate may still join with a token; the hello decides.
      rejectUnauthorized: false,
    });
    this.#server.on('tlsClientError', (err) => this.#log.debug({ err }, 'TLS handshake failed'));
    this.#wss = new WebSocketServer({ server: this.#server, path: CONTROL_PATH, maxPayload: this.#maxBytes * 4, perMessageDeflate: false });
    this.#wss.on('connection', (ws, req) => this.#accept(ws, req));
  }

  /** Listen; resolves with the bound port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#init.port, this.#init.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const interval = this.#init.pingIntervalMs ?? 5000;
    this.#ping = this.#c.clock.setInterval(() => this.#heartbeat(), interval);
    this.#log.info({ host: this.#init.host, port: this.port }, 'control channel listening');
    return this.port;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  /** The session of a host, if it is connected. */
  session(hostId: string): ControlSession | undefined {
    return this.#sessions.get(hostId)?.session;
  }

  connectedHosts(): string[] {
    return [...this.#sessions.keys()].sort();
  }

  /** Close a host's session at once (its identity was revoked); false if it had none. */
  disconnectHost(hostId: string, why: string): boolean {
    const conn = this.#sessions.get(hostId);
    if (conn === undefined) return false;
    this.#log.warn({ host: hostId, why }, 'closing the session of a host whose identity was revoked');
    this.#detach(conn, why);
    conn.done = true;
    conn.ws.close(CLOSE_REVOKED, why.slice(0, 100));
    return true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ping?.cancel();
    for (const conn of this.#connections) conn.ws.close(1001, 'controller shutting down');
    const wssClosed = new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    // Sockets that do not finish the close handshake promptly are cut.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([wssClosed, new Promise<void>((resolve) => { grace = setTimeout(resolve, CLOSE_GRACE_MS); })]);
    clearTimeout(grace);
    for (const conn of this.#connections) conn.ws.terminate();
    await wssClosed;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    const tls = req.socket as TLSSocket;
    const conn: Connection = { ws, session: undefined, alive: true, helloTimer: undefined, tls, done: false, remoteAddress: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}` };
    this.#connections.add(conn);
    conn.helloTimer = this.#c.clock.setTimeout(() => {
      if (conn.session === undefined) this.#refuse(conn, 'hello-timeout', new ControlStateError('no hello in time'), CLOSE_HELLO_TIMEOUT);
    }, this.#init.helloTimeoutMs ?? 10_000);
    ws.on('pong', () => { conn.alive = true; });
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onMessage(conn, data, isBinary));
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#c.metrics.malformedMessages.inc({ reason: 'too-large' });
      else this.#c.metrics.malformedMessages.inc({ reason: 'websocket' });
      this.#log.warn({ err, remote: conn.remoteAddress, host: conn.session?.hostId }, 'control connection error');
    });
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(conn, code, reason.toString('utf8')));
  }

  #onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    conn.alive = true;
    if (conn.done) return;
    const raw: unknown = isBinary ? toBuffer(data) : toBuffer(data).toString('utf8');
    const decoded = decodeDaemonMessage(raw, this.#maxBytes);
    if (!decoded.ok) {
      const reason = decoded.error.code === 'VNET_ERR_CONTROL_MESSAGE_TOO_LARGE' ? 'too-large'
        : decoded.error.code === 'VNET_ERR_CONTROL_PROTOCOL_VERSION' ? 'version' : 'invalid';
      if (conn.session === undefined) {
        this.#refuse(conn, reason, decoded.error, CLOSE_PROTOCOL_ERROR);
      } else {
        this.#c.metrics.malformedMessages.inc({ reason });
        this.#log.warn({ host: conn.session.hostId, code: decoded.error.code, detail: decoded.error.message }, 'malformed control message');
        this.#sendError(conn, decoded.error, false);
      }
      return;
    }
    const message = decoded.message;
    if (conn.session === undefined) {
      if (message.type !== 'hello') {
        this.#refuse(conn, 'state', new ControlStateError(`${message.type} before hello`), CLOSE_PROTOCOL_ERROR);
        return;
      }
      this.#hello(conn, message);
      return;
    }
    if (message.type === 'hello') {
      this.#c.metrics.malformedMessages.inc({ reason: 'state' });
      this.#sendError(conn, new ControlStateError('second hello on one session'), false, 'hello');
      return;
    }
    if (message.type === 'facts' && message.facts.hostId !== conn.session.hostId) {
      this.#c.metrics.malformedMessages.inc({ reason: 'state' });
      this.#sendError(conn, new ControlStateError(`facts for host ${message.facts.hostId} on the session of ${conn.session.hostId}`), false, 'facts');
      return;
    }
    this.#c.metrics.messages.inc({ type: message.type });
    let input: SessionInput;
    if (message.type === 'traffic') {
      const valid = validateReport(snapshotFromWire(conn.session.hostId, message.snapshot));
      if (!valid.ok) {
        this.#c.metrics.malformedMessages.inc({ reason: 'traffic-report' });
        this.#log.warn({ host: conn.session.hostId, code: valid.error.code, detail: valid.error.message }, 'traffic report rejected');
        this.#sendError(conn, valid.error, false, 'traffic');
        return;
      }
      input = { type: 'traffic', report: valid.report };
    } else {
      input = message;
    }
    try {
      this.#c.handler.messageReceived(conn.session, input);
    } catch (err) {
      this.#handlerFailed(err, { host: conn.session.hostId, type: message.type }, 'controller failed to handle a control message');
      this.#sendError(conn, err as VnetError, false, message.type);
    }
  }

  #hello(conn: Connection, hello: HelloMessage): void {
    let auth: SessionAuth;
    let credential: string | undefined;
    try {
      if (hello.facts.hostId !== hello.hostId) throw new ControlStateError(`hello from ${hello.hostId} carries the facts of ${hello.facts.hostId}`);
      if (this.#c.store.getHost(hello.hostId) === undefined) throw new UnknownHostError(hello.hostId);
      ({ auth, credential } = this.#authenticate(conn, hello));
    } catch (err) {
      const e = err as VnetError;
      const reason = e instanceof JoinTokenError ? `token-${e.reason}` : e.code === 'VNET_ERR_UNKNOWN_HOST' ? 'unknown-host' : e.code === 'VNET_ERR_CONTROL_STATE' ? 'state' : 'auth';
      this.#refuse(conn, reason, e, e.code === 'VNET_ERR_CONTROL_STATE' ? CLOSE_PROTOCOL_ERROR : CLOSE_AUTH_FAILED);
      return;
    }
    conn.helloTimer?.cancel();
    const previous = this.#sessions.get(hello.hostId);
    if (previous !== undefined) {
      this.#log.info({ host: hello.hostId }, 'new session replaces the previous one');
      this.#detach(previous, 'replaced by a new session');
      previous.done = true;
      previous.ws.close(CLOSE_REPLACED, 'replaced by a new session');
    }
    const session = new SessionImpl(this.#nextId++, hello.hostId, auth, conn.remoteAddress, conn.ws);
    conn.session = session;
    this.#sessions.set(hello.hostId, conn);
    this.#c.metrics.sessions.set(this.#sessions.size);
    this.#c.metrics.sessionsOpened.inc({ auth });
    if (this.#everSeen.has(hello.hostId)) this.#c.metrics.reconnects.inc();
    this.#everSeen.add(hello.hostId);
    session.send({
      type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: hello.hostId, updatePeriodMs: this.#init.updatePeriodMs,
      ...(credential !== undefined ? { credential } : {}),
    });
    this.#log.info({ host: hello.hostId, auth, remote: conn.remoteAddress }, 'daemon connected');
    try {
      this.#c.handler.sessionOpened(session, hello);
    } catch (err) {
      this.#handlerFailed(err, { host: hello.hostId }, 'controller failed to open a session');
    }
  }

  #authenticate(conn: Connection, hello: HelloMessage): { auth: SessionAuth; credential: string | undefined } {
    const { store } = this.#c;
    const now = this.#now();
    const certHost = peerCertificateIdentity(conn.tls);
    let certNote = certHost.error !== undefined ? ` (client certificate refused: ${certHost.error})` : '';
    if (certHost.authorized) {
      if (!certHost.names.includes(hello.hostId)) throw new ControlAuthError(`certificate is for ${certHost.names.join(', ') || 'no host'}, not ${hello.hostId}`);
      if (acceptHostCertificate(store, hello.hostId, certHost.fingerprint, now)) return { auth: 'certificate', credential: undefined };
      certNote = ' (client certificate revoked)';
    }
    if (hello.auth === undefined) throw new ControlAuthError(`no valid client certificate and no join token or credential${certNote}`);
    if ('credential' in hello.auth) {
      if (verifyHostCredential(store, hello.hostId, hello.auth.credential, now)) return { auth: 'credential', credential: undefined };
      throw new ControlAuthError(`host credential not valid for ${hello.hostId}${certNote}`);
    }
    return { auth: 'join-token', credential: joinWithToken(store, hello.auth.joinToken, hello.hostId, now).credential };
  }

  #refuse(conn: Connection, reason: string, error: VnetError, closeCode: number): void {
    if (closeCode === CLOSE_AUTH_FAILED) this.#c.metrics.authFailures.inc({ reason });
    else this.#c.metrics.malformedMessages.inc({ reason });
    this.#log.warn({ remote: conn.remoteAddress, code: error.code, detail: error.message }, 'control connection refused');
    conn.done = true;
    this.#sendError(conn, error, true);
    conn.ws.close(closeCode, error.code.slice(0, 100));
  }

  #sendError(conn: Connection, error: VnetError, fatal: boolean, inReplyTo?: string): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    const code = typeof error.code === 'string' ? error.code : 'VNET_ERR_INTERNAL';
    conn.ws.send(encodeControlMessage({ type: 'error', code, message: String(error.message).slice(0, 4096), fatal, ...(inReplyTo !== undefined ? { inReplyTo } : {}) }));
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    conn.helloTimer?.cancel();
    this.#connections.delete(conn);
    if (conn.session !== undefined) this.#detach(conn, `closed (${code}${reason ? ` ${reason}` : ''})`);
  }

  /** Forget a connection's session and tell the handler, once. */
  #detach(conn: Connection, why: string): void {
    const session = conn.session;
    if (session === undefined) return;
    conn.session = undefined;
    if (this.#sessions.get(session.hostId) === conn) this.#sessions.delete(session.hostId);
    this.#c.metrics.sessions.set(this.#sessions.size);
    this.#log.info({ host: session.hostId, why }, 'daemon disconnected');
    try {
      this.#c.handler.sessionClosed(session, why);
    } catch (err) {
      this.#handlerFailed(err, { host: session.hostId }, 'controller failed to close a session');
    }
  }

  #handlerFailed(err: unknown, fields: Record<string, unknown>, msg: string): void {
    if (this.#c.onHandlerError !== undefined) this.#c.onHandlerError(err);
    else this.#log.error({ err, ...fields }, msg);
  }

  #heartbeat(): void {
    for (const conn of this.#connections) {
      if (!conn.alive) {
        this.#log.info({ host: conn.session?.hostId, remote: conn.remoteAddress }, 'control connection silent: terminating');
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
