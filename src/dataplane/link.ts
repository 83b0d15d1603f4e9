import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { realClock, type Clock, type TimerHandle } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { AbortedError, HandshakeError, LinkLostError, RecordLayerError, LinkTimeoutError, PeerGoodbyeError, ProtocolViolationError, type FrameDecodeError } from './errors.ts';
import type { Frame } from '../common/frame.ts';
import type { LinkCounters } from '../control/daemon-control.ts';
import { armHandshake, handshakeStartError, type Goodbye } from './link-handshake.ts';
import { HandshakeSession, linkAuthMethod } from './handshake-session.ts';
import type { LinkAuthenticator } from './link-auth.ts';
import type { HostMembership } from './link-membership.ts';
import { LinkInbox, type FramesHandler } from './link-inbox.ts';
import { Liveness } from './link-liveness.ts';
import { DEFAULT_HIGH_WATER_BYTES, LinkWriter } from './link-writer.ts';
import type { NativeForwarder } from './native-forwarder.ts';
import type { NativeEndpointId } from './native-flows.ts';
import { NativeLinkBinding } from './link-native.ts';
import { ECHO_TOKEN_BYTES, FrameDecoder, encodeEcho, encodeGoodbye, encodeKeepalive, type ControlMessage, type DecoderSink, type LinkKind, type LinkRole } from './frame-codec.ts';

/**
 * A link: one connected byte stream (TCP socket, TLS socket, in-memory
 * duplex) to a peer daemon, after the hello handshake. This file is the
 * link's state machine — handshake → open → closed — and the glue of its
 * stages, each in its own file:
 *
 *   handshake  (handshake-session.ts, link-handshake.ts, link-auth.ts) hellos
 *              exchanged and judged, and on authenticated TCP links the
 *              proofs of identity, under a timeout and the caller's
 *              AbortSignal. A refusal is a goodbye naming the reason, then the
 *              socket is ended.
 *   receive    socket chunk → FrameDecoder → one Frame[] batch per chunk →
 *              the inbox (link-inbox.ts) → the onFrames handler (batches held,
 *              with the socket paused, until a handler is registered).
 *   send       (link-writer.ts) send(frame) gathers a burst of frames into one
 *              corked writev per tick; drops are counted, never thrown.
 *   liveness   (link-liveness.ts) a keepalive when we sent nothing for keepaliveMs
 *              and ends the link with LinkTimeoutError when the peer sent
 *              nothing for deadMs.
 *   close      exactly once: local close (goodbye, end), peer goodbye, decode
 *              error (warn once, count, goodbye), timeout, socket error or
 *              end. onClose gets the typed error (undefined for a local close).
 *   drain      a local close of an open link stops sending at once (the
 *              frames gathered so far, then the goodbye, then end) but keeps
 *              receiving until the peer has answered (its goodbye, end or
 *              close) or CLOSE_GRACE_MS pass: the frames the peer sent before
 *              it saw our goodbye are delivered, not dropped. onClose is
 *              called when the drain is over. A peer's goodbye is answered
 *              with an end, not a reset, so our last frames reach it.
 *
 *   native     (plain TCP, or TLS switched to native records) once open, `nativeEndpoint` hands the socket to
 *              the native forwarder (native-forwarder.ts): Node stops reading
 *              it, the forwarder reads it and hands up, in order, every
 *              message it does not forward itself (they go to the decoder as
 *              before), and every write goes through it (link-writer.ts).
 *              Closing, a peer's end or a socket error takes the socket back
 *              first: backlog written, queued bytes decoded, Node reading.
 *
 * Payload buffers passed to send() are handed over: they sit in the socket's
 * queue until written, so the caller must not modify them afterwards.
 */

/** A link's own counters: the shared list (`LinkCounters`) plus its keepalives and round-trip probes. */
export interface LinkStats extends LinkCounters {
  keepalivesSent: number;
  keepalivesReceived: number;
  /** Echo requests sent, and the replies that matched the latest one. */
  echoesSent: number;
  echoesAnswered: number;
  /** The last measured round trip (echo request → reply), ms; undefined until one was answered. */
  rttMs: number | undefined;
  /** The round trip smoothed as TCP does (srtt ← 7/8 srtt + 1/8 sample), ms. */
  srttMs: number | undefined;
}

