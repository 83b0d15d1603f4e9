import type { Frame } from '../common/frame.ts';
import type { Port } from './port.ts';

/**
 * What the forwarding table delivers to for a local port: the port itself,
 * or — while the port is held — a bounded queue in front of it.
 *
 * A live migration holds a VM's port twice: on the source from the moment
 * the guest pauses (its frames must not be dropped while it cannot take
 * them), and on the destination from the moment the port is created until
 * the guest resumes there. Releasing delivers the queue in arrival order —
 * to the port itself (destination; or the source after an abort) or to a
 * link (the source after the cutover: to the destination) — and ends the
 * hold; frames that arrive afterwards take the ordinary path.
 *
 * Order at the destination: frames the source flushes are older than frames
 * that came straight to the destination once every daemon's rules pointed
 * there, but they arrive later. A release can name the ingress the source's
 * frames come from (`first`): those go first, then the rest, each in
 * arrival order.
 *
 * Cost on the hot path: one boolean test per delivered frame. A held frame
 * is copied (the caller's buffer may be reused); beyond `limit` frames the
 * newest are dropped and counted as lost.
 */

export interface HoldStats {
  /** Frames queued while held (since the port was added). */
  held: number;
  /** Of those, delivered by a release. */
  flushed: number;
  /** Frames lost: the queue was full, or the release had nowhere to send them. */
  lost: number;
  /** Frames in the queue now. */
  queued: number;
}

/** Default bound of a hold queue: a second of a busy VM at a few thousand frames a second. */
export const DEFAULT_HOLD_LIMIT = 4096;

export class PortOutlet {
  readonly port: Port;
  readonly #limit: number;
  #held: boolean;
  #queue: Frame[] = [];
  /** The ingress each queued frame came from, by position. */
  #from: number[] = [];
  readonly #stats = { held: 0, flushed: 0, lost: 0 };

  constructor(port: Port, opts: { held?: boolean; limit?: number } = {}) {
    this.port = port;
    this.#held = opts.held === true;
    this.#limit = opts.limit ?? DEFAULT_HOLD_LIMIT;
  }

  get held(): boolean {
    return this.#held;
  }

  get stats(): HoldStats {
    return { ...this.#stats, queued: this.#queue.length };
  }

  /** Deliver a frame to the VM, or queue it (noting where it came from) while held. Never throws. */
  send(frame: Frame, ingress = -1): void {
    if (!this.#held) {
      this.port.send(frame);
      return;
    }
    if (this.#queue.length >= this.#limit) {
      this.#stats.lost++;
      return;
    }
    this.#queue.push({ data: Buffer.from(frame.data), offload: frame.offload === undefined ? undefined : Buffer.from(frame.offload) });
    this.#from.push(ingress);
    this.#stats.held++;
  }

  hold(): void {
    this.#held = true;
  }

  /**
   * Stop holding: hand every queued frame to `deliver` (which returns false
   * for a frame it could not take: counted as lost) — those from ingress
   * `first` (if given) first, then the rest, each oldest first.
   */
  release(deliver: (frame: Frame) => boolean, first?: number): HoldStats {
    const queue = this.#queue;
    const from = this.#from;
    this.#queue = [];
    this.#from = [];
    this.#held = false;
    const give = (frame: Frame): void => {
      if (deliver(frame)) this.#stats.flushed++;
      else this.#stats.lost++;
    };
    if (first === undefined) {
      for (const frame of queue) give(frame);
    } else {
      for (let i = 0; i < queue.length; i++) if (from[i] === first) give(queue[i]!);
      for (let i = 0; i < queue.length; i++) if (from[i] !== first) give(queue[i]!);
    }
    return this.stats;
  }
}
