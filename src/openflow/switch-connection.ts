import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { OpenFlowDecoder } from './decoder.ts';
import { SwitchConnectionError, SwitchRejectedError, VersionNegotiationError, type OpenFlowDecodeError } from './errors.ts';
import { encodeMessage } from './message-codec.ts';
import { OFP_VERSION, type ControllerRole, type OfMessage, type OfMessageOf } from './messages.ts';
import { OFPMPF_MORE, type FlowStats, type FlowStatsRequest, type MultipartReplyBody, type MultipartRequestBody, type PortStats, type TableFeatures } from './multipart.ts';
import { errorName, OFPET } from './error-names.ts';
import type { PortDesc } from './port.ts';

/**
 * One switch's OpenFlow 1.3 connection, controller side.
 *
 * Stages: `hello` (both sides send HELLO; the switch's version bitmap, or
 * its header version, must offer 1.3, else it gets OFPET_HELLO_FAILED and
 * the connection closes) → `features` (FEATURES_REQUEST; the reply names
 * the datapath) → `ready`. The whole handshake has a deadline.
 *
 * Once ready: ECHO_REQUESTs from the switch are answered; when the switch
 * has been silent for `echoIntervalMs` we send one, and a switch silent for
 * `livenessTimeoutMs` is closed. `request` pairs a reply with its xid (a
 * multipart reply in several parts is joined; an OFPT_ERROR with that xid
 * rejects it); `apply` sends a batch and a BARRIER_REQUEST behind it and
 * resolves when the barrier reply arrives — an OpenFlow switch finishes
 * messages in order, so the batch is then in place (an error for any of its
 * messages rejects it). Everything else the switch sends (packet-in,
 * port-status, flow-removed, errors nobody waits for) is emitted as
 * `message`. Bytes that do not decode close the connection with the
 * decoder's error, after an OFPT_ERROR to the switch naming it.
 */

export interface SwitchConnectionInit {
  /** Deadline for HELLO + FEATURES (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Silence after which we send an ECHO_REQUEST (default 5 s). */
  echoIntervalMs?: number;
  /** Silence after which the switch is declared dead (default 15 s). */
  livenessTimeoutMs?: number;
  /** Largest message accepted from the switch (default 65535). */
  maxMessageBytes?: number;
}

/** HELLO + FEATURES (and, on TLS, the TLS handshake before them) must finish within this by default. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export type SwitchConnectionEvents = {
  ready: [];
  message: [OfMessage];
  /** Once; `err` is undefined for a close we asked for without a reason. */
  close: [SwitchConnectionError | undefined];
};

type Pending = { what: string; resolve: (m: OfMessage) => void; reject: (e: Error) => void; parts?: MultipartReplyBody[] };

export class SwitchConnection extends EventEmitter<SwitchConnectionEvents> {
  readonly remote: string;
  #state: 'hello' | 'features' | 'ready' | 'closed' = 'hello';
  #datapathId: bigint | undefined;
  #auxiliaryId = 0;
  #nTables = 0;
  #xid = 0x100;
  readonly #socket: Socket;
  readonly #decoder: OpenFlowDecoder;
  readonly #pending = new Map<number, Pending>();
  readonly #echoIntervalMs: number;
  readonly #livenessTimeoutMs: number;
  #lastHeard = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #echoOutstanding = false;
  /** Echo traffic both ways, for liveness diagnostics. */
  readonly echoes = { sent: 0, repliesReceived: 0, answered: 0 };

