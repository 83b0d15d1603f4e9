import type { Duplex } from 'node:stream';
import type { Frame } from '../common/frame.ts';
import { FrameHandlerError } from './errors.ts';

/**
 * The receive end of a link (link.ts): where decoded frame batches go.
 *
 *   count    every batch of an open link is counted (rxFrames, rxBytes).
 *   deliver  to the onFrames handler, one call per batch (one per socket
 *            chunk). A handler that throws ends the link (`onHandlerError`).
 *   hold     until a handler is registered, batches are held (at most
 *            MAX_HELD_BATCHES; the socket is paused meanwhile, so more
 *            arrive only if the peer had them in flight) and handed over, in
 *            order, as soon as one is; then the socket resumes.
 */

export type FramesHandler = (frames: readonly Frame[]) => void;

/** Batches held while no onFrames handler is registered; more are dropped (the socket is paused anyway). */
export const MAX_HELD_BATCHES = 64;

export interface LinkInboxInit {
  socket: Duplex;
  stats: { rxFrames: number; rxBytes: number };
  /** Whether the link is still open (delivery stops the moment it is not). */
  isOpen: () => boolean;
  /** The handler threw: the link ends with this error. */
  onHandlerError: (err: Error) => void;
}

export class LinkInbox {
  readonly #init: LinkInboxInit;
  #handler: FramesHandler | undefined;
  #held: Frame[][] = [];

  constructor(init: LinkInboxInit) {
    this.#init = init;
  }

  /** Register where frames go; held batches are delivered first (in a microtask), then the socket resumes. */
  setHandler(handler: FramesHandler): void {
    this.#handler = handler;
    if (this.#held.length > 0) queueMicrotask(this.#releaseHeld);
    else if (this.#init.isOpen()) this.#init.socket.resume();
  }

  /** One decoded batch from an open link. */
  receive(frames: Frame[]): void {
    const stats = this.#init.stats;
    stats.rxFrames += frames.length;
    for (let i = 0; i < frames.length; i++) stats.rxBytes += frames[i]!.data.length;
    const handler = this.#handler;
    if (handler === undefined) {
      this.#init.socket.pause();
      if (this.#held.length < MAX_HELD_BATCHES) this.#held.push(frames);
      return;
    }
    this.#deliver(handler, frames);
  }

  /** Forget held batches (the link has ended). */
  clear(): void {
    this.#held = [];
  }

  #deliver(handler: FramesHandler, frames: Frame[]): void {
    try {
      handler(frames);
    } catch (err) {
      this.#init.onHandlerError(err instanceof Error ? err : new FrameHandlerError(err));
    }
  }

  readonly #releaseHeld = (): void => {
    const handler = this.#handler;
    if (handler === undefined) return;
    const held = this.#held;
    this.#held = [];
    for (const batch of held) {
      if (!this.#init.isOpen()) return;
      this.#deliver(handler, batch);
    }
    if (this.#init.isOpen()) this.#init.socket.resume();
  };
}
