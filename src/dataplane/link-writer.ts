import type { Duplex } from 'node:stream';
import type { Frame } from '../common/frame.ts';
import { MAX_FRAME_BYTES, MIN_FRAME_BYTES, VIRTIO_NET_HDR_BYTES } from '../common/frame.ts';
import type { LinkCounters } from '../control/daemon-control.ts';
import { FrameEncoder } from './frame-codec.ts';
import type { NativeForwarder } from './native-forwarder.ts';

/**
 * The write path of a link (link.ts): frames out to the peer's socket, in
 * bursts.
 *
 *   check    drop and count (txDropped) a frame while the link is not open,
 *            while the socket's backlog is over the high-water mark, or when
 *            the frame is a runt, oversize, or carries an offload header of
 *            the wrong size.
 *   cork     the first frame of a tick corks the socket and schedules the
 *            flush for the next tick.
 *   gather   the message header (and a small frame's payload) is appended to
 *            the encoder's slab run; a large payload is written by reference
 *            after the run so far.
 *   flush    on the next tick: write the rest of the run and uncork. One
 *            writev per burst, one buffer for a burst of small frames.
 *
 * Control messages (hello, keepalive, goodbye) go through `writeControl`,
 * after the frames already gathered, so the peer sees them in order.
 *
 * Native mode (`useNative`): while the native forwarder (native-forwarder.ts)
 * serves the socket, every write goes through it instead of the socket — the
 * burst gathered in the same tick, one `writeLink` per flush — so its own
 * frames and ours never interleave; the backlog is its. `useSocket` writes
 * what is gathered through it and switches back.
 * Payload buffers are written by reference (see Link.send).
 */

/** The counters the write path keeps (a link's stats object, shared). */
export type LinkTxCounters = Pick<LinkCounters, 'txFrames' | 'txBytes' | 'txDropped'>;

export const DEFAULT_HIGH_WATER_BYTES = 8 * 1024 * 1024;

export class LinkWriter {
  /** Frames are taken only while this is set: the link sets it once the handshake is done and clears it (via `stop`) when it ends. */
  open = false;
  /** `txSeen` is set on every frame sent; the link points this at its liveness once open. */
  activity: { txSeen: boolean } = { txSeen: false };

  readonly #socket: Duplex;
  readonly #stats: LinkTxCounters;
  readonly #highWater: number;
  readonly #encoder = new FrameEncoder();
  #corked = false;
  /** Native mode: the forwarder, the link's endpoint, the buffers gathered this tick, the backlog as last reported. */
  #native: { fwd: NativeForwarder; id: number; out: Uint8Array[]; backlog: number } | undefined;

  constructor(socket: Duplex, stats: LinkTxCounters, highWaterBytes = DEFAULT_HIGH_WATER_BYTES) {
    this.#socket = socket;
    this.#stats = stats;
    this.#highWater = highWaterBytes;
  }

  /** Bytes queued on the socket and not yet written. */
  get backlogBytes(): number {
    const n = this.#native;
    return n === undefined ? this.#socket.writableLength : n.fwd.backlog(n.id);
  }

  /** From now on, write through the native forwarder's endpoint `id` (the socket's own queue is empty). */
  useNative(fwd: NativeForwarder, id: number): void {
    this.#native = { fwd, id, out: [], backlog: 0 };
  }

  /** Write what is gathered through the forwarder, then write to the socket again. */
  useSocket(): void {
    if (this.#native === undefined) return;
    this.#flushRun();
    this.#flushNative();
    this.#native = undefined;
  }

  /** Queue one frame for the peer. Never throws; a frame that cannot be sent is counted in txDropped. */
  send(frame: Frame): void {
    const socket = this.#socket;
    const data = frame.data;
    const native = this.#native;
    // Native mode: the backlog as the last write left it; over the mark, ask again (the thread may have written it since).
    if (native !== undefined && native.backlog > this.#highWater) native.backlog = native.fwd.backlog(native.id);
    if (
      !this.open ||
      (native === undefined ? socket.writableLength : native.backlog) > this.#highWater ||
      data.length < MIN_FRAME_BYTES ||
      data.length > MAX_FRAME_BYTES ||
      (frame.offload !== undefined && frame.offload.length !== VIRTIO_NET_HDR_BYTES)
    ) {
      this.#stats.txDropped++;
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      if (this.#native === undefined) socket.cork();
      process.nextTick(this.#uncork);
    }
    if (!this.#encoder.append(frame)) {
      this.#flushRun();
      this.#write(data);
    }
    this.#stats.txFrames++;
    this.#stats.txBytes += data.length;
    this.activity.txSeen = true;
  }

  /** Write an encoded control message after the frames gathered so far. */
  writeControl(message: Buffer): void {
    this.#flushRun();
    this.#write(message);
    if (!this.#corked) this.#flushNative();
  }

  /** Stop taking frames: write what is gathered (if the socket still can) and lift the cork. */
  stop(): void {
    this.open = false;
    const socket = this.#socket;
    if (!socket.destroyed) this.#flushRun();
    this.#flushNative();
    if (this.#corked) {
      this.#corked = false;
      if (this.#native === undefined) socket.uncork();
    }
  }

  readonly #uncork = (): void => {
    if (!this.#corked) return; // stop() flushed already
    this.#corked = false;
    this.#flushRun();
    if (this.#native === undefined) this.#socket.uncork();
    else this.#flushNative();
  };

  #write(buf: Uint8Array): void {
    if (this.#native === undefined) this.#socket.write(buf);
    else this.#native.out.push(buf);
  }

  /** Native mode: hand what is gathered to the forwarder (one call). */
  #flushNative(): void {
    const n = this.#native;
    if (n === undefined || n.out.length === 0) return;
    const out = n.out;
    n.out = [];
    n.backlog = n.fwd.writeLink(n.id, out);
  }

  /** Write what the encoder has gathered (headers, small frames) since the last flush. */
  #flushRun(): void {
    for (let run = this.#encoder.takeRun(); run !== undefined; run = this.#encoder.takeRun()) this.#write(run);
  }
}