  constructor(socket: Socket, init: SwitchConnectionInit = {}) {
    super();
    this.#socket = socket;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.#echoIntervalMs = init.echoIntervalMs ?? 5_000;
    this.#livenessTimeoutMs = init.livenessTimeoutMs ?? 15_000;
    this.#decoder = new OpenFlowDecoder(
      { onMessage: (m) => this.#onMessage(m), onDecodeError: (e) => this.#onDecodeError(e) },
      init.maxMessageBytes === undefined ? {} : { maxMessageBytes: init.maxMessageBytes },
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#lastHeard = performance.now();
      this.#echoOutstanding = false;
      this.#decoder.push(chunk);
    });
    socket.on('error', (err) => this.close(new SwitchConnectionError('VNET_ERR_OF_SOCKET', `switch ${this.remote}: ${err.message}`, { cause: err })));
    socket.on('close', () => this.close(new SwitchConnectionError('VNET_ERR_OF_DISCONNECTED', `switch ${this.remote} closed the connection`)));
    const deadline = init.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#timer = setTimeout(() => {
      this.close(new SwitchConnectionError('VNET_ERR_OF_HANDSHAKE_TIMEOUT', `switch ${this.remote} did not finish the OpenFlow handshake (${this.#state}) within ${deadline} ms`));
    }, deadline);
    this.#send({ type: 'hello', xid: this.#nextXid(), versions: [OFP_VERSION] });
  }

  get state(): 'hello' | 'features' | 'ready' | 'closed' {
    return this.#state;
  }

  /** The switch's datapath id (from FEATURES_REPLY); throws before the handshake is done. */
  get datapathId(): bigint {
    if (this.#datapathId === undefined) throw new SwitchConnectionError('VNET_ERR_OF_NOT_READY', `switch ${this.remote} has not finished its handshake`);
    return this.#datapathId;
  }

  /** The datapath id once the handshake named it, else undefined. */
  get knownDatapathId(): bigint | undefined {
    return this.#datapathId;
  }

  get auxiliaryId(): number {
    return this.#auxiliaryId;
  }

  get nTables(): number {
    return this.#nTables;
  }

  /** Send one message and wait for the reply with its xid (multipart replies joined). */
  request<T extends OfMessage['type']>(msg: OfMessage, replyType: T): Promise<OfMessageOf<T>> {
    return new Promise((resolve, reject) => {
      if (this.#state !== 'ready') return reject(new SwitchConnectionError('VNET_ERR_OF_NOT_READY', `switch ${this.remote} is ${this.#state}, not ready for ${msg.type}`));
      const xid = this.#nextXid();
      const what = msg.type === 'multipart-request' ? `${msg.type} ${msg.body.kind}` : msg.type;
      this.#pending.set(xid, {
        what,
        reject,
        resolve: (m) => {
          if (m.type !== replyType) reject(new SwitchConnectionError('VNET_ERR_OF_UNEXPECTED_REPLY', `switch ${this.remote} answered ${what} with ${m.type}`));
          else resolve(m as OfMessageOf<T>);
        },
      });
      this.#send({ ...msg, xid });
    });
  }

  /**
   * Send `messages` (flow mods, group mods, packet-outs) then a barrier;
   * resolves once the switch has processed all of them. An OFPT_ERROR for
   * any of them rejects with a SwitchRejectedError naming the first.
   */
  apply(messages: readonly OfMessage[]): Promise<void> {
    if (this.#state !== 'ready') return Promise.reject(new SwitchConnectionError('VNET_ERR_OF_NOT_READY', `switch ${this.remote} is ${this.#state}, not ready for a batch`));
    let failed: SwitchRejectedError | undefined;
    const xids: number[] = [];
    for (const m of messages) {
      const xid = this.#nextXid();
      xids.push(xid);
      this.#pending.set(xid, {
        what: m.type,
        resolve: () => undefined,
        reject: (e) => {
          failed ??= e as SwitchRejectedError;
        },
      });
      this.#send({ ...m, xid });
    }
    return this.request({ type: 'barrier-request', xid: 0 }, 'barrier-reply').then(
      () => {
        for (const x of xids) this.#pending.delete(x);
        if (failed !== undefined) throw failed;
      },
      (err: unknown) => {
        for (const x of xids) this.#pending.delete(x);
        throw err;
      },
    );
  }

  async barrier(): Promise<void> {
    await this.request({ type: 'barrier-request', xid: 0 }, 'barrier-reply');
  }

  async setRole(role: ControllerRole, generationId: bigint): Promise<{ role: ControllerRole; generationId: bigint }> {
    const r = await this.request({ type: 'role-request', xid: 0, role, generationId }, 'role-reply');
    return { role: r.role, generationId: r.generationId };
  }

  async flowStats(req: Partial<FlowStatsRequest> = {}): Promise<FlowStats[]> {
    const body = await this.#multipart({ kind: 'flow', tableId: 0xff, outPort: 0xffffffff, outGroup: 0xffffffff, cookie: 0n, cookieMask: 0n, match: {}, ...req });
    return body.kind === 'flow' ? body.flows : [];
  }

  async portDescriptions(): Promise<PortDesc[]> {
    const body = await this.#multipart({ kind: 'port-desc' });
    return body.kind === 'port-desc' ? body.ports : [];
  }

  async portStats(portNo = 0xffffffff): Promise<PortStats[]> {
    const body = await this.#multipart({ kind: 'port-stats', portNo });
    return body.kind === 'port-stats' ? body.ports : [];
  }

  async tableFeatures(): Promise<TableFeatures[]> {
    const body = await this.#multipart({ kind: 'table-features', tables: [] });
    return body.kind === 'table-features' ? body.tables : [];
  }

  /** Send without waiting for anything (packet-out, set-config); an error for it comes as a `message`. Throws before the handshake is done or after close. */
  send(msg: OfMessage): void {
    if (this.#state !== 'ready') throw new SwitchConnectionError('VNET_ERR_OF_NOT_READY', `switch ${this.remote} is ${this.#state}, not ready for ${msg.type}`);
    this.#send({ ...msg, xid: this.#nextXid() });
  }

  /** Close the connection; pending requests are rejected with `err` (or a plain "closed"). */
  close(err?: SwitchConnectionError): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#decoder.stop();
    const why = err ?? new SwitchConnectionError('VNET_ERR_OF_CLOSED', `connection to switch ${this.remote} closed`);
    for (const p of this.#pending.values()) p.reject(why);
    this.#pending.clear();
    this.#socket.end();
    this.#socket.destroySoon();
    this.emit('close', err);
  }

  async #multipart(body: MultipartRequestBody): Promise<MultipartReplyBody> {
    const reply = await this.request({ type: 'multipart-request', xid: 0, flags: 0, body }, 'multipart-reply');
    return reply.body;
  }

  #nextXid(): number {
    this.#xid = this.#xid >= 0xffffffff ? 0x100 : this.#xid + 1;
    return this.#xid;
  }

  #send(msg: OfMessage): void {
    if (this.#state !== 'closed') this.#socket.write(encodeMessage(msg));
  }

  #onMessage(m: OfMessage): void {
    if (m.type === 'echo-request') {
      this.echoes.answered++;
      return this.#send({ type: 'echo-reply', xid: m.xid, data: m.data });
    }
    if (this.#state === 'hello') return this.#onHello(m);
    if (this.#state === 'features') {
      if (m.type !== 'features-reply') return;
      this.#datapathId = m.datapathId;
      this.#auxiliaryId = m.auxiliaryId;
      this.#nTables = m.nTables;
      this.#state = 'ready';
      clearTimeout(this.#timer);
      this.#timer = setInterval(() => this.#liveness(), Math.max(10, Math.min(this.#echoIntervalMs, this.#livenessTimeoutMs) / 2));
      this.emit('ready');
      return;
    }
    if (m.type === 'echo-reply') {
      this.echoes.repliesReceived++;
      return;
    }
    const pending = this.#pending.get(m.xid);
    if (pending === undefined) return void this.emit('message', m);
    if (m.type === 'error') {
      this.#pending.delete(m.xid);
      return pending.reject(new SwitchRejectedError(pending.what, m.errorType, m.errorCode, errorName(m.errorType, m.errorCode)));
    }
    if (m.type === 'multipart-reply' && (m.flags & OFPMPF_MORE) !== 0) {
      (pending.parts ??= []).push(m.body);
      return;
    }
    this.#pending.delete(m.xid);
    if (m.type === 'multipart-reply' && pending.parts !== undefined) pending.resolve({ ...m, body: joinParts([...pending.parts, m.body]) });
    else pending.resolve(m);
  }

  #onHello(m: OfMessage): void {
    if (m.type !== 'hello') {
      return this.close(new SwitchConnectionError('VNET_ERR_OF_HANDSHAKE', `switch ${this.remote} sent ${m.type} before HELLO`));
    }
    if (!m.versions.includes(OFP_VERSION)) {
      const err = new VersionNegotiationError(`offers ${m.versions.map((v) => `0x${v.toString(16).padStart(2, '0')}`).join(', ')}`);
      this.#send({ type: 'error', xid: m.xid, errorType: OFPET.helloFailed, errorCode: 0, data: Buffer.from(err.message) });
      return this.close(new SwitchConnectionError(err.code, `switch ${this.remote}: ${err.message}`, { cause: err }));
    }
    this.#state = 'features';
    this.#send({ type: 'features-request', xid: this.#nextXid() });
  }

  #onDecodeError(e: OpenFlowDecodeError): void {
    // OFPET_BAD_REQUEST / OFPBRC_BAD_LEN, with the reason, before hanging up.
    this.#send({ type: 'error', xid: 0, errorType: OFPET.badRequest, errorCode: 6, data: Buffer.from(e.message.slice(0, 256)) });
    this.close(new SwitchConnectionError(e.code, `switch ${this.remote} sent bytes that are not OpenFlow 1.3: ${e.message}`, { cause: e }));
  }

  #liveness(): void {
    const silent = performance.now() - this.#lastHeard;
    if (silent >= this.#livenessTimeoutMs) {
      return this.close(new SwitchConnectionError('VNET_ERR_OF_LIVENESS', `switch ${this.remote} silent for ${Math.round(silent)} ms (liveness timeout ${this.#livenessTimeoutMs} ms)`));
    }
    if (silent >= this.#echoIntervalMs && !this.#echoOutstanding) {
      this.#echoOutstanding = true;
      this.echoes.sent++;
      this.#send({ type: 'echo-request', xid: this.#nextXid(), data: Buffer.alloc(0) });
    }
  }
}

/** The parts of a multipart reply as one body (lists concatenated). */
function joinParts(parts: MultipartReplyBody[]): MultipartReplyBody {
  const last = parts[parts.length - 1]!;
  switch (last.kind) {
    case 'flow':
      return { kind: 'flow', flows: parts.flatMap((p) => (p.kind === 'flow' ? p.flows : [])) };
    case 'port-stats':
      return { kind: 'port-stats', ports: parts.flatMap((p) => (p.kind === 'port-stats' ? p.ports : [])) };
    case 'port-desc':
      return { kind: 'port-desc', ports: parts.flatMap((p) => (p.kind === 'port-desc' ? p.ports : [])) };
    case 'table-features':
      return { kind: 'table-features', tables: parts.flatMap((p) => (p.kind === 'table-features' ? p.tables : [])) };
    case 'raw':
      return { ...last, body: Buffer.concat(parts.map((p) => (p.kind === 'raw' ? p.body : Buffer.alloc(0)))) };
    default:
      return last;
  }
}