export type { FramesHandler } from './link-inbox.ts';
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
  /**
   * The link's endpoint in the native forwarder: 'later' while it has none
   * (the first call asks for one, attached once this turn's frames are
   * handled), 'never' for a link that cannot be served natively (TLS,
   * in-memory, closing). Optional: links without it are never served.
   */
  nativeEndpoint?(fwd: NativeForwarder): NativeEndpointId;
  /** Where received frames go, in batches; frames that arrived before this call are delivered first. */
  onFrames(handler: FramesHandler): void;
  /** Called exactly once when the link ends (at once if it already has). */
  onClose(handler: CloseHandler): void;
  /**
   * Stop sending, send a goodbye and end the socket, still delivering what the
   * peer sent before it saw the goodbye (onClose once that is over); resolves
   * when the socket has closed.
   */
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
  /** Round-trip probe interval (DEFAULT_PROBE_MS). */
  probeMs?: number;
  maxMessageBytes?: number;
  handshakeTimeoutMs?: number;
  /** Proves our host id and checks the peer's on plain TCP links (link-auth.ts); without one, TCP links are refused off loopback. */
  authenticator?: LinkAuthenticator | undefined;
  /** Accept unauthenticated TCP links off loopback (the operator said so). */
  allowUnauthenticated?: boolean;
  /** The deployment's hosts: a peer outside it is refused. */
  membership?: HostMembership | undefined;
  /** Drop frames while the socket's write backlog is above this many bytes (default 8 MiB). */
  highWaterBytes?: number;
  signal?: AbortSignal;
}

export const DEFAULT_KEEPALIVE_MS = 1000;
export const DEFAULT_DEAD_MS = 5000;
/** How often a link measures its round trip with an echo request, traffic or not. */
export const DEFAULT_PROBE_MS = 2000;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
export { DEFAULT_HIGH_WATER_BYTES } from './link-writer.ts';
/** How long a closing socket may take to finish before it is destroyed. */
const CLOSE_GRACE_MS = 2000;

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
/** Closed locally: nothing more is sent, what the peer had in flight is still received. */
const PHASE_DRAINING = 3;

let nextLinkSeq = 1;

