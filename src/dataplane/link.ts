import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { realClock, type Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { AbortedError, HandshakeError, LinkLostError, RecordLayerError, PeerGoodbyeError, ProtocolViolationError, type FrameDecodeError } from './errors.ts';
import type { Frame } from '../common/frame.ts';
import type { Goodbye } from './link-handshake.ts';
import { startLinkHandshake, type HandshakeSession } from './handshake-session.ts';
import { LinkInbox, type FramesHandler } from './link-inbox.ts';
import { CloseNotice, newLinkStats, type CloseHandler, type Link, type LinkStats, type OpenLinkInit } from './link-interface.ts';
import type { Liveness } from './link-liveness.ts';
import { LinkProbes, startLinkLiveness } from './link-probes.ts';
import { SocketEnd } from './link-socket-end.ts';
import { LinkWriter, DEFAULT_HIGH_WATER_BYTES } from './link-writer.ts';
import type { NativeForwarder } from './native-forwarder.ts';
import type { NativeEndpointId } from './native-flows.ts';
import { NativeLinkBinding } from './link-native.ts';
import type { RecordKeyStatus } from './record-keys.ts';
import { FrameDecoder, type DecoderSink } from './frame-codec.ts';
import type { ControlMessage, LinkRole } from './wire-messages.ts';
import type { LinkKind } from '../control/daemon-control.ts';

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
 *   liveness   (link-liveness.ts, link-probes.ts) a keepalive when we sent
 *              nothing for keepaliveMs, an echo request every probeMs (the
 *              round trip), and ends the link with LinkTimeoutError when the
 *              peer sent nothing for deadMs.
 *   close      exactly once: local close (goodbye, end), peer goodbye, decode
 *              error (warn once, count, goodbye), timeout, socket error or
 *              end. onClose gets the typed error (undefined for a local close).
 *   drain      a local close of an open link stops sending at once (the
 *              frames gathered so far, then the goodbye, then end) but keeps
 *              receiving until the peer has answered (its goodbye, end or
 *              close) or CLOSE_GRACE_MS pass: the frames the peer sent before
 *              it saw our goodbye are delivered, not dropped. onClose is
 *              called when the drain is over. A peer's goodbye is answered
 *              with an end, not a reset, so our last frames reach it. The
 *              socket's last bytes and grace time: link-socket-end.ts.
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
  readonly stats: LinkStats = newLinkStats();

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
  readonly #probes: LinkProbes;
  /** Set on every chunk received; the Liveness takes it over once the link is open. */
  #activity = { rxSeen: false };
  #session: HandshakeSession | undefined;
  readonly #closeNotice = new CloseNotice(() => this.#log);
  readonly #socketEnd: SocketEnd;
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
    this.#socketEnd = new SocketEnd(init.socket, this.#clock);
    this.#probes = new LinkProbes(this.stats, this.#writer, this.#clock);
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
    const socket = this.#socket;
    socket.on('data', this.#onData);
    socket.on('error', this.#onSocketError);
    socket.on('end', this.#onSocketEnd);
    socket.on('close', this.#onSocketClose);
    if (socket instanceof Socket) socket.setNoDelay(true);
    const started = startLinkHandshake(this.#init, this.role, this.#clock, (err, goodbye) => this.#failHandshake(err, goodbye));
    if (started instanceof Error) {
      this.#failHandshake(started, undefined);
      return;
    }
    this.#session = started.session;
    this.#disarmHandshake = started.disarm;
    if (this.role === 'dialer') this.#writer.writeControl(started.session.hello(this.kind));
  }

  send(frame: Frame): void {
    this.#writer.send(frame);
  }

  nativeEndpoint(fwd: NativeForwarder): NativeEndpointId {
    return this.#phase === PHASE_OPEN ? this.#nativeBinding.endpoint(fwd) : this.#nativeBinding.current(fwd);
  }

  recordKeys(): RecordKeyStatus | undefined {
    return this.#nativeBinding.recordKeys();
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
        this.#probes.answer(msg.token);
        return;
      case 'echo-reply':
        this.#probes.reply(msg.token);
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
    const liveness = startLinkLiveness(init, this.#clock, this.#probes, {
      peerHost: this.peerHost,
      log: this.#log,
      isOpen: () => this.#phase === PHASE_OPEN,
      timedOut: (err, goodbye) => this.#finish(err, goodbye),
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
    this.#closeNotice.notified = true; // nobody holds this link yet: there is no onClose to call
    this.#terminate(err, goodbye);
    reject?.(err);
  }

  // ------------------------------------------------------------ closing

  onClose(handler: CloseHandler): void {
    this.#closeNotice.handler = handler;
    if (this.#phase === PHASE_CLOSED && !this.#closeNotice.notified) queueMicrotask(() => this.#closeNotice.notify());
  }

  close(reason = 'closed by the local host'): Promise<void> {
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new AbortedError('link handshake'), ['normal', reason]);
    else if (this.#phase === PHASE_OPEN) this.#drain(reason);
    return this.#socketEnd.closed;
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
    this.#socketEnd.cancelGrace();
    if (this.#phase === PHASE_HANDSHAKE) this.#failHandshake(new HandshakeError('connection closed during the handshake'), undefined);
    else this.#finish(new LinkLostError(`connection to ${this.peerHost} closed`), undefined);
    this.#socketEnd.markClosed();
  };

  /** Closed locally: stop sending (gathered frames, goodbye, end), keep receiving until the peer answers or the grace time is up. */
  #drain(reason: string): void {
    this.#phase = PHASE_DRAINING;
    this.#liveness?.stop();
    this.#liveness = undefined;
    this.#writer.stop();
    this.#nativeBinding.detach(true);
    if (!this.#socketEnd.drain(reason, () => this.#finish(undefined, undefined))) this.#finish(undefined, undefined);
  }

  /** End the open (or draining) link once, for `err` (undefined: closed locally). */
  #finish(err: Error | undefined, goodbye: Goodbye | undefined): void {
    if (this.#phase === PHASE_DRAINING) {
      // Our goodbye and end are written; the socket closes when the peer's side has ended too (or the grace timer destroys it).
      this.#log.info('link down');
      this.#phase = PHASE_CLOSED;
      this.#closeNotice.error = undefined;
      this.#nativeBinding.detach(false);
      this.#decoder.stop();
      this.#inbox.clear();
      if (this.#closeNotice.handler !== undefined) this.#closeNotice.notify();
      return;
    }
    if (this.#phase !== PHASE_OPEN) return;
    this.#log.info({ code: (err as { code?: string } | undefined)?.code, err: err?.message }, 'link down');
    this.#terminate(err, goodbye);
    if (this.#closeNotice.handler !== undefined) this.#closeNotice.notify();
  }

  #terminate(err: Error | undefined, goodbye: Goodbye | undefined): void {
    this.#writer.stop();
    this.#nativeBinding.detach(false);
    this.#phase = PHASE_CLOSED;
    this.#closeNotice.error = err;
    this.#liveness?.stop();
    this.#liveness = undefined;
    this.#decoder.stop();
    this.#inbox.clear();
    this.#writer.stop();
    // A peer that said goodbye is draining: our side is ended (what the writer just flushed still reaches it) rather than reset.
    this.#socketEnd.terminate(goodbye, err instanceof PeerGoodbyeError);
  }
}
