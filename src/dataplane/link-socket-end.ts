import type { Duplex } from 'node:stream';
import type { Clock, TimerHandle } from '../common/clock.ts';
import { encodeGoodbye } from './wire-messages.ts';
import type { Goodbye } from './link-handshake.ts';

/** How long a closing socket may take to finish before it is destroyed. */
export const CLOSE_GRACE_MS = 2000;

/**
 * How a link's socket ends, and the promise that says it has (what
 * `Link.close` resolves with). link.ts decides when; this file writes the
 * last bytes and bounds the wait:
 *
 *   drain      (a local close of an open link) goodbye, end, and at most
 *              CLOSE_GRACE_MS for the peer to answer before the socket is
 *              destroyed; the link keeps receiving meanwhile.
 *   goodbye    (a refusal, an error we tell the peer about) goodbye, end,
 *              read and discard until the peer closes its side, destroyed
 *              after CLOSE_GRACE_MS.
 *   answer     (the peer said goodbye: it is draining) end without a
 *              goodbye, not a reset, so what we flushed last still reaches it.
 *   otherwise  destroyed at once.
 */
export class SocketEnd {
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  readonly #socket: Duplex;
  readonly #clock: Clock;
  #markClosed!: () => void;
  #graceTimer: TimerHandle | undefined;

  constructor(socket: Duplex, clock: Clock) {
    this.#socket = socket;
    this.#clock = clock;
    this.closed = new Promise<void>((r) => {
      this.#markClosed = r;
    });
  }

  /** Goodbye and end, `graceOver` then destroy after CLOSE_GRACE_MS; false (nothing done) when the socket cannot be written to. */
  drain(reason: string, graceOver: () => void): boolean {
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) return false;
    this.#end(encodeGoodbye('normal', reason), false, graceOver);
    return true;
  }

  /** End the socket of a link that is over: with `goodbye`, or as the answer to the peer's (`peerDraining`), else destroyed. */
  terminate(goodbye: Goodbye | undefined, peerDraining: boolean): void {
    const socket = this.#socket;
    if (socket.destroyed) {
      this.#markClosed();
      return;
    }
    if (goodbye !== undefined && socket.writable) this.#end(encodeGoodbye(goodbye[0], goodbye[1]), true, undefined);
    else if (peerDraining && socket.writable) this.#end(undefined, true, undefined);
    else socket.destroy();
  }

  /** The socket emitted 'close': no grace timer is needed any more. */
  cancelGrace(): void {
    this.#graceTimer?.cancel();
  }

  markClosed(): void {
    this.#markClosed();
  }

  /** `last` (if any) then end; `resume` drains what the peer still sends until it closes its side. */
  #end(last: Buffer | undefined, resume: boolean, graceOver: (() => void) | undefined): void {
    const socket = this.#socket;
    if (last !== undefined) socket.write(last);
    socket.end();
    if (resume) socket.resume();
    this.#graceTimer = this.#clock.setTimeout(() => {
      graceOver?.();
      socket.destroy();
    }, CLOSE_GRACE_MS);
  }
}
