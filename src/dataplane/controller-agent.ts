import { WebSocket, type RawData } from 'ws';
import type { Clock, TimerHandle } from '../common/clock.ts';
import { afterReads } from '../common/after-reads.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import {
  CONTROL_PROTOCOL_VERSION, DEFAULT_MAX_CONTROL_MESSAGE_BYTES, NOT_LEADER_CODE, RETRY_CLOSE_CODES, decodeControllerMessage,
  encodeControlMessage, factsToWire, type DaemonMessage,
} from '../control/control-protocol.ts';
import { splitDaemonMessage } from '../control/control-parts.ts';
import { DEFAULT_PART_LIMITS } from '../control/part-assembler.ts';
import { ControllerChanges } from './controller-changes.ts';
import { DEFAULT_REDIAL_POLICY } from './backoff.ts';
import { ControllerDialList } from './controller-dial-list.ts';
import { ChannelKeepalive } from './controller-keepalive.ts';
import { DaemonReports, type SendOutcome } from './controller-reports.ts';
import { CONTROL_FEATURES, NO_FEATURES, isFeaturesRefusal, negotiateFeatures, type ControlFeature } from '../control/control-features.ts';
import type { DaemonControl } from '../control/daemon-control.ts';
import type { MigrationCommand, MigrationControl } from '../control/migration-control.ts';
import type { ImageControl } from '../control/image-control.ts';
import { NO_MIGRATION_AGENT_CODE, type AgentState, type AgentStats, type ControllerAgentComponents, type ControllerAgentInit } from './controller-agent-init.ts';
import { DEFAULT_MAX_QUEUED_REPORTS } from './migration-report-queue.ts';

/**
 * The daemon's end of the control channel. It dials the controller
 * (WebSocket over TLS), says hello with the daemon's facts, then:
 *
 *   set-links / set-rules / patch-rules → DaemonControl.apply… → ack {version, ok}
 *                           (whole or in parts: controller-changes.ts)
 *   anything over the limit → sent in parts (control-parts.ts)
 *   migrate-prepare|start|commit|abort|query → MigrationControl.handle
 *   image-hold            → ImageControl.handle (a daemon that keeps its
 *                           site's chunk store says so in its hello)
 *   the daemon's reports  → traffic and facts every update period, events,
 *                           migration reports (queued while the channel is
 *                           down), image progress: controller-reports.ts
 *
 * A fatal error in answer to the hello (host unknown, certificate, token or
 * credential refused) stops the agent: it is not redialled (`refusal`,
 * `onRefused`) — unless the close that follows it says dial again (4008 no
 * hello in time, 4029 evicted while waiting: a controller busy with a mass
 * connect, `RETRY_CLOSE_CODES`).
 *
 * Features (control-features.ts): the hello lists the features this daemon
 * speaks and carries core facts only; the welcome's list decides what the
 * session's reports carry (`features`): a feature's fields go only to a
 * controller that listed it (facts with them follow the welcome at once).
 * A controller older than the lists refuses the hello for its `features`
 * key: the agent says hello again at once without it, and sends that
 * controller core fields only (until the channel next drops, when it tries
 * the list again: the controller may have been upgraded).
 *
 * Several controller replicas (`urls`, docs/ha.md): the agent dials them in
 * turn (controller-dial-list.ts). A replica that does not lead refuses the
 * hello with NOT_LEADER_CODE, naming the leader's control URL when it knows
 * it: dialled next. A leader that goes away is a dropped channel like any other:
 * the agent tries the next replica, and the new leader converges the daemon
 * by the versioned set-links/set-rules (a version already applied changes
 * nothing in the data plane).
 *
 * A channel on which the controller goes silent counts as dropped
 * (controller-keepalive.ts), as does one with no welcome within
 * `welcomeTimeoutMs` of the hello (judged, like the keepalive, after the
 * turn's reads). When the channel drops it redials with exponential backoff
 * and jitter, and it never touches the daemon's links or rules while away:
 * the daemon keeps forwarding with the last state it was given, and the
 * controller converges it again (by version) once the channel is back.
 * Messages from the controller go through the same total decoder as the controller's; a bad one
 * is counted and skipped.
 */

export { NO_MIGRATION_AGENT_CODE, DEFAULT_MAX_QUEUED_REPORTS };
export type { AgentState, AgentStats, ControllerAgentComponents, ControllerAgentInit };

