import { WebSocket, type RawData } from 'ws';
import type { Clock, TimerHandle } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import {
  CONTROL_PROTOCOL_VERSION, DEFAULT_MAX_CONTROL_MESSAGE_BYTES, NOT_LEADER_CODE, decodeControllerMessage, desiredLinkFromWire, encodeControlMessage,
  eventToWire, factsToWire, snapshotToWire, type ControllerMessage, type DaemonMessage,
} from '../control/control-protocol.ts';
import { assembled, joinLinks, joinRules, splitDaemonMessage } from '../control/control-parts.ts';
import { Heartbeat } from '../control/heartbeat.ts';
import type { ControlPartError } from '../control/errors.ts';
import { DEFAULT_PART_LIMITS, PartAssembler, WHOLE, type PartLimits } from '../control/part-assembler.ts';
import { Backoff, DEFAULT_REDIAL_POLICY, type BackoffPolicy } from './backoff.ts';
import type { DaemonControl, DaemonEvent, RuleSpec } from '../control/daemon-control.ts';
import type { MigrationCommand, MigrationControl, MigrationReport } from '../control/migration-control.ts';
import type { ImageControl, ImageReport } from '../control/image-control.ts';

/**
 * The daemon's end of the control channel. It dials the controller
 * (WebSocket over TLS), says hello with the daemon's facts, then:
 *
 *   set-links / set-rules → DaemonControl.apply… → ack {version, ok}
 *                           (in parts: applied once the version is whole,
 *                           all at once; a newer version supersedes an
 *                           incomplete one; a broken sequence is nacked)
 *   anything over the limit → sent in parts (control-parts.ts)
 *   every update period   → traffic {snapshot} and facts
 *   daemon events         → event, facts
 *   migrate-prepare|start|commit|abort|query → MigrationControl.handle
 *   every migration report → migration (queued while the channel is down,
 *                            sent in order once welcomed again; bounded)
 *   image-hold            → ImageControl.handle (a daemon that keeps its
 *                           site's chunk store says so in its hello)
 *   every image progress  → image-progress (dropped while the channel is
 *                           down: the holds that follow the next welcome
 *                           re-report where each version stands)
 *
 * A fatal error in answer to the hello (host unknown, certificate, token or
 * credential refused) stops the agent: it is not redialled (`refusal`,
 * `onRefused`).
 *
 * Several controller replicas (`urls`, docs/ha.md): the agent dials them in
 * turn. A replica that does not lead refuses the hello with NOT_LEADER_CODE,
 * naming the leader's control URL when it knows it: the agent dials that one
 * next, else the next in its list, at once; only after as many attempts as
 * there are addresses without a welcome does it wait (the backoff runs across
 * the whole list). A leader that goes away is a dropped channel like any other:
 * the agent tries the next replica, and the new leader converges the daemon
 * by the versioned set-links/set-rules (a version already applied changes
 * nothing in the data plane).
 *
 * A channel on which the controller sends nothing, not even a pong, for a
 * keepalive interval after a ping counts as dropped — judged at a beat that
 * comes on time (control/heartbeat.ts): after this daemon's own busy spell
 * the controller's answer may still be unread. When the channel drops it redials with
 * exponential backoff and jitter, and
 * it never touches the daemon's links or rules while away: the daemon keeps
 * forwarding with the last state it was given, and the controller converges
 * it again (by version) once the channel is back. Messages from the
 * controller go through the same total decoder as the controller's; a bad one
 * is counted and skipped.
 */

export type AgentState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

/** The code of the `failed` report a daemon without a migration agent answers migration commands with. */
export const NO_MIGRATION_AGENT_CODE = 'VNET_ERR_NO_MIGRATION_AGENT';

/** Migration reports kept while the control channel is down (the oldest progress reports go first). */
export const DEFAULT_MAX_QUEUED_REPORTS = 1024;

