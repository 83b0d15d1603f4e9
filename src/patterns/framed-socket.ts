/**
 * One Patterns connection: a TCP socket, its decoder, and the writes of the
 * protocol's messages. Decoded messages and the end of the connection go to
 * the attached handlers; until handlers are attached (between the handshake
 * and the start of the rounds) they are held, in order, and handed over on
 * `attach`.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../common/clock.ts';
import { encodeAbort, encodeHeader, MSG_DATA, PatternsDecoder, type PatternsMessage } from './wire.ts';

export interface FramedHandlers {
  message(m: PatternsMessage): void;
  /** The peer sent bytes that are not a valid message; the decoder has stopped. */
  protocolError(detail: string): void;
  /** The connection ended (FIN, reset or local close); `cause` is the socket error, if any. Called once. */
  closed(cause: Error | undefined): void;
}

type Held = { kind: 'message'; m: PatternsMessage } | { kind: 'error'; detail: string } | { kind: 'closed'; cause: Error | undefined };

export class FramedSocket {
  readonly socket: Socket;
  readonly remote: string;
  sentMessages = 0;
  sentBytes = 0;
  receivedBytes = 0;
  readonly #decoder: PatternsDecoder;
  #handlers: FramedHandlers | undefined;
  #held: Held[] = [];
  #closed = false;
  #cause: Error | undefined;

  constructor(socket: Socket, reference: Buffer, handlers?: FramedHandlers) {
    this.socket = socket;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.#decoder = new PatternsDecoder({ reference });
    this.#handlers = handlers;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => {
      this.#cause ??= err;
    });
    socket.on('end', () => this.#onClosed());
    socket.on('close', () => this.#onClosed());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Hand messages to `handlers` from now on (held ones first, in order); `undefined` holds them again. */
  attach(handlers: FramedHandlers | undefined): void {
    this.#handlers = handlers;
    while (this.#handlers !== undefined && this.#held.length > 0) {
      const h = this.#held.shift()!;
      this.#emit(h);
    }
  }

  sendControl(type: number, round: number): void {
    this.#write(encodeHeader(type, round, 0));
  }

  sendData(round: number, payload: Buffer): void {
    this.socket.cork();
    this.#write(encodeHeader(MSG_DATA, round, payload.length));
    if (payload.length > 0) this.socket.write(payload);
    this.socket.uncork();
    this.sentBytes += payload.length;
  }

  sendRaw(bytes: Buffer): void {
    this.#write(bytes);
  }

  sendAbort(round: number, origin: number, reason: string): void {
    this.#write(encodeAbort(round, origin, reason));
  }

  /** Half-close after what was written; the peer's FIN (or `destroy`) completes the close. */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** Tell the peer why the run ends here, half-close, and destroy after `graceMs` if the peer has not closed by then. */
  abortAndClose(round: number, origin: number, reason: string, clock: Clock, graceMs = 1000): void {
    this.sendAbort(round, origin, reason);
    this.end();
    if (!this.socket.destroyed) clock.setTimeout(() => this.socket.destroy(), graceMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  #write(b: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(b);
    this.sentMessages++;
  }

  #onData(chunk: Buffer): void {
    if (this.#decoder.failed) return;
    const r = this.#decoder.push(chunk);
    for (const m of r.messages) {
      if (m.type === 'data') this.receivedBytes += this.#decoder.dataBytes;
      this.#deliver({ kind: 'message', m });
    }
    if (r.error !== undefined) this.#deliver({ kind: 'error', detail: r.error });
  }

  #onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deliver({ kind: 'closed', cause: this.#cause });
  }

  #deliver(h: Held): void {
    if (this.#handlers === undefined || this.#held.length > 0) this.#held.push(h);
    else this.#emit(h);
  }

  #emit(h: Held): void {
    const handlers = this.#handlers!;
    if (h.kind === 'message') handlers.message(h.m);
    else if (h.kind === 'error') handlers.protocolError(h.detail);
    else handlers.closed(h.cause);
  }
}