export class ControllerAgent {
  readonly #daemon: DaemonControl;
  readonly #migrations: MigrationControl | undefined;
  readonly #images: ImageControl | undefined;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #init: ControllerAgentInit;
  readonly #dial: ControllerDialList;
  readonly #maxBytes: number;
  readonly #stateHandlers = new Set<(state: AgentState) => void>();
  #state: AgentState = 'idle';
  #ws: WebSocket | undefined;
  #credential: string | undefined;
  #retry: TimerHandle | undefined;
  #welcomeTimer: TimerHandle | undefined;
  readonly #keepalive: ChannelKeepalive;
  readonly #reports: DaemonReports;
  #unsubscribe: (() => void) | undefined;
  #unsubscribeReports: (() => void) | undefined;
  #unsubscribeImages: (() => void) | undefined;
  #refusal: { code: string; message: string } | undefined;
  /** A fatal error in answer to this connection's hello: a refusal for good unless its close code says dial again. */
  #refused: { code: string; message: string } | undefined;
  #url: string;
  /** The session's features (both lists hold them); none before the welcome or with an older controller. */
  #features: ReadonlySet<ControlFeature> = NO_FEATURES;
  /** The controller refused a hello with a features list (it predates them): say hello without one. */
  #plainHello = false;
  readonly stats: AgentStats = {
    connects: 0, disconnects: 0, malformed: 0, errorsReceived: 0, linksApplied: 0, rulesApplied: 0, applyFailures: 0, trafficReports: 0,
    migrationCommands: 0, migrationReports: 0, migrationReportsDropped: 0, imageHolds: 0, imageReports: 0, partsRefused: 0, partsDropped: 0, patchesApplied: 0, patchesRefused: 0, lastError: undefined,
  };
  readonly #changes: ControllerChanges;
  /** Groups of facts sent in parts (0 is a hello's). */
  #factsSeq = 0;

