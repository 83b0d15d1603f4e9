import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { WebSocket, RawData } from 'ws';
import type { Clock } from '../common/clock.ts';
import type { PendingDropReason, PendingSlot, PendingSlotStats } from '../common/pending-slots.ts';
import type { VnetError } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import {
  CLOSE_HELLO_TIMEOUT, CLOSE_PENDING_DROPPED, CONTROL_PROTOCOL_VERSION, DEFAULT_MAX_CONTROL_MESSAGE_BYTES, RETRY_CLOSE_CODES,
  decodeDaemonMessage, encodeControlMessage, snapshotFromWire, type HelloMessage,
} from '../control/control-protocol.ts';
import type { ControlPartError } from '../control/errors.ts';
import { DEFAULT_PART_LIMITS, type PartLimits } from '../control/part-assembler.ts';
import { ConnectionInbox } from './control-inbox.ts';
import { validateReport } from '../topology/report-validation.ts';
import type { ControllerMetrics } from './metrics.ts';
import { ControlStateError, JoinTokenError, PendingDroppedError, UnknownHostError } from './errors.ts';
import { authenticateHello } from './hello-auth.ts';
import { welcomeFeatures } from '../control/control-features.ts';
import { ControlListener, DEFAULT_MAX_PENDING_PER_SOURCE, DEFAULT_MAX_PENDING_TOTAL } from './control-listener.ts';
import { SessionImpl, toBuffer, type Connection, type ControlHandler, type ControlSession, type Earned, type SessionInput } from './control-session.ts';
import type { ControllerStore } from './store/store.ts';
import { formatHostPort } from '../common/host-port.ts';
import { WelcomeBatch } from './welcome-batch.ts';
import { DEFAULT_PING_INTERVAL_MS } from '../control/heartbeat.ts';
import { ConnectionHeartbeat } from './connection-heartbeat.ts';
import { afterReads } from '../common/after-reads.ts';

/**
 * The controller's end of the control channel: an HTTPS server (TLS with
 * `requestCert`, the deployment CA) that upgrades `/control` to a WebSocket
 * (control-listener.ts, with the slots of connections not welcomed yet).
 *
 *   accept → TLS → upgrade → hello → authenticate → queued → welcome → session
 *   └──────── one deadline: helloTimeoutMs ─────────────────────────┘
 *
 * Authenticated hellos are welcomed in batches, one batch per turn of the
 * event loop (welcome-batch.ts): the handler's work for a connect is shared
 * by the batch, and the loop serves everything else between batches.
 *
 * Authentication (hello-auth.ts): a client certificate of the deployment
 * CA naming the host, else the credential of an earlier join, else a join
 * token. The host must be in the deployment. Anything else is refused with
 * an `error` message and the socket closed. `disconnectHost` closes a host's session
 * when its identity is revoked.
 *
 * After the welcome, every message is decoded by the total decoder: a bad one
 * gets an `error` reply and is counted; the session stays up. Messages over
 * the limit travel in parts (control-parts.ts): a hello's facts, facts and
 * traffic reports are reassembled per connection (part-assembler.ts, bounded
 * in parts, bytes and time) and reach the handler only whole; a broken
 * sequence is refused as a whole (fatal before the welcome). Rule and link
 * sets too large for one message are sent in parts. A traffic
 * report is validated here, once (`validateReport`: counts, MACs, interval),
 * and reaches the handler as a checked `TrafficReport`; a bad one is refused
 * the same way. The server knows nothing of desired state: it hands sessions
 * and messages to a ControlHandler.
 */

export type SessionAuth = 'certificate' | 'credential' | 'join-token';
export type { ControlHandler, ControlSession, SessionInput, SessionMessage } from './control-session.ts';

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
  /** Bounds on one message sent in parts (default DEFAULT_PART_LIMITS). */
  parts?: PartLimits;
  /** From TCP accept to the welcome: TLS handshake, upgrade, hello (and its facts) together (default 10 s). */
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
  /** Connections not welcomed yet, per source address (default 64) and in all (default 1024); a newcomer evicts one. */
  maxPendingPerSource?: number;
  maxPendingTotal?: number;
  /** Hellos welcomed in one turn of the event loop at most (default 64). */
  welcomeBatch?: number;
}

export const CLOSE_PROTOCOL_ERROR = 4000;
export const CLOSE_REPLACED = 4001;
export const CLOSE_AUTH_FAILED = 4003;
/** The host's credential or certificate was revoked while it was connected. */
export const CLOSE_REVOKED = 4004;
/** How long close() waits for daemons to finish the WebSocket close handshake. */
const CLOSE_GRACE_MS = 1000;

