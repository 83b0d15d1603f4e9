import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { realClock, type Clock, type TimerHandle } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import {
  AbortedError,
  HandshakeError,
  LinkLostError,
  LinkTimeoutError,
  PeerGoodbyeError,
  ProtocolVersionError,
  ProtocolViolationError,
  type FrameDecodeError,
} from './errors.ts';
import type { Frame } from '../common/frame.ts';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import type { LinkCounters } from '../control/daemon-control.ts';
import { helloRefusal } from './link-handshake.ts';
import { Liveness } from './link-liveness.ts';
import { MAX_FRAME_BYTES, MIN_FRAME_BYTES, VIRTIO_NET_HDR_BYTES } from '../common/frame.ts';
import {
  FrameDecoder,
  FrameEncoder,
  PROTOCOL_VERSION,
  encodeGoodbye,
  encodeHello,
  encodeKeepalive,
  type ControlMessage,
  type DecoderSink,
  type GoodbyeCode,
  type LinkKind,
  type LinkRole,
} from './frame-codec.ts';

/**
 * A link: one connected byte stream (TCP socket, TLS socket, in-memory
 * duplex) to a peer daemon, after the hello handshake. Stages:
 *
 *   handshake  the dialer sends its hello at once; the listener answers with
 *              its own only after checking the dialer's (version, role, kind,
 *              expected peer, TLS certificate identity). A refusal is a
 *              goodbye naming the reason, then the socket is ended.
 *   receive    socket chunk → FrameDecoder → one Frame[] batch per chunk →
 *              the onFrames handler (held, with the socket paused, until a
 *              handler is registered).
 *   send       send(frame): drop and count if the socket's backlog is over the
 *              high-water mark; else cork on the first frame of a tick, append
 *              the header (and a small frame's payload) to the encoder's slab
 *              run, write large payloads by reference after the run, and on the
 *              next tick write the rest of the run and uncork: one writev per
 *              burst, one buffer for a burst of small frames.
 *   liveness   (link-liveness.ts) a keepalive when we sent nothing for keepaliveMs
 *              and ends the link with LinkTimeoutError when the peer sent
 *              nothing for deadMs.
 *   close      exactly once: local close (goodbye, end), peer goodbye, decode
 *              error (warn once, count, goodbye), timeout, socket error or
 *              end. onClose gets the typed error (undefined for a local close).
 *
 * Payload buffers passed to send() are handed over: they sit in the socket's
 * queue until written, so the caller must not modify them afterwards.
 */

/** A link's own counters: the shared list (`LinkCounters`) plus its keepalives. */
export interface LinkStats extends LinkCounters {
  keepalivesSent: number;
  keepalivesReceived: number;
}

export type FramesHandler = (frames: readonly Frame[]) => void;
export type CloseHandler = (err: Error | undefined) => void;

export interface Link {
  /** Unique in this process: "<kind>:<peer>#<n>". */
  readonly id: string;
  readonly peerHost: string;
  readonly kind: LinkKind;
  /** Our side's role: we dialled ('dialer') or accepted ('listener'). */
  readonly role: LinkRole;
  readonly stats: LinkStats;
  /** True once the link has ended (onClose has been called). */
  readonly closed: boolean;
  /** Bytes queued on the socket and not yet written: a sender can pace itself on this before frames start to drop. */
  readonly backlogBytes: number;
  /** Send one frame. Never throws; a frame that cannot be sent is counted in txDropped. */
  send(frame: Frame): void;
  /** Where received frames go, in batches; frames that arrived before this call are delivered first. */
  onFrames(handler: FramesHandler): void;
  /** Called exactly once when the link ends (at once if it already has). */
  onClose(handler: CloseHandler): void;
  /** Send a goodbye and end the socket; resolves when the socket has closed. */
  close(reason?: string): Promise<void>;
}