  constructor(components: ControllerAgentComponents, init: ControllerAgentInit) {
    this.#daemon = components.daemon;
    this.#migrations = components.migrations;
    this.#images = components.images;
    this.#log = componentLogger(components.logger, 'controller-agent', { host: components.daemon.hostId });
    this.#clock = components.clock;
    this.#init = init;
    this.#dial = new ControllerDialList(init.urls ?? (init.url === undefined ? [] : [init.url]), init.backoff ?? DEFAULT_REDIAL_POLICY, components.random);
    this.#maxBytes = init.maxMessageBytes ?? DEFAULT_MAX_CONTROL_MESSAGE_BYTES;
    this.#credential = init.credential;
    this.#url = this.#dial.first;
    this.#changes = new ControllerChanges(components.daemon, this.#log, this.stats, init.parts ?? DEFAULT_PART_LIMITS);
    this.#keepalive = new ChannelKeepalive(components.clock, this.#log, init.keepaliveMs ?? 5000);
    this.#reports = new DaemonReports(components.daemon, components.clock, this.stats, {
      state: () => this.#state,
      features: () => this.#features,
      send: (message) => this.#send(message),
    }, init.maxQueuedReports ?? DEFAULT_MAX_QUEUED_REPORTS);
  }

  /** The control channel dialled now (or last). */
  get url(): string {
    return this.#url;
  }

  get state(): AgentState {
    return this.#state;
  }

  /** The features of the session (control-features.ts): what this daemon's reports carry beyond the core fields. */
  get features(): ReadonlySet<ControlFeature> {
    return this.#features;
  }

  /** Called on every state change; returns the unsubscribe function. */
  onStateChange(handler: (state: AgentState) => void): () => void {
    this.#stateHandlers.add(handler);
    return () => this.#stateHandlers.delete(handler);
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#unsubscribe = this.#daemon.onEvent((e) => this.#reports.event(e));
    this.#unsubscribeReports = this.#migrations?.onReport((r) => this.#reports.migration(r));
    this.#unsubscribeImages = this.#images?.onReport((r) => this.#reports.image(r));
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
    this.#reports.stop();
    this.#welcomeTimer?.cancel();
    this.#keepalive.stop();
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
    this.#url = this.#dial.take();
    const ws = new WebSocket(this.#url, {
      ca: tls.ca,
      ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
      ...(tls.key !== undefined ? { key: tls.key } : {}),
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
      ...(this.#init.localAddress !== undefined ? { localAddress: this.#init.localAddress } : {}),
      maxPayload: this.#maxBytes * 4,
      perMessageDeflate: false,
      handshakeTimeout: this.#init.welcomeTimeoutMs ?? 10_000,
    });
    this.#ws = ws;
    this.#refused = undefined;
    ws.on('open', () => this.#onOpen(ws));
    ws.on('pong', () => { if (ws === this.#ws) this.#keepalive.heard(); });
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onMessage(ws, data, isBinary));
    ws.on('error', (err) => this.#log.debug({ err }, 'control channel error'));
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(ws, code, reason.toString('utf8')));
  }

  #onOpen(ws: WebSocket): void {
    if (ws !== this.#ws) return;
    // Incomplete rule or link sets received in parts expire at the beats.
    this.#keepalive.start(ws, (now) => this.#changes.expire(now));
    const auth = this.#credential !== undefined ? { credential: this.#credential }
      : this.#init.joinToken !== undefined ? { joinToken: this.#init.joinToken } : undefined;
    this.#send({
      type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: this.#daemon.hostId,
      ...(auth !== undefined ? { auth } : {}),
      // Before the welcome nothing is negotiated: core facts only.
      facts: factsToWire(this.#daemon.facts(), NO_FEATURES),
      ...(this.#images !== undefined ? { images: { host: this.#images.announce.host, port: this.#images.announce.port } } : {}),
      ...(this.#plainHello ? {} : { features: [...(this.#init.features ?? CONTROL_FEATURES)] }),
    });
    // Judged after the turn's reads: after this daemon's own busy spell the welcome may be in the socket, unread.
    this.#welcomeTimer = this.#clock.setTimeout(() => afterReads(() => {
      if (this.#state === 'connecting' && ws === this.#ws) {
        this.#log.warn('no welcome from the controller in time');
        ws.terminate();
      }
    }), this.#init.welcomeTimeoutMs ?? 10_000);
  }

  #onMessage(ws: WebSocket, data: RawData, isBinary: boolean): void {
    if (ws !== this.#ws) return;
    this.#keepalive.heard();
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
        this.#dial.welcomed();
        this.#changes.reset();
        this.#features = negotiateFeatures(m.features, this.#init.features ?? CONTROL_FEATURES);
        this.#setState('connected');
        this.#log.info({ updatePeriodMs: m.updatePeriodMs, features: [...this.#features] }, 'connected to the controller');
        // The hello's facts were core only: the fields of the features just agreed follow at once.
        if (this.#features.size > 0) this.#send({ type: 'facts', facts: factsToWire(this.#daemon.facts(), this.#features) });
        this.#reports.welcomed(m.updatePeriodMs);
        return;
      case 'set-links':
      case 'set-rules':
      case 'patch-rules': {
        if (this.#state !== 'connected') return;
        const now = this.#clock.now();
        const ack = m.type === 'set-links' ? this.#changes.links(m, buf.byteLength, now) : m.type === 'set-rules' ? this.#changes.rules(m, buf.byteLength, now) : this.#changes.patch(m);
        if (ack !== undefined) this.#send(ack);
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
          this.#dial.leaderNamed(m.leader, this.#url);
          this.#log.info({ url: this.#url, leader: m.leader }, 'this controller replica does not lead; trying the leader');
          ws.close(1000, 'not the leader');
          return;
        }
        if (m.fatal && this.#state === 'connecting' && !this.#plainHello && isFeaturesRefusal(m)) {
          // A controller older than feature negotiation: the same hello without the list, at once.
          this.#plainHello = true;
          this.#dial.again(this.#url);
          this.#log.info({ url: this.#url }, 'the controller predates feature negotiation: saying hello again without features (core fields only)');
          ws.close(1000, 'hello again without features');
          return;
        }
        if (m.fatal && this.#state === 'connecting') {
          // Refused: the close that follows says whether for good. (A controller before 4008 and 4029 were sent
          // with fatal: false marked them fatal too; they mean "dial again", and a daemon that stopped on them
          // stayed cut off after a mass connect.)
          this.#refused = { code: m.code, message: m.message };
          return;
        }
        this.#log.warn({ code: m.code, detail: m.message, fatal: m.fatal, inReplyTo: m.inReplyTo }, 'controller reported an error');
        return;
    }
  }

  #onMigrationCommand(command: MigrationCommand): void {
    if (this.#state !== 'connected') return;
    this.stats.migrationCommands++;
    if (this.#migrations === undefined) {
      this.#reports.migration({
        type: 'migration', id: command.id, state: 'failed',
        error: { code: NO_MIGRATION_AGENT_CODE, message: `this daemon has no migration agent; ${command.type} refused` },
      });
      return;
    }
    this.#log.debug({ id: command.id, type: command.type }, 'migration command');
    this.#migrations.handle(command);
  }

  /** Hand the message to the open channel (one over the limit in parts, back to back): what became of it. */
  #send(message: DaemonMessage): SendOutcome {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== ws.OPEN) return 'closed';
    let parts: DaemonMessage[];
    try {
      parts = splitDaemonMessage(message, this.#maxBytes, () => ++this.#factsSeq);
    } catch (err) {
      this.#log.error({ err, type: message.type }, 'control message too large to send, even in parts');
      return 'too-large';
    }
    for (const part of parts) ws.send(encodeControlMessage(part));
    return 'sent';
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#welcomeTimer?.cancel();
    this.#keepalive.stop();
    this.#reports.stop();
    this.#features = NO_FEATURES;
    if (this.#state === 'closed') return;
    const refused = this.#refused;
    this.#refused = undefined;
    if (refused !== undefined && !RETRY_CLOSE_CODES.has(code)) {
      this.#stopRefused(refused);
      return;
    }
    if (this.#state === 'connected') {
      this.stats.disconnects++;
      // The controller may come back upgraded: the next hello lists the features again.
      this.#plainHello = false;
    }
    const { next, delayMs } = this.#dial.closed();
    this.#log.info({ code, reason, retryInMs: delayMs, next }, 'control channel closed; links and rules kept; redialling');
    this.#setState('backoff');
    this.#retry = this.#clock.setTimeout(() => this.#connect(), delayMs);
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
