/**
 * QEMU's `-netdev stream` (and `-netdev socket`) framing: each Ethernet frame
 * is sent as a 4-byte big-endian length followed by that many bytes
 * (net/stream.c, `net_stream_receive`: `uint32_t len = htonl(size)` then the
 * frame; the receiver reads the length, then the body, in any chunking).
 *
 * The decoder is an incremental state machine that accepts bytes in any
 * chunking and never throws:
 *
 *   header   4 bytes of length, possibly split across chunks
 *   body     `length` bytes; a body wholly inside one chunk is a zero-copy
 *            view of it, one split across chunks is copied once
 *   verdict  length over `maxFrameBytes` (QEMU's own limit, NET_BUFSIZE, is
 *            4096 + 65536): the stream cannot be trusted to be in step any
 *            more → one `error` result, and the decoder takes no more bytes;
 *            a frame shorter than an Ethernet header or longer than the
 *            port's MTU allows is skipped whole (the framing stays in step)
 *            and reported as `skipped`
 */
import { MIN_FRAME_BYTES } from '../common/frame.ts';

/** QEMU's NET_BUFSIZE (include/net/net.h): the longest frame its stream backend sends or takes. */
export const QEMU_NET_BUFSIZE = 4096 + 65536;

const HEADER_BYTES = 4;

export interface StreamDecodeResult {
  /** Complete frames of an acceptable size, in order (views into the chunk where possible). */
  readonly frames: Buffer[];
  /** Frames skipped whole: runts and frames over `maxAcceptBytes`. */
  readonly skipped: number;
  /** Set once: a length over `maxFrameBytes`. The decoder is dead after it. */
  readonly tooLong: number | undefined;
}

export interface StreamDecoderInit {
  /** Frames longer than this are skipped (the port's MTU plus its overhead). */
  readonly maxAcceptBytes: number;
  /** A length over this breaks the stream (default QEMU_NET_BUFSIZE). */
  readonly maxFrameBytes?: number;
}

export class StreamFrameDecoder {
  readonly #maxAccept: number;
  readonly #maxFrame: number;
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #headerHave = 0;
  /** Body being gathered across chunks (undefined between frames). */
  #body: Buffer | undefined;
  #bodyHave = 0;
  /** Bytes of a skipped frame still to pass over. */
  #skip = 0;
  #dead = false;

  constructor(init: StreamDecoderInit) {
    this.#maxAccept = init.maxAcceptBytes;
    this.#maxFrame = init.maxFrameBytes ?? QEMU_NET_BUFSIZE;
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.#headerHave + this.#bodyHave;
  }

  push(chunk: Buffer): StreamDecodeResult {
    const frames: Buffer[] = [];
    let skipped = 0;
    let off = 0;
    while (off < chunk.length && !this.#dead) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - off);
        this.#skip -= n;
        off += n;
        continue;
      }
      if (this.#body !== undefined) {
        const n = Math.min(this.#body.length - this.#bodyHave, chunk.length - off);
        chunk.copy(this.#body, this.#bodyHave, off, off + n);
        this.#bodyHave += n;
        off += n;
        if (this.#bodyHave === this.#body.length) {
          frames.push(this.#body);
          this.#body = undefined;
          this.#bodyHave = 0;
        }
        continue;
      }
      let length: number;
      if (this.#headerHave === 0 && chunk.length - off >= HEADER_BYTES) {
        length = chunk.readUInt32BE(off);
        off += HEADER_BYTES;
      } else {
        const n = Math.min(HEADER_BYTES - this.#headerHave, chunk.length - off);
        chunk.copy(this.#header, this.#headerHave, off, off + n);
        this.#headerHave += n;
        off += n;
        if (this.#headerHave < HEADER_BYTES) break;
        this.#headerHave = 0;
        length = this.#header.readUInt32BE(0);
      }
      if (length > this.#maxFrame) {
        this.#dead = true;
        return { frames, skipped, tooLong: length };
      }
      if (length < MIN_FRAME_BYTES || length > this.#maxAccept) {
        skipped++;
        this.#skip = length;
        continue;
      }
      if (chunk.length - off >= length) {
        frames.push(chunk.subarray(off, off + length));
        off += length;
      } else {
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyHave = 0;
      }
    }
    return { frames, skipped, tooLong: undefined };
  }
}

/** The 4-byte big-endian length header of a frame of `length` bytes. */
export function streamFrameHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32BE(length, 0);
  return h;
}