export interface ControllerAgentComponents {
  daemon: DaemonControl;
  /** The host's migration agent; without one, migration commands are answered `failed`. */
  migrations?: MigrationControl | undefined;
  /** The host's image propagator (its site's chunk store); without one the hello announces no store and holds are ignored. */
  images?: ImageControl | undefined;
  logger: Logger;
  clock: Clock;
  random?: () => number;
}

export interface ControllerAgentInit {
  /** e.g. wss://controller.example:7400/control */
  url?: string | undefined;
  /** The control channels of a replicated controller's replicas, tried in turn for the leader (instead of `url`). */
  urls?: readonly string[] | undefined;
  tls: {
    /** The deployment CA: the controller's certificate must chain to it. */
    ca: string | Buffer;
    /** This host's certificate and key (mutual TLS); without them, a join token or credential is needed. */
    cert?: string | Buffer | undefined;
    key?: string | Buffer | undefined;
    /** Name to check the controller's certificate against, if not the URL's host. */
    servername?: string | undefined;
  };
  joinToken?: string | undefined;
  /** A host credential issued at an earlier join. */
  credential?: string | undefined;
  /** Called when the controller issues a credential (persist it to rejoin after a restart). */
  onCredential?: ((credential: string) => void) | undefined;
  backoff?: BackoffPolicy | undefined;
  maxMessageBytes?: number | undefined;
  /** Give up on a connection attempt that has no welcome after this long. */
  welcomeTimeoutMs?: number | undefined;
  /** Ping the controller this often; a channel with no pong or message within an interval of a ping is cut and redialled (default 5000). */
  keepaliveMs?: number | undefined;
  /** Migration reports kept while the channel is down (default 1024). */
  maxQueuedReports?: number | undefined;
  /** Bounds on a rule or link set received in parts (default DEFAULT_PART_LIMITS). */
  parts?: PartLimits | undefined;
  /** Called once when the controller refuses the hello for good (fatal error before the welcome); the agent has stopped. */
  onRefused?: ((refusal: { code: string; message: string }) => void) | undefined;
}

export interface AgentStats {
  connects: number;
  disconnects: number;
  malformed: number;
  errorsReceived: number;
  linksApplied: number;
  rulesApplied: number;
  applyFailures: number;
  trafficReports: number;
  migrationCommands: number;
  migrationReports: number;
  /** Migration reports dropped because the queue was full while the channel was down. */
  migrationReportsDropped: number;
  imageHolds: number;
  imageReports: number;
  /** Rule or link sets received in parts that were refused (broken sequence) or dropped incomplete. */
  partsRefused: number;
  partsDropped: number;
  lastError: { code: string; message: string } | undefined;
}

export class ControllerAgent {
  readonly #daemon: DaemonControl;
  readonly #migrations: MigrationControl | undefined;
  readonly #images: ImageControl | undefined;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #init: ControllerAgentInit;
  readonly #backoff: Backoff;
  readonly #maxBytes: number;
  readonly #stateHandlers = new Set<(state: AgentState) => void>();
  #state: AgentState = 'idle';
  #ws: WebSocket | undefined;
  #credential: string | undefined;
  #retry: TimerHandle | undefined;
  #report: TimerHandle | undefined;
  #welcomeTimer: TimerHandle | undefined;
  #keepalive: TimerHandle | undefined;
  #heard = false;
  #unsubscribe: (() => void) | undefined;
  #unsubscribeReports: (() => void) | undefined;
  #unsubscribeImages: (() => void) | undefined;
  /** Migration reports waiting for the channel, in order. */
  #queued: MigrationReport[] = [];
  readonly #maxQueued: number;
  #seq = 0;
  #refusal: { code: string; message: string } | undefined;
  readonly #urls: readonly string[];
  /** The list's address dialled (or to dial) now. */
  #at = 0;
  /** The leader's URL as a replica that does not lead named it: dialled next. */
  #leaderHint: string | undefined;
  #url: string;
  /** Attempts since the last welcome or backoff wait. */
  #triesInRound = 0;
  readonly stats: AgentStats = {
    connects: 0, disconnects: 0, malformed: 0, errorsReceived: 0, linksApplied: 0, rulesApplied: 0, applyFailures: 0, trafficReports: 0,
    migrationCommands: 0, migrationReports: 0, migrationReportsDropped: 0, imageHolds: 0, imageReports: 0, partsRefused: 0, partsDropped: 0, lastError: undefined,
  };
  readonly #rulesIn: PartAssembler<Extract<ControllerMessage, { type: 'set-rules' }>>;
  readonly #linksIn: PartAssembler<Extract<ControllerMessage, { type: 'set-links' }>>;
  /** Groups of facts sent in parts (0 is a hello's). */
  #factsSeq = 0;