class SocketLink implements Link {
  id = '';
  peerHost = '';
  kind: LinkKind;
  readonly role: LinkRole;
  readonly stats: LinkStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0, keepalivesSent: 0, keepalivesReceived: 0, echoesSent: 0, echoesAnswered: 0, rttMs: undefined, srttMs: undefined };
  /** The outstanding echo request: its token and when it went out (clock ms). */
  #probe: { token: Buffer; sentAt: number } | undefined;

  readonly #init: OpenLinkInit;
  readonly #socket: Duplex;
  readonly #clock: Clock;
  #log: Logger;
  readonly #decoder: FrameDecoder;
  readonly #writer: LinkWriter;
  readonly #inbox: LinkInbox;
  #phase = PHASE_HANDSHAKE;
  #resolve: ((link: Link) => void) | undefined;
  #reject: ((err: Error) => void) | undefined;
  /** Cancels the handshake's timeout and abort listener. */
  #disarmHandshake: (() => void) | undefined;
  #liveness: Liveness | undefined;
  #graceTimer: TimerHandle | undefined;
  /** Set on every chunk received; the Liveness takes it over once the link is open. */
  #activity = { rxSeen: false };
  #session: HandshakeSession | undefined;
  #closeHandler: CloseHandler | undefined;
  #closeError: Error | undefined;
  #closeNotified = false;
  readonly #socketClosed: Promise<void>;
  #markSocketClosed!: () => void;
  readonly #nativeBinding: NativeLinkBinding;

  constructor(init: OpenLinkInit, resolve: (link: Link) => void, reject: (err: Error) => void) {
    this.#init = init;
    this.#socket = init.socket;
    this.#clock = init.clock ?? realClock;
    this.#log = componentLogger(init.logger, 'link', { local: init.localHost });
    this.role = init.role ?? 'dialer';
    this.kind = init.kind ?? 'backbone';
    this.#writer = new LinkWriter(init.socket, this.stats, init.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES);
    this.#inbox = new LinkInbox({
      socket: init.socket,
      stats: this.stats,
      isOpen: () => this.#phase === PHASE_OPEN || this.#phase === PHASE_DRAINING,
      onHandlerError: (err) => {
        this.#log.error({ err }, 'frame handler threw; closing the link');
        this.#finish(err, ['normal', 'local error']);
      },
    });
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
    this.#nativeBinding = new NativeLinkBinding({
      socket: init.socket,
      writer: this.#writer,
      stats: this.stats,
      maxMessageBytes: this.#decoder.maxMessageBytes,
      highWaterBytes: init.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
      isOpen: () => this.#phase === PHASE_OPEN,
      onBytes: (bytes) => this.#onData(bytes),
      activity: () => this.#activity,
      log: () => this.#log,
    });
  }

  get closed(): boolean {
    return this.#phase === PHASE_CLOSED;
  }

  get backlogBytes(): number {
    return this.#writer.backlogBytes;
  }

  start(): void {
    const init = this.#init;
    const socket = this.#socket;
    socket.on('data', this.#onData);
    socket.on('error', this.#onSocketError);
    socket.on('end', this.#onSocketEnd);
    socket.on('close', this.#onSocketClose);
    if (socket instanceof Socket) socket.setNoDelay(true);
    const allowUnauthenticated = init.allowUnauthenticated ?? false;
    const method = linkAuthMethod(socket, init.authenticator);
    const cannot = handshakeStartError({ localHost: init.localHost, role: this.role, kind: init.kind, socket, signal: init.signal, method, allowUnauthenticated });
    if (cannot !== undefined) {
      this.#failHandshake(cannot, undefined);
      return;
    }
    const clock = this.#clock;
    this.#session = new HandshakeSession({
      role: this.role,
      kind: init.kind,
      expectedPeer: init.expectedPeer,
      localHost: init.localHost,
      socket,
      allowUnauthenticated,
      membership: init.membership,
      authenticator: init.authenticator,
      wallNow: () => clock.wallNow(),
    });
    const timeoutMs = init.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#disarmHandshake = armHandshake(this.#clock, timeoutMs, init.signal, (err, goodbye) => this.#failHandshake(err, goodbye));
    if (this.role === 'dialer') this.#writer.writeControl(this.#session.hello(this.kind));
  }

  send(frame: Frame): void {
    this.#writer.send(frame);
  }

  nativeEndpoint(fwd: NativeForwarder): NativeEndpointId {
    return this.#phase === PHASE_OPEN ? this.#nativeBinding.endpoint(fwd) : this.#nativeBinding.current(fwd);
  }

  // ------------------------------------------------------------ receiving

  readonly #onData = (chunk: Buffer): void => {
    if (this.#liveness?.checkStall() === true) return; // closed: what waited during our stall is not delivered
    this.#activity.rxSeen = true;
    this.#decoder.push(chunk);
  };

  onFrames(handler: FramesHandler): void {
    this.#inbox.setHandler(handler);
  }

  #receiveFrames(frames: Frame[]): void {
    if (this.#phase === PHASE_OPEN || this.#phase === PHASE_DRAINING) this.#inbox.receive(frames);
    else if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('peer sent frames before its hello'), ['protocol', 'frames before hello']);
  }

  #receiveControl(msg: ControlMessage): void {
    if (this.#phase === PHASE_HANDSHAKE) {
      this.#handshakeMessage(msg);
      return;
    }
    if (this.#phase === PHASE_DRAINING) {
      if (msg.type === 'goodbye') this.#finish(undefined, undefined); // the peer has seen ours, or closed too: nothing more will come
      return;
    }
    if (this.#phase !== PHASE_OPEN) return;
    switch (msg.type) {
      case 'keepalive':
        this.stats.keepalivesReceived++;
        return;
      case 'echo-request':
        this.#writer.writeControl(encodeEcho('echo-reply', msg.token));
        return;
      case 'echo-reply':
        this.#echoReply(msg.token);
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
    const step = this.#session!.receive(msg);
    if (step.next === 'fail') {
      this.#failHandshake(step.error, step.goodbye);
      return;
    }
    if (step.next === 'wait') {
      for (const b of step.send) this.#writer.writeControl(b);
      return;
    }
    const hello = step.hello;
    this.kind = hello.kind;
    this.peerHost = hello.hostId;
    this.id = `${hello.kind}:${hello.hostId}#${nextLinkSeq++}`;
    this.#log = componentLogger(init.logger, 'link', { local: init.localHost, peer: hello.hostId, link: this.id });
    this.#endHandshake();
    this.#session = undefined;
    this.#phase = PHASE_OPEN;
    const liveness = new Liveness(this.#clock, init.keepaliveMs ?? DEFAULT_KEEPALIVE_MS, init.deadMs ?? DEFAULT_DEAD_MS, init.probeMs ?? DEFAULT_PROBE_MS, {
      keepalive: this.#sendKeepalive,
      probe: this.#sendProbe,
      stalled: this.#selfStalled,
      dead: this.#peerDead,
    });
    this.#liveness = liveness;
    this.#activity = liveness;
    this.#writer.activity = liveness;
    this.#writer.open = true;
    this.#log.info({ kind: this.kind, role: this.role }, 'link up');
    const resolve = this.#resolve!;
    this.#resolve = undefined;
    this.#reject = undefined;
    // State is final before this write: a peer that answers synchronously (in-memory) may re-enter and even close us.
    for (const b of step.send) this.#writer.writeControl(b);
    resolve(this);
  }

  #endHandshake(): void {
    this.#disarmHandshake?.();
    this.#disarmHandshake = undefined;
  }

  #failHandshake(err: Error, goodbye: Goodbye | undefined): void {
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
    this.#writer.writeControl(encodeKeepalive());
  };

  readonly #sendProbe = (): void => {
    if (this.#phase !== PHASE_OPEN) return;
    const token = Buffer.allocUnsafe(ECHO_TOKEN_BYTES);
    token.writeBigUInt64BE(BigInt(++this.stats.echoesSent));
    this.#probe = { token, sentAt: this.#clock.now() };
    this.#writer.writeControl(encodeEcho('echo-request', token));
  };

  /** A reply to our latest request gives a round trip; a late reply to an older one is ignored. */
  #echoReply(token: Buffer): void {
    const probe = this.#probe;
    if (probe === undefined || !probe.token.equals(token)) return;
    this.#probe = undefined;
    const rtt = Math.max(0, this.#clock.now() - probe.sentAt);
    this.stats.echoesAnswered++;
    this.stats.rttMs = rtt;
    this.stats.srttMs = this.stats.srttMs === undefined ? rtt : this.stats.srttMs + (rtt - this.stats.srttMs) / 8;
  }

  readonly #selfStalled = (stalledMs: number): void => {
    this.#log.warn({ stalledMs: Math.round(stalledMs) }, 'this process stalled longer than the dead time; closing the link without delivering what waited');
    this.#finish(new LinkTimeoutError(this.peerHost, stalledMs), ['timeout', `stalled for ${Math.round(stalledMs)} ms`]);
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
    else if (this.#phase === PHASE_OPEN) this.#drain(reason);
    return this.#socketClosed;
  }

  readonly #onSocketError = (err: Error): void => {
    const lost = err instanceof RecordLayerError ? err : new LinkLostError(`socket error: ${err.message}`, { cause: err });
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError(`connection failed during the handshake: ${err.message}`, { cause: err }), undefined);
    else this.#finish(lost, undefined);
  };

  readonly #onSocketEnd = (): void => {
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('peer closed the connection during the handshake'), undefined);
    else this.#finish(new LinkLostError(`${this.peerHost} closed the connection without a goodbye`), undefined);
  };

  readonly #onSocketClose = (): void => {
    this.#nativeBinding.detach(false);
    this.#graceTimer?.cancel();
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('connection closed during the handshake'), undefined);
    else this.#finish(new LinkLostError(`connection to ${this.peerHost} closed`), undefined);
    this.#markSocketClosed();
  };

  /** Closed locally: stop sending (gathered frames, goodbye, end), keep receiving until the peer answers or the grace time is up. */
  #drain(reason: string): void {
    this.#phase = PHASE_DRAINING;
    this.#liveness?.stop();
    this.#liveness = undefined;
    this.#writer.stop();
    this.#nativeBinding.detach(true);
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) {
      this.#finish(undefined, undefined);
      return;
    }
    socket.write(encodeGoodbye('normal', reason));
    socket.end();
    this.#graceTimer = this.#clock.setTimeout(() => {
      this.#finish(undefined, undefined);
      socket.destroy();
    }, CLOSE_GRACE_MS);
  }

  /** End the open (or draining) link once, for `err` (undefined: closed locally). */
  #finish(err: Error | undefined, goodbye: Goodbye | undefined): void {
    if (this.#phase === PHASE_DRAINING) {
      // Our goodbye and end are written; the socket closes when the peer's side has ended too (or the grace timer destroys it).
      this.#log.info('link down');
      this.#phase = PHASE_CLOSED;
      this.#closeError = undefined;
      this.#nativeBinding.detach(false);
      this.#decoder.stop();
      this.#inbox.clear();
      if (this.#closeHandler !== undefined) this.#notifyClose();
      return;
    }
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

  #terminate(err: Error | undefined, goodbye: Goodbye | undefined): void {
    this.#writer.stop();
    this.#nativeBinding.detach(false);
    this.#phase = PHASE_CLOSED;
    this.#closeError = err;
    this.#liveness?.stop();
    this.#liveness = undefined;
    this.#decoder.stop();
    this.#inbox.clear();
    this.#writer.stop();
    const socket = this.#socket;
    if (socket.destroyed) {
      this.#markSocketClosed();
      return;
    }
    if (goodbye !== undefined && socket.writable) {
      socket.write(encodeGoodbye(goodbye[0], goodbye[1]));
      socket.end();
      socket.resume(); // drain until the peer closes its side
      this.#graceTimer = this.#clock.setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    } else if (err instanceof PeerGoodbyeError && socket.writable) {
      // The peer is draining: end our side (what the writer just flushed still reaches it) rather than reset.
      socket.end();
      socket.resume();
      this.#graceTimer = this.#clock.setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    } else {
      socket.destroy();
    }
  }
}
