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
 * Frames a stopped guest never took (`watchDeliveries`): a QEMU guest
 * stops on its own (QEMU decides its switchover), and the source holds the
 * port only once it hears of it, a millisecond or two later. A frame
 * delivered in between sits in the stopped QEMU's queue or socket and is
 * gone when that QEMU quits. While watched, the outlet keeps a copy of each
 * frame it delivers with the watcher's wall-clock time just before the
 * delivery (the last `DELIVERY_LOG_LIMIT`, none older than
 * `DELIVERY_LOG_MS`); a release to a link given a `Reclaim` (the guest's
 * STOP, and the frames read back from its device) sends first what the
 * guest provably never took (`reclaimedFrames`), then the queue. A release
 * to the port (an abort: the same QEMU runs on and takes them itself)
 * reclaims nothing. Either ends the watch.
 *
 * Cost on the hot path: one boolean test per delivered frame (two while a
 * port is watched, plus a copy). A held frame is copied (the caller's
 * buffer may be reused); beyond `limit` frames the newest are dropped and
 * counted as lost.
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
  /** Of the held, frames delivered that the stopped guest never took (since its STOP, or left unread on its device), sent again by a release. */
  reclaimed: number;
}

/** The delivery log's bounds: frames, and age (ms). */
export const DELIVERY_LOG_LIMIT = 1024;
export const DELIVERY_LOG_MS = 2000;

interface Delivered {
  readonly frame: Frame;
  readonly atMs: number;
}

/** The deliveries of a watched port: a ring of the last DELIVERY_LOG_LIMIT, none older than DELIVERY_LOG_MS — constant time a frame. */
class DeliveryLog {
  readonly #ring: Array<Delivered | undefined> = new Array<Delivered | undefined>(DELIVERY_LOG_LIMIT);
  /** Index of the oldest entry, and how many there are. */
  #head = 0;
  #size = 0;

  push(d: Delivered): void {
    const n = DELIVERY_LOG_LIMIT;
    while (this.#size > 0 && (this.#size === n || this.#ring[this.#head]!.atMs < d.atMs - DELIVERY_LOG_MS)) {
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % n;
      this.#size--;
    }
    this.#ring[(this.#head + this.#size) % n] = d;
    this.#size++;
  }

  /** The entries, oldest first. */
  toArray(): Delivered[] {
    const out: Delivered[] = [];
    for (let i = 0; i < this.#size; i++) out.push(this.#ring[(this.#head + i) % DELIVERY_LOG_LIMIT]!);
    return out;
  }
}

/**
 * What a guest that stopped on its own never took, for a release:
 *   sinceMs   its STOP (the watcher's clock): logged deliveries at or after
 *             it cannot have reached it
 *   unread    the frames still queued on its device, read back from it
 *             (qemu-unread.ts): the newest deliveries, which it never read
 */
export interface Reclaim {
  readonly sinceMs?: number | undefined;
  readonly unread?: readonly Uint8Array[] | undefined;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

/**
 * The frames to reclaim, oldest first: the union of the two suffixes of the
 * deliveries — those since the STOP, and the unread ones — when the unread
 * frames are the log's last ones (the usual case: a FIFO queue, nothing else
 * writing to the device); otherwise the unread frames alone (they are
 * exactly what the guest never read; the log cannot be matched to them, so
 * adding from it could send one twice).
 */
export function reclaimedFrames(log: readonly Delivered[], reclaim: Reclaim): Frame[] {
  const since = reclaim.sinceMs;
  const first = since === undefined ? log.length : log.findIndex((d) => d.atMs >= since);
  const sinceCount = first < 0 ? 0 : log.length - first;
  const unread = reclaim.unread ?? [];
  const tail = log.slice(log.length - unread.length);
  const matched = unread.length <= log.length && unread.every((u, i) => sameBytes(u, tail[i]!.frame.data));
  if (!matched) return unread.map((u) => ({ data: Buffer.from(u), offload: undefined }));
  return log.slice(log.length - Math.max(sinceCount, unread.length)).map((d) => d.frame);
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
  readonly #stats = { held: 0, flushed: 0, lost: 0, reclaimed: 0 };
  /** While watched: the frames delivered, and the watcher's clock. */
  #log: DeliveryLog | undefined;
  #now: () => number = Date.now;

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
      // The time before the send: a frame logged at or after the STOP was written after it.
      if (this.#log !== undefined) this.#record(frame);
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

  /** Log the frames delivered from now on, with `now()`'s time (ms), until a release or `unwatchDeliveries`. */
  watchDeliveries(now: () => number = Date.now): void {
    this.#log = new DeliveryLog();
    this.#now = now;
  }

  unwatchDeliveries(): void {
    this.#log = undefined;
  }

  get watched(): boolean {
    return this.#log !== undefined;
  }

  #record(frame: Frame): void {
    this.#log!.push({ frame: { data: Buffer.from(frame.data), offload: frame.offload === undefined ? undefined : Buffer.from(frame.offload) }, atMs: this.#now() });
  }

  /**
   * Stop holding: hand every queued frame to `deliver` (which returns false
   * for a frame it could not take: counted as lost) — those from ingress
   * `first` (if given) first, then the rest, each oldest first. With
   * `reclaim`, what the stopped guest never took goes before them all
   * (counted held and reclaimed; `reclaimedFrames`). Ends the watch.
   */
  release(deliver: (frame: Frame) => boolean, first?: number, reclaim?: Reclaim): HoldStats {
    const queue = this.#queue;
    const from = this.#from;
    const log = this.#log?.toArray() ?? [];
    this.#queue = [];
    this.#from = [];
    this.#log = undefined;
    this.#held = false;
    const give = (frame: Frame): void => {
      if (deliver(frame)) this.#stats.flushed++;
      else this.#stats.lost++;
    };
    if (reclaim !== undefined) {
      for (const frame of reclaimedFrames(log, reclaim)) {
        this.#stats.held++;
        this.#stats.reclaimed++;
        give(frame);
      }
    }
    if (first === undefined) {
      for (const frame of queue) give(frame);
    } else {
      for (let i = 0; i < queue.length; i++) if (from[i] === first) give(queue[i]!);
      for (let i = 0; i < queue.length; i++) if (from[i] !== first) give(queue[i]!);
    }
    return this.stats;
  }
}