  constructor(components: ControllerAgentComponents, init: ControllerAgentInit) {
    this.#daemon = components.daemon;
    this.#migrations = components.migrations;
    this.#images = components.images;
    this.#maxQueued = Math.max(1, init.maxQueuedReports ?? DEFAULT_MAX_QUEUED_REPORTS);
    this.#log = componentLogger(components.logger, 'controller-agent', { host: components.daemon.hostId });
    this.#clock = components.clock;
    this.#init = init;
    this.#backoff = new Backoff(init.backoff ?? DEFAULT_REDIAL_POLICY, components.random);
    this.#maxBytes = init.maxMessageBytes ?? DEFAULT_MAX_CONTROL_MESSAGE_BYTES;
    this.#credential = init.credential;
    this.#urls = init.urls ?? (init.url === undefined ? [] : [init.url]);
    if (this.#urls.length === 0) throw new TypeError('ControllerAgent needs url or urls');
    this.#url = this.#urls[0]!;
    const dropped = (error: ControlPartError): void => {
      this.stats.partsDropped++;
      this.#log.warn({ detail: error.message }, 'incomplete set from the controller dropped');
    };
    this.#rulesIn = new PartAssembler('rule set', init.parts ?? DEFAULT_PART_LIMITS, dropped);
    this.#linksIn = new PartAssembler('link set', init.parts ?? DEFAULT_PART_LIMITS, dropped);
  }

  /** The control channel dialled now (or last). */
  get url(): string {
    return this.#url;
  }

  get state(): AgentState {
    return this.#state;
  }

  /** Called on every state change; returns the unsubscribe function. */
  onStateChange(handler: (state: AgentState) => void): () => void {
    this.#stateHandlers.add(handler);
    return () => this.#stateHandlers.delete(handler);
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#unsubscribe = this.#daemon.onEvent((e) => this.#onDaemonEvent(e));
    this.#unsubscribeReports = this.#migrations?.onReport((r) => this.#sendReport(r));
    this.#unsubscribeImages = this.#images?.onReport((r) => this.#sendImageReport(r));
    this.#connect();
  }

  /** Why the controller refused this daemon's hello, after which the agent stopped (state closed); undefined otherwise. */
  get refusal(): { code: string; message: string } | undefined {
    return this.#refusal;
  }

  /** Close the channel for good. The daemon's links and rules stay as they are. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    this.#unsubscribe?.();
    this.#unsubscribeReports?.();
    this.#unsubscribeImages?.();
    this.#retry?.cancel();
    this.#stopReporting();
    this.#welcomeTimer?.cancel();
    this.#keepalive?.cancel();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws !== undefined && ws.readyState !== ws.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'daemon closing');
        // A controller that never answers the close handshake is cut.
        this.#clock.setTimeout(() => ws.terminate(), 2000);
      });
    }
  }

  #connect(): void {
    if (this.#state === 'closed') return;
    this.#setState('connecting');
    const { tls } = this.#init;
    this.#url = this.#leaderHint ?? this.#urls[this.#at]!;
    this.#leaderHint = undefined;
    const ws = new WebSocket(this.#url, {
      ca: tls.ca,
      ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
      ...(tls.key !== undefined ? { key: tls.key } : {}),
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
      maxPayload: this.#maxBytes * 4,
      perMessageDeflate: false,
      handshakeTimeout: this.#init.welcomeTimeoutMs ?? 10_000,
    });
    this.#ws = ws;
    ws.on('open', () => this.#onOpen(ws));
    ws.on('pong', () => { if (ws === this.#ws) this.#heard = true; });
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onMessage(ws, data, isBinary));
    ws.on('error', (err) => this.#log.debug({ err }, 'control channel error'));
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(ws, code, reason.toString('utf8')));
  }

  #onOpen(ws: WebSocket): void {
    if (ws !== this.#ws) return;
    this.#heard = true;
    this.#keepalive?.cancel();
    const keepaliveMs = this.#init.keepaliveMs ?? 5000;
    // A beat that comes late (this daemon's loop was busy) judges no one: the controller's answer may be unread.
    const beats = new Heartbeat(keepaliveMs, this.#clock.now());
    this.#keepalive = this.#clock.setInterval(() => {
      if (ws !== this.#ws) return;
      this.#rulesIn.expire(this.#clock.now());
      this.#linksIn.expire(this.#clock.now());
      const judging = beats.beat(this.#clock.now());
      if (!this.#heard && judging) {
        this.#log.warn('controller silent for two keepalive intervals: cutting the channel');
        ws.terminate();
        return;
      }
      this.#heard = false;
      ws.ping();
    }, keepaliveMs);
    const auth = this.#credential !== undefined ? { credential: this.#credential }
      : this.#init.joinToken !== undefined ? { joinToken: this.#init.joinToken } : undefined;
    this.#send({
      type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: this.#daemon.hostId,
      ...(auth !== undefined ? { auth } : {}),
      facts: factsToWire(this.#daemon.facts()),
      ...(this.#images !== undefined ? { images: { host: this.#images.announce.host, port: this.#images.announce.port } } : {}),
    });
    this.#welcomeTimer = this.#clock.setTimeout(() => {
      if (this.#state === 'connecting' && ws === this.#ws) {
        this.#log.warn('no welcome from the controller in time');
        ws.terminate();
      }
    }, this.#init.welcomeTimeoutMs ?? 10_000);
  }

  #onMessage(ws: WebSocket, data: RawData, isBinary: boolean): void {
    if (ws !== this.#ws) return;
    this.#heard = true;
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    const decoded = decodeControllerMessage(isBinary ? buf : buf.toString('utf8'), this.#maxBytes);
    if (!decoded.ok) {
      this.stats.malformed++;
      this.#log.warn({ code: decoded.error.code, detail: decoded.error.message }, 'malformed message from the controller');
      return;
    }
    const m = decoded.message;
    switch (m.type) {
      case 'welcome':
        this.#welcomeTimer?.cancel();
        if (m.hostId !== this.#daemon.hostId) {
          this.#log.error({ hostId: m.hostId }, 'controller welcomed another host');
          ws.close(4000, 'wrong host');
          return;
        }
        if (m.credential !== undefined) {
          this.#credential = m.credential;
          this.#init.onCredential?.(m.credential);
        }
        this.stats.connects++;
        this.#backoff.reset();
        this.#triesInRound = 0;
        this.#rulesIn.reset();
        this.#linksIn.reset();
        this.#setState('connected');
        this.#log.info({ updatePeriodMs: m.updatePeriodMs }, 'connected to the controller');
        this.#startReporting(m.updatePeriodMs);
        this.#flushReports();
        return;
      case 'set-links': {
        const r = assembled(this.#linksIn.accept(m.version, m.part ?? WHOLE, buf.byteLength, m, this.#clock.now()), joinLinks);
        if (r.state === 'whole') {
          const whole = r.message;
          this.#apply('links', m.version, () => {
            if (whole.members !== undefined) this.#daemon.setDeploymentHosts?.(whole.members);
            this.#daemon.applyFastPathLinks(m.version, whole.links.map(desiredLinkFromWire));
          });
        }
        else if (r.state === 'refused') this.#refused('links', m.version, r.error);
        return;
      }
      case 'set-rules': {
        const r = assembled(this.#rulesIn.accept(m.version, m.part ?? WHOLE, buf.byteLength, m, this.#clock.now()), joinRules);
        if (r.state === 'whole') this.#apply('rules', m.version, () => this.#daemon.applyRules(m.version, r.message.rules as RuleSpec[]));
        else if (r.state === 'refused') this.#refused('rules', m.version, r.error);
        return;
      }
      case 'migrate-prepare':
      case 'migrate-start':
      case 'migrate-commit':
      case 'migrate-abort':
      case 'migrate-query':
        this.#onMigrationCommand(m);
        return;
      case 'image-hold':
        if (this.#state !== 'connected') return;
        this.stats.imageHolds++;
        if (this.#images === undefined) this.#log.debug({ image: m.manifest.imageId }, 'image hold ignored: this daemon keeps no chunk store');
        else this.#images.handle(m);
        return;
      case 'error':
        this.stats.errorsReceived++;
        this.stats.lastError = { code: m.code, message: m.message };
        if (m.code === NOT_LEADER_CODE && this.#state === 'connecting') {
          // Not refused for good: another replica leads. Dial it (or the next one) when this channel has closed.
          this.#leaderHint = m.leader !== undefined && m.leader !== this.#url ? m.leader : undefined;
          this.#log.info({ url: this.#url, leader: m.leader }, 'this controller replica does not lead; trying the leader');
          ws.close(1000, 'not the leader');
          return;
        }
        if (m.fatal && this.#state === 'connecting') {
          this.#stopRefused({ code: m.code, message: m.message });
          return;
        }
        this.#log.warn({ code: m.code, detail: m.message, fatal: m.fatal, inReplyTo: m.inReplyTo }, 'controller reported an error');
        return;
    }
  }

  /** A set in parts that does not fit its sequence: nacked, nothing of it applied. */
  #refused(kind: 'links' | 'rules', version: number, error: ControlPartError): void {
    if (this.#state !== 'connected') return;
    this.stats.partsRefused++;
    this.#log.warn({ kind, version, code: error.code, detail: error.message }, 'set from the controller refused');
    this.#send({ type: 'ack', kind, version, ok: false, error: { code: error.code, message: error.message } });
  }

  #apply(kind: 'links' | 'rules', version: number, apply: () => void): void {
    if (this.#state !== 'connected') return;
    try {
      apply();
    } catch (err) {
      this.stats.applyFailures++;
      const e = err as { code?: unknown; message?: unknown };
      const code = typeof e.code === 'string' ? e.code : 'VNET_ERR_INTERNAL';
      const message = String(e.message ?? err).slice(0, 4096);
      this.#log.warn({ kind, version, code, detail: message }, 'could not apply the controller change');
      this.#send({ type: 'ack', kind, version, ok: false, error: { code, message } });
      return;
    }
    if (kind === 'links') this.stats.linksApplied++;
    else this.stats.rulesApplied++;
    this.#log.debug({ kind, version }, 'applied controller change');
    this.#send({ type: 'ack', kind, version, ok: true });
  }

  #onMigrationCommand(command: MigrationCommand): void {
    if (this.#state !== 'connected') return;
    this.stats.migrationCommands++;
    if (this.#migrations === undefined) {
      this.#sendReport({
        type: 'migration', id: command.id, state: 'failed',
        error: { code: NO_MIGRATION_AGENT_CODE, message: `this daemon has no migration agent; ${command.type} refused` },
      });
      return;
    }
    this.#log.debug({ id: command.id, type: command.type }, 'migration command');
    this.#migrations.handle(command);
  }

  /** A migration report: sent now when the channel is up, else queued (bounded) for the next welcome. */
  #sendReport(report: MigrationReport): void {
    if (this.#state === 'connected' && this.#queued.length === 0 && this.#send(report)) {
      this.stats.migrationReports++;
      return;
    }
    if (this.#state === 'closed') return;
    if (this.#queued.length >= this.#maxQueued) {
      // Progress is the first to go: the states after it say more.
      const i = this.#queued.findIndex((r) => r.state === 'progress');
      this.#queued.splice(i === -1 ? 0 : i, 1);
      this.stats.migrationReportsDropped++;
    }
    this.#queued.push(report);
  }

  #sendImageReport(report: ImageReport): void {
    if (this.#state === 'connected' && this.#send(report)) this.stats.imageReports++;
  }

  #flushReports(): void {
    while (this.#queued.length > 0 && this.#state === 'connected') {
      if (!this.#send(this.#queued[0]!)) return;
      this.#queued.shift();
      this.stats.migrationReports++;
    }
  }

  #startReporting(periodMs: number): void {
    this.#stopReporting();
    // Counts since the last report taken (possibly before a disconnect) go into the first one.
    this.#report = this.#clock.setInterval(() => this.#reportNow(), periodMs);
  }

  #stopReporting(): void {
    this.#report?.cancel();
    this.#report = undefined;
  }

  #reportNow(): void {
    if (this.#state !== 'connected') return;
    const snapshot = this.#daemon.takeTrafficSnapshot();
    this.#send({ type: 'traffic', seq: ++this.#seq, snapshot: snapshotToWire(snapshot) });
    this.#send({ type: 'facts', facts: factsToWire(this.#daemon.facts()) });
    this.stats.trafficReports++;
  }

  #onDaemonEvent(event: DaemonEvent): void {
    if (this.#state !== 'connected') return;
    this.#send({ type: 'event', event: eventToWire(event) });
    this.#send({ type: 'facts', facts: factsToWire(this.#daemon.facts()) });
  }

  /** Whether the message was handed to an open channel; one over the limit goes in parts, back to back. */
  #send(message: DaemonMessage): boolean {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== ws.OPEN) return false;
    let parts: DaemonMessage[];
    try {
      parts = splitDaemonMessage(message, this.#maxBytes, () => ++this.#factsSeq);
    } catch (err) {
      this.#log.error({ err, type: message.type }, 'control message too large to send, even in parts');
      return false;
    }
    for (const part of parts) ws.send(encodeControlMessage(part));
    return true;
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#welcomeTimer?.cancel();
    this.#keepalive?.cancel();
    this.#stopReporting();
    if (this.#state === 'closed') return;
    if (this.#state === 'connected') this.stats.disconnects++;
    if (this.#leaderHint === undefined) this.#at = (this.#at + 1) % this.#urls.length;
    // The next address at once, until the round has tried as many as the list holds; then the backoff.
    let delay = 0;
    if (++this.#triesInRound >= this.#urls.length) {
      this.#triesInRound = 0;
      delay = this.#backoff.next();
    }
    this.#log.info({ code, reason, retryInMs: delay, next: this.#leaderHint ?? this.#urls[this.#at] }, 'control channel closed; links and rules kept; redialling');
    this.#setState('backoff');
    this.#retry = this.#clock.setTimeout(() => this.#connect(), delay);
  }

  /**
   * The controller refused the hello (unknown host, certificate, token or
   * credential not valid): redialling would be refused the same way, so the
   * agent stops and says why.
   */
  #stopRefused(refusal: { code: string; message: string }): void {
    this.#refusal = refusal;
    this.#log.error({ code: refusal.code, detail: refusal.message }, 'the controller refused this daemon; not redialling');
    void this.close();
    this.#init.onRefused?.(refusal);
  }

  #setState(state: AgentState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const h of this.#stateHandlers) h(state);
  }
}