export class ControlServer {
  readonly #c: ControlServerComponents;
  readonly #init: ControlServerInit;
  readonly #log: Logger;
  readonly #maxBytes: number;
  readonly #parts: PartLimits;
  readonly #now: () => number;
  readonly #listener: ControlListener;
  readonly #connections = new Set<Connection>();
  readonly #sessions = new Map<string, Connection>();
  readonly #everSeen = new Set<string>();
  readonly #welcomes: WelcomeBatch<{ conn: Connection; hello: HelloMessage; earned: Earned }>;
  #nextId = 1;
  #heartbeat: ConnectionHeartbeat | undefined;
  #closed = false;

  constructor(components: ControlServerComponents, init: ControlServerInit) {
    this.#c = components;
    this.#init = init;
    this.#log = componentLogger(components.logger, 'control-server');
    this.#maxBytes = init.maxMessageBytes ?? DEFAULT_MAX_CONTROL_MESSAGE_BYTES;
    this.#parts = init.parts ?? DEFAULT_PART_LIMITS;
    this.#now = components.wallClock ?? Date.now;
    this.#welcomes = new WelcomeBatch((batch) => this.#welcome(batch), init.welcomeBatch);
    this.#listener = new ControlListener({
      clock: components.clock, logger: this.#log,
      onDropped: (reason) => components.metrics.pendingDropped.inc({ reason }),
      onConnection: (ws, req, slot) => this.#accept(ws, req, slot),
    }, {
      tls: init.tls, maxPayload: this.#maxBytes * 4, deadlineMs: init.helloTimeoutMs ?? 10_000,
      maxPendingPerSource: init.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE, maxPendingTotal: init.maxPendingTotal ?? DEFAULT_MAX_PENDING_TOTAL,
    });
  }

  /** Listen; resolves with the bound port. */
  async listen(): Promise<number> {
    await this.#listener.listen(this.#init.host, this.#init.port);
    const interval = this.#init.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.#heartbeat = new ConnectionHeartbeat({ clock: this.#c.clock, logger: this.#log, connections: this.#connections }, interval);
    this.#log.info({ host: this.#init.host, port: this.port }, 'control channel listening');
    return this.port;
  }

  get port(): number {
    return this.#listener.port;
  }

  /** Connections not welcomed yet, and how many were dropped (by reason). */
  get pending(): { size: number; stats: Readonly<PendingSlotStats> } {
    return this.#listener.pending;
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
    this.#heartbeat?.stop();
    this.#welcomes.clear();
    for (const conn of this.#connections) conn.ws.close(1001, 'controller shutting down');
    const wssClosed = this.#listener.closeWebSockets();
    // Sockets that do not finish the close handshake promptly are cut.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([wssClosed, new Promise<void>((resolve) => { grace = setTimeout(resolve, CLOSE_GRACE_MS); })]);
    clearTimeout(grace);
    for (const conn of this.#connections) conn.ws.terminate();
    await wssClosed;
    await this.#listener.close();
  }

  #accept(ws: WebSocket, req: IncomingMessage, slot: PendingSlot | undefined): void {
    const tls = req.socket as TLSSocket;
    const remoteAddress = formatHostPort({ host: req.socket.remoteAddress ?? '?', port: req.socket.remotePort ?? 0 });
    const dropped = (error: ControlPartError): void => {
      this.#c.metrics.malformedMessages.inc({ reason: 'parts-dropped' });
      this.#log.warn({ remote: remoteAddress, host: conn.session?.hostId, detail: error.message }, 'incomplete control message dropped');
    };
    const conn: Connection = {
      ws, session: undefined, alive: true, slot, tls, done: false, welcoming: false, deadlinePassed: false, queued: 0, remoteAddress, inbox: new ConnectionInbox(this.#parts, dropped),
    };
    this.#connections.add(conn);
    if (slot === undefined || !slot.pending) {
      // Dropped between the upgrade and now.
      ws.terminate();
      return;
    }
    slot.onDrop((reason) => this.#dropPending(conn, reason));
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
    const buf = toBuffer(data);
    const raw: unknown = isBinary ? buf : buf.toString('utf8');
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
    if (conn.welcoming) {
      this.#refuse(conn, 'state', new ControlStateError(`${message.type} before the welcome`), CLOSE_PROTOCOL_ERROR);
      return;
    }
    if (conn.session === undefined && conn.inbox.helloPending) {
      const r = conn.inbox.helloFacts(message, buf.byteLength, this.#c.clock.now());
      if (r.state === 'refused') this.#refuse(conn, 'parts', r.error, CLOSE_PROTOCOL_ERROR);
      else if (r.state === 'whole') this.#open(conn, r.message.hello, r.message.earned as Earned);
      return;
    }
    if (conn.session === undefined) {
      if (message.type !== 'hello') {
        this.#refuse(conn, 'state', new ControlStateError(`${message.type} before hello`), CLOSE_PROTOCOL_ERROR);
        return;
      }
      this.#hello(conn, message, buf.byteLength);
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
    const session = conn.session;
    let input: SessionInput;
    if (message.type === 'traffic') {
      const r = conn.inbox.traffic(message, buf.byteLength, this.#c.clock.now());
      if (r.state !== 'whole') {
        if (r.state === 'refused') this.#partsRefused(conn, r.error);
        return;
      }
      const valid = validateReport(snapshotFromWire(session.hostId, r.message.snapshot));
      if (!valid.ok) {
        this.#c.metrics.malformedMessages.inc({ reason: 'traffic-report' });
        this.#log.warn({ host: conn.session.hostId, code: valid.error.code, detail: valid.error.message }, 'traffic report rejected');
        this.#sendError(conn, valid.error, false, 'traffic');
        return;
      }
      input = { type: 'traffic', report: valid.report };
    } else if (message.type === 'facts') {
      const r = conn.inbox.facts(message, buf.byteLength, this.#c.clock.now());
      if (r.state !== 'whole') {
        if (r.state === 'refused') this.#partsRefused(conn, r.error);
        return;
      }
      input = { type: 'facts', facts: r.message };
    } else {
      input = message;
    }
    try {
      this.#c.handler.messageReceived(session, input);
    } catch (err) {
      this.#handlerFailed(err, { host: session.hostId, type: message.type }, 'controller failed to handle a control message');
      this.#sendError(conn, err as VnetError, false, message.type);
    }
  }

  /** A broken sequence of parts in a session: an error reply, counted; nothing of it is used. */
  #partsRefused(conn: Connection, error: VnetError): void {
    this.#c.metrics.malformedMessages.inc({ reason: 'parts' });
    this.#log.warn({ host: conn.session?.hostId, code: error.code, detail: error.message }, 'control message parts refused');
    this.#sendError(conn, error, false, 'parts');
  }

  #hello(conn: Connection, hello: HelloMessage, bytes: number): void {
    let auth: SessionAuth;
    let credential: string | undefined;
    try {
      if (hello.facts.hostId !== hello.hostId) throw new ControlStateError(`hello from ${hello.hostId} carries the facts of ${hello.facts.hostId}`);
      if (this.#c.store.getHost(hello.hostId) === undefined) throw new UnknownHostError(hello.hostId);
      ({ auth, credential } = authenticateHello(this.#c.store, conn.tls, hello, this.#now()));
    } catch (err) {
      const e = err as VnetError;
      const reason = e instanceof JoinTokenError ? `token-${e.reason}` : e.code === 'VNET_ERR_UNKNOWN_HOST' ? 'unknown-host' : e.code === 'VNET_ERR_CONTROL_STATE' ? 'state' : 'auth';
      this.#refuse(conn, reason, e, e.code === 'VNET_ERR_CONTROL_STATE' ? CLOSE_PROTOCOL_ERROR : CLOSE_AUTH_FAILED);
      return;
    }
    if (hello.part !== undefined) {
      // Authenticated; the welcome waits for the rest of the facts (under the same deadline).
      const r = conn.inbox.beginHello(hello, { auth, credential } satisfies Earned, bytes, this.#c.clock.now());
      if (r.state === 'refused') this.#refuse(conn, 'parts', r.error, CLOSE_PROTOCOL_ERROR);
      return;
    }
    this.#open(conn, hello, { auth, credential });
  }

  /** An authenticated hello with its whole facts: welcomed with the next batch. */
  #open(conn: Connection, hello: HelloMessage, earned: Earned): void {
    conn.welcoming = true;
    this.#welcomes.push({ conn, hello, earned });
  }

  /** Welcome a batch of hellos (those still pending: not dropped, refused or closed meanwhile), then hand their sessions to the handler. */
  #welcome(batch: ReadonlyArray<{ conn: Connection; hello: HelloMessage; earned: Earned }>): void {
    const opened: Array<{ session: ControlSession; hello: HelloMessage }> = [];
    for (const { conn, hello, earned } of batch) {
      conn.welcoming = false;
      // Dropped (evicted, refused) or closed meanwhile; a deadline that passed while it was queued does not count.
      if (conn.done || conn.ws.readyState !== conn.ws.OPEN) continue;
      opened.push({ session: this.#session(conn, hello, earned), hello });
    }
    if (opened.length === 0) return;
    const { handler } = this.#c;
    try {
      if (handler.sessionsOpened !== undefined) handler.sessionsOpened(opened);
      else for (const { session, hello } of opened) handler.sessionOpened(session, hello);
    } catch (err) {
      this.#handlerFailed(err, { hosts: opened.map((o) => o.session.hostId) }, 'controller failed to open sessions');
    }
  }

  /** The session of a welcomed hello: it replaces the host's previous one, and the welcome is sent. */
  #session(conn: Connection, hello: HelloMessage, { auth, credential }: Earned): SessionImpl {
    conn.slot?.settle();
    const previous = this.#sessions.get(hello.hostId);
    if (previous !== undefined) {
      this.#log.info({ host: hello.hostId }, 'new session replaces the previous one');
      this.#detach(previous, 'replaced by a new session');
      previous.done = true;
      previous.ws.close(CLOSE_REPLACED, 'replaced by a new session');
    }
    const session = new SessionImpl(this.#nextId++, hello.hostId, auth, conn.remoteAddress, conn.ws, this.#maxBytes, (type, bytes) => this.#c.metrics.pushedBytes.inc({ type }, bytes));
    conn.session = session;
    this.#sessions.set(hello.hostId, conn);
    this.#c.metrics.sessions.set(this.#sessions.size);
    this.#c.metrics.sessionsOpened.inc({ auth });
    if (this.#everSeen.has(hello.hostId)) this.#c.metrics.reconnects.inc();
    this.#everSeen.add(hello.hostId);
    session.send({
      type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: hello.hostId, updatePeriodMs: this.#init.updatePeriodMs,
      ...(credential !== undefined ? { credential } : {}),
      ...welcomeFeatures(hello),
    });
    this.#log.info({ host: hello.hostId, auth, remote: conn.remoteAddress }, 'daemon connected');
    return session;
  }

  #refuse(conn: Connection, reason: string, error: VnetError, closeCode: number): void {
    if (closeCode === CLOSE_AUTH_FAILED) this.#c.metrics.authFailures.inc({ reason });
    else this.#c.metrics.malformedMessages.inc({ reason });
    this.#log.warn({ remote: conn.remoteAddress, code: error.code, detail: error.message }, 'control connection refused');
    conn.done = true;
    // Not in time, or evicted while waiting: nothing against the daemon (it dials again), so not fatal.
    this.#sendError(conn, error, !RETRY_CLOSE_CODES.has(closeCode));
    conn.ws.close(closeCode, error.code.slice(0, 100));
  }

  #sendError(conn: Connection, error: VnetError, fatal: boolean, inReplyTo?: string): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    const code = typeof error.code === 'string' ? error.code : 'VNET_ERR_INTERNAL';
    conn.ws.send(encodeControlMessage({ type: 'error', code, message: String(error.message).slice(0, 4096), fatal, ...(inReplyTo !== undefined ? { inReplyTo } : {}) }));
  }

  /** A connection not welcomed in time, or evicted by a newcomer: told why, then cut. */
  #dropPending(conn: Connection, reason: PendingDropReason): void {
    if (reason === 'closing') return;
    if (reason === 'deadline') {
      // A hello accepted before the deadline is welcomed with its batch. After a busy spell the deadline
      // timer runs before the turn's reads: a hello that beat it may still be unread, so look once more after them.
      if (conn.welcoming) return;
      if (!conn.deadlinePassed) {
        conn.deadlinePassed = true;
        afterReads(() => { if (!conn.welcoming && !conn.done) this.#dropPending(conn, reason); });
        return;
      }
    }
    if (reason === 'deadline') this.#refuse(conn, 'hello-timeout', new ControlStateError('no hello in time'), CLOSE_HELLO_TIMEOUT);
    else this.#refuse(conn, 'pending-dropped', new PendingDroppedError(reason), CLOSE_PENDING_DROPPED);
    // A peer that does not answer the close handshake does not keep its socket.
    this.#c.clock.setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS);
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    conn.slot?.release();
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
}