export interface OpenLinkInit {
  socket: Duplex;
  localHost: string;
  /** 'dialer' (default) sends its hello first; 'listener' answers the dialer's hello. */
  role?: LinkRole;
  /** Required for a dialer. A listener adopts the dialer's kind, refusing it if this is set and differs. */
  kind?: LinkKind;
  expectedPeer?: string;
  logger: Logger;
  clock?: Clock;
  keepaliveMs?: number;
  deadMs?: number;
  maxMessageBytes?: number;
  handshakeTimeoutMs?: number;
  /** Drop frames while the socket's write backlog is above this many bytes (default 8 MiB). */
  highWaterBytes?: number;
  signal?: AbortSignal;
}

export const DEFAULT_KEEPALIVE_MS = 1000;
export const DEFAULT_DEAD_MS = 5000;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
export const DEFAULT_HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** How long a closing socket may take to finish before it is destroyed. */
const CLOSE_GRACE_MS = 2000;
/** Batches held while no onFrames handler is registered; more are dropped (the socket is paused anyway). */
const MAX_HELD_BATCHES = 64;

/** Connect the handshake on `socket` and return the open link. Rejects with HandshakeError, ProtocolVersionError or AbortedError. */
export function openLink(init: OpenLinkInit): Promise<Link> {
  return new Promise<Link>((resolve, reject) => {
    const link = new SocketLink(init, resolve, reject);
    link.start();
  });
}

const PHASE_HANDSHAKE = 0;
const PHASE_OPEN = 1;
const PHASE_CLOSED = 2;

let nextLinkSeq = 1;

class SocketLink implements Link {
  id = '';
  peerHost = '';
  kind: LinkKind;
  readonly role: LinkRole;
  readonly stats: LinkStats = {
    txFrames: 0,
    txBytes: 0,
    rxFrames: 0,
    rxBytes: 0,
    txDropped: 0,
    decodeErrors: 0,
    keepalivesSent: 0,
    keepalivesReceived: 0,
  };

  readonly #init: OpenLinkInit;
  readonly #socket: Duplex;
  readonly #clock: Clock;
  #log: Logger;
  readonly #decoder: FrameDecoder;
  readonly #encoder = new FrameEncoder();
  readonly #highWater: number;
  #phase = PHASE_HANDSHAKE;
  #resolve: ((link: Link) => void) | undefined;
  #reject: ((err: Error) => void) | undefined;
  #handshakeTimer: TimerHandle | undefined;
  #liveness: Liveness | undefined;
  #graceTimer: TimerHandle | undefined;
  #corked = false;
  /** Activity flags, set on the hot path; the Liveness takes them over once the link is open. */
  #activity = { rxSeen: false, txSeen: false };
  #framesHandler: FramesHandler | undefined;
  #held: Frame[][] = [];
  #closeHandler: CloseHandler | undefined;
  #closeError: Error | undefined;
  #closeNotified = false;
  readonly #socketClosed: Promise<void>;
  #markSocketClosed!: () => void;

  constructor(init: OpenLinkInit, resolve: (link: Link) => void, reject: (err: Error) => void) {
    this.#init = init;
    this.#socket = init.socket;
    this.#clock = init.clock ?? realClock;
    this.#log = componentLogger(init.logger, 'link', { local: init.localHost });
    this.role = init.role ?? 'dialer';
    this.kind = init.kind ?? 'backbone';
    this.#highWater = init.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
    const sink: DecoderSink = {
      onFrames: (frames) => this.#receiveFrames(frames),
      onControl: (msg) => this.#receiveControl(msg),
      onDecodeError: (err) => this.#receiveDecodeError(err),
    };
    this.#decoder = new FrameDecoder(sink, init.maxMessageBytes === undefined ? {} : { maxMessageBytes: init.maxMessageBytes });
    this.#resolve = resolve;
    this.#reject = reject;
    this.#socketClosed = new Promise<void>((r) => {
      this.#markSocketClosed = r;
    });
  }

  get closed(): boolean {
    return this.#phase === PHASE_CLOSED;
  }

  get backlogBytes(): number {
    return this.#socket.writableLength;
  }

  start(): void {
    const init = this.#init;
    const socket = this.#socket;
    socket.on('data', this.#onData);
    socket.on('error', this.#onSocketError);
    socket.on('end', this.#onSocketEnd);
    socket.on('close', this.#onSocketClose);
    if (socket instanceof Socket) socket.setNoDelay(true);
    if (!HOST_ID_PATTERN.test(init.localHost)) {
      this.#failHandshake(new HandshakeError(`local host id ${JSON.stringify(init.localHost)} is not a valid host id`), undefined);
      return;
    }
    if (this.role === 'dialer' && init.kind === undefined) {
      this.#failHandshake(new HandshakeError('a dialing link needs a kind (backbone or fast-path)'), undefined);
      return;
    }
    if (socket.destroyed || !socket.writable) {
      this.#failHandshake(new HandshakeError('socket is not connected'), undefined);
      return;
    }
    if (init.signal?.aborted === true) {
      this.#failHandshake(new AbortedError('link handshake', { cause: init.signal.reason }), undefined);
      return;
    }
    init.signal?.addEventListener('abort', this.#onAbort, { once: true });
    const timeout = init.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#handshakeTimer = this.#clock.setTimeout(() => {
      this.#failHandshake(new HandshakeError(`no hello from the peer within ${timeout} ms`), ['timeout', 'no hello in time']);
    }, timeout);
    if (this.role === 'dialer') socket.write(encodeHello({ kind: this.kind, role: 'dialer', hostId: init.localHost }));
  }

  // ------------------------------------------------------------ sending

  send(frame: Frame): void {
    const socket = this.#socket;
    const data = frame.data;
    if (
      this.#phase !== PHASE_OPEN ||
      socket.writableLength > this.#highWater ||
      data.length < MIN_FRAME_BYTES ||
      data.length > MAX_FRAME_BYTES ||
      (frame.offload !== undefined && frame.offload.length !== VIRTIO_NET_HDR_BYTES)
    ) {
      this.stats.txDropped++;
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(this.#uncork);
    }
    if (!this.#encoder.append(frame)) {
      this.#flushRun();
      socket.write(data);
    }
    this.stats.txFrames++;
    this.stats.txBytes += data.length;
    this.#activity.txSeen = true;
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#flushRun();
    this.#socket.uncork();
  };

  /** Write what the encoder has gathered (headers, small frames) since the last flush. */
  #flushRun(): void {
    for (let run = this.#encoder.takeRun(); run !== undefined; run = this.#encoder.takeRun()) this.#socket.write(run);
  }

  // ------------------------------------------------------------ receiving

  readonly #onData = (chunk: Buffer): void => {
    this.#activity.rxSeen = true;
    this.#decoder.push(chunk);
  };

  onFrames(handler: FramesHandler): void {
    this.#framesHandler = handler;
    if (this.#held.length > 0) queueMicrotask(this.#releaseHeld);
    else if (this.#phase === PHASE_OPEN) this.#socket.resume();
  }

  #receiveFrames(frames: Frame[]): void {
    if (this.#phase !== PHASE_OPEN) {
      if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('peer sent frames before its hello'), ['protocol', 'frames before hello']);
      return;
    }
    const stats = this.stats;
    stats.rxFrames += frames.length;
    for (let i = 0; i < frames.length; i++) stats.rxBytes += frames[i]!.data.length;
    const handler = this.#framesHandler;
    if (handler === undefined) {
      this.#socket.pause();
      if (this.#held.length < MAX_HELD_BATCHES) this.#held.push(frames);
      return;
    }
    this.#deliver(handler, frames);
  }

  #deliver(handler: FramesHandler, frames: Frame[]): void {
    try {
      handler(frames);
    } catch (err) {
      this.#log.error({ err }, 'frame handler threw; closing the link');
      this.#finish(err instanceof Error ? err : new Error(String(err)), ['normal', 'local error']);
    }
  }

  readonly #releaseHeld = (): void => {
    const handler = this.#framesHandler;
    if (handler === undefined) return;
    const held = this.#held;
    this.#held = [];
    for (const batch of held) {
      if (this.#phase !== PHASE_OPEN) return;
      this.#deliver(handler, batch);
    }
    if (this.#phase === PHASE_OPEN) this.#socket.resume();
  };

  #receiveControl(msg: ControlMessage): void {
    if (this.#phase === PHASE_HANDSHAKE) {
      this.#handshakeMessage(msg);
      return;
    }
    if (this.#phase !== PHASE_OPEN) return;
    switch (msg.type) {
      case 'keepalive':
        this.stats.keepalivesReceived++;
        return;
      case 'goodbye':
        this.#finish(new PeerGoodbyeError(this.peerHost, msg.code, msg.reason), undefined);
        return;
      default:
        this.#protocolError(`unexpected ${msg.type} on an open link`);
    }
  }

  #receiveDecodeError(err: FrameDecodeError): void {
    this.stats.decodeErrors++;
    if (this.#phase === PHASE_HANDSHAKE) {
      this.#failHandshake(new HandshakeError(`peer sent bad bytes during the handshake: ${err.message}`, { cause: err }), ['protocol', err.message]);
      return;
    }
    this.#log.warn({ code: err.code, err: err.message }, 'malformed bytes from peer; closing the link');
    this.#finish(err, ['protocol', err.message]);
  }

  #protocolError(message: string): void {
    this.stats.decodeErrors++;
    const err = new ProtocolViolationError(message);
    this.#log.warn({ code: err.code, err: message }, 'protocol violation by peer; closing the link');
    this.#finish(err, ['protocol', message]);
  }

  // ------------------------------------------------------------ handshake

  #handshakeMessage(msg: ControlMessage): void {
    const init = this.#init;
    if (msg.type === 'foreign-hello') {
      this.#failHandshake(new ProtocolVersionError(msg.version, PROTOCOL_VERSION), ['version', `this host speaks protocol version ${PROTOCOL_VERSION}, not ${msg.version}`]);
      return;
    }
    if (msg.type === 'goodbye') {
      const bye = new PeerGoodbyeError(init.expectedPeer ?? 'peer', msg.code, msg.reason);
      this.#failHandshake(new HandshakeError(`peer refused the link (${msg.code}): ${msg.reason}`, { cause: bye }), undefined);
      return;
    }
    if (msg.type !== 'hello') {
      this.#failHandshake(new HandshakeError(`expected a hello, got a ${msg.type}`), ['protocol', `expected a hello, got a ${msg.type}`]);
      return;
    }
    const refusal = helloRefusal(msg, {
      role: this.role,
      kind: init.kind,
      expectedPeer: init.expectedPeer,
      localHost: init.localHost,
      socket: this.#socket,
    });
    if (refusal !== undefined) {
      this.#failHandshake(new HandshakeError(refusal), ['refused', refusal]);
      return;
    }
    this.kind = msg.kind;
    this.peerHost = msg.hostId;
    this.id = `${msg.kind}:${msg.hostId}#${nextLinkSeq++}`;
    this.#log = componentLogger(init.logger, 'link', { local: init.localHost, peer: msg.hostId, link: this.id });
    this.#endHandshake();
    this.#phase = PHASE_OPEN;
    const liveness = new Liveness(this.#clock, this.#init.keepaliveMs ?? DEFAULT_KEEPALIVE_MS, this.#init.deadMs ?? DEFAULT_DEAD_MS, {
      keepalive: this.#sendKeepalive,
      dead: this.#peerDead,
    });
    this.#liveness = liveness;
    this.#activity = liveness;
    this.#log.info({ kind: this.kind, role: this.role }, 'link up');
    const resolve = this.#resolve!;
    this.#resolve = undefined;
    this.#reject = undefined;
    // State is final before this write: a peer that answers synchronously (in-memory) may re-enter and even close us.
    if (this.role === 'listener') this.#socket.write(encodeHello({ kind: msg.kind, role: 'listener', hostId: init.localHost }));
    resolve(this);
  }

  #endHandshake(): void {
    this.#handshakeTimer?.cancel();
    this.#handshakeTimer = undefined;
    this.#init.signal?.removeEventListener('abort', this.#onAbort);
  }

  readonly #onAbort = (): void => {
    this.#failHandshake(new AbortedError('link handshake', { cause: this.#init.signal?.reason }), undefined);
  };

  #failHandshake(err: Error, goodbye: [GoodbyeCode, string] | undefined): void {
    if (this.#phase !== PHASE_HANDSHAKE) return;
    this.#endHandshake();
    this.#log.info({ code: (err as { code?: string }).code, err: err.message }, 'link handshake failed');
    const reject = this.#reject;
    this.#resolve = undefined;
    this.#reject = undefined;
    this.#closeNotified = true; // nobody holds this link yet: there is no onClose to call
    this.#terminate(err, goodbye);
    reject?.(err);
  }

  // ------------------------------------------------------------ liveness

  readonly #sendKeepalive = (): void => {
    if (this.#phase !== PHASE_OPEN) return;
    this.stats.keepalivesSent++;
    this.#flushRun();
    this.#socket.write(encodeKeepalive());
  };

  readonly #peerDead = (silentMs: number): void => {
    this.#log.warn({ silentMs: Math.round(silentMs) }, 'peer silent; closing the link');
    this.#finish(new LinkTimeoutError(this.peerHost, silentMs), ['timeout', `nothing heard for ${Math.round(silentMs)} ms`]);
  };

  // ------------------------------------------------------------ closing

  onClose(handler: CloseHandler): void {
    this.#closeHandler = handler;
    if (this.#phase === PHASE_CLOSED && !this.#closeNotified) queueMicrotask(() => this.#notifyClose());
  }

  close(reason = 'closed by the local host'): Promise<void> {
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new AbortedError('link handshake'), ['normal', reason]);
    else this.#finish(undefined, ['normal', reason]);
    return this.#socketClosed;
  }

  readonly #onSocketError = (err: Error): void => {
    const lost = new LinkLostError(`socket error: ${err.message}`, { cause: err });
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError(`connection failed during the handshake: ${err.message}`, { cause: err }), undefined);
    else this.#finish(lost, undefined);
  };

  readonly #onSocketEnd = (): void => {
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('peer closed the connection during the handshake'), undefined);
    else this.#finish(new LinkLostError(`${this.peerHost} closed the connection without a goodbye`), undefined);
  };

  readonly #onSocketClose = (): void => {
    this.#graceTimer?.cancel();
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('connection closed during the handshake'), undefined);
    else this.#finish(new LinkLostError(`connection to ${this.peerHost} closed`), undefined);
    this.#markSocketClosed();
  };

  /** End the open link once, for `err` (undefined: closed locally). */
  #finish(err: Error | undefined, goodbye: [GoodbyeCode, string] | undefined): void {
    if (this.#phase !== PHASE_OPEN) return;
    this.#log.info({ code: (err as { code?: string } | undefined)?.code, err: err?.message }, 'link down');
    this.#terminate(err, goodbye);
    if (this.#closeHandler !== undefined) this.#notifyClose();
  }

  #notifyClose(): void {
    if (this.#closeNotified) return;
    this.#closeNotified = true;
    const handler = this.#closeHandler;
    try {
      handler?.(this.#closeError);
    } catch (e) {
      this.#log.error({ err: e }, 'close handler threw');
    }
  }

  #terminate(err: Error | undefined, goodbye: [GoodbyeCode, string] | undefined): void {
    this.#phase = PHASE_CLOSED;
    this.#closeError = err;
    this.#liveness?.stop();
    this.#liveness = undefined;
    this.#decoder.stop();
    this.#held = [];
    const socket = this.#socket;
    if (!socket.destroyed) this.#flushRun();
    if (this.#corked) {
      this.#corked = false;
      socket.uncork();
    }
    if (socket.destroyed) {
      this.#markSocketClosed();
      return;
    }
    if (goodbye !== undefined && socket.writable) {
      socket.write(encodeGoodbye(goodbye[0], goodbye[1]));
      socket.end();
      socket.resume(); // drain until the peer closes its side
      this.#graceTimer = this.#clock.setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    } else {
      socket.destroy();
    }
  }
}
