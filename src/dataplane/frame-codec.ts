import type { Frame } from '../common/frame.ts';
import { MAX_FRAME_BYTES, MIN_FRAME_BYTES, VIRTIO_NET_HDR_BYTES } from '../common/frame.ts';
import { FrameTooLargeError, FrameTooShortError, MalformedMessageError, UnknownMessageError, type FrameDecodeError } from './errors.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  ECHO_TOKEN_BYTES,
  HEADER_BYTES,
  KEEPALIVE,
  MAX_AUTH_BYTES,
  MAX_GOODBYE_REASON_BYTES,
  MAX_HELLO_BYTES,
  MAX_WIRE_LENGTH,
  MessageType,
  decodeGoodbyeBody,
  decodeAuthBody,
  decodeHelloBody,
  type ControlMessage,
} from './wire-messages.ts';

/**
 * The vnet tunnel wire protocol, version 2 (docs/wire-protocol.md has it
 * byte by byte): the frame stream. Constants, message types and the control
 * messages live in wire-messages.ts. A link is a byte
 * stream of messages, each a 4-byte header — type (u8), body length (u24,
 * big-endian) — followed by the body:
 *
 *   0x01 hello          "VNET" version kind role auth nonce idLen id  (first message each way)
 *   0x02 frame          Ethernet frame                          (14..MAX_FRAME_BYTES)
 *   0x03 offload frame  virtio_net_hdr (10) + Ethernet frame
 *   0x04 keepalive      (empty)
 *   0x05 goodbye        reason code (u8) + reason (UTF-8, ≤ 512 bytes)
 *   0x06 auth           certLen (u16) + certificate (DER) + proof   (authenticated TCP handshakes)
 *   0x07 echo request   token (8 bytes)                              (the link's RTT)
 *   0x08 echo reply     the request's token
 *
 * Decoding stages, in `FrameDecoder.push`: header (4 bytes, may span
 * chunks) → length check against the limits (before any body byte is
 * buffered) → body (a zero-copy `subarray` of the chunk when the body lies
 * inside it; otherwise copied into one buffer of the exact length) → message.
 * Frames decoded from one chunk go to the sink as one batch; a control
 * message first flushes the frames before it, so order is kept. Bad bytes
 * become a FrameDecodeError handed to the sink; the decoder then refuses
 * further input. It never throws on any input.
 *
 * Encoding: a frame is written as a small header taken from a bump-allocated
 * slab (4 bytes, or 14 with the offload header copied in) followed by the
 * caller's payload buffer, untouched — the link writes both with one writev.
 * Small frames (≤ SMALL_FRAME_BYTES) are copied into the slab after their
 * header instead, so a burst of them is one contiguous buffer.
 */

// ---------------------------------------------------------------- encoding

const SLAB_BYTES = 64 * 1024;
/** Frames up to this size are copied next to their header and written once (see FrameEncoder.wholeFrame). */
export const SMALL_FRAME_BYTES = 256;

/**
 * Writes message headers into a bump-allocated slab: each header is a fresh
 * region (never reused while the slab lives), so it may sit in a socket's
 * write queue as long as needed. One encoder per link.
 */
export class FrameEncoder {
  #slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #offset = 0;
  /** Start of the bytes appended but not yet taken (the pending run), in the current slab. */
  #runStart = 0;
  /** Runs left in earlier slabs as they filled up, oldest first; taken before the current run. */
  #spills: Buffer[] = [];

  /**
   * Streaming use (the link): append the frame's header to the pending run
   * and, for a small frame (≤ SMALL_FRAME_BYTES), a copy of its payload too.
   * Returns true when the frame is complete in the run; false when the
   * caller must write the run (`takeRun`) and then `frame.data` itself.
   * A burst of small frames thus becomes one contiguous buffer.
   */
  append(frame: Frame): boolean {
    const size = frame.offload === undefined ? HEADER_BYTES : HEADER_BYTES + VIRTIO_NET_HDR_BYTES;
    const data = frame.data;
    if (data.length <= SMALL_FRAME_BYTES) {
      const at = this.#take(size + data.length);
      this.#writeHeader(frame, at, size);
      data.copy(this.#slab, at + size);
      return true;
    }
    this.#writeHeader(frame, this.#take(size), size);
    return false;
  }

  /** The next buffer of appended bytes to write, oldest first; undefined when all are taken. */
  takeRun(): Buffer | undefined {
    if (this.#spills.length > 0) return this.#spills.shift();
    if (this.#runStart === this.#offset) return undefined;
    const run = this.#slab.subarray(this.#runStart, this.#offset);
    this.#runStart = this.#offset;
    return run;
  }

  /** The header to write before `frame.data`: 4 bytes, or 14 with the offload header. */
  frameHeader(frame: Frame): Buffer {
    const size = frame.offload === undefined ? HEADER_BYTES : HEADER_BYTES + VIRTIO_NET_HDR_BYTES;
    const at = this.#take(size);
    this.#writeHeader(frame, at, size);
    this.#runStart = this.#offset;
    return this.#slab.subarray(at, at + size);
  }

  /** The whole message — header and a copy of the payload — in one slab region. */
  wholeFrame(frame: Frame): Buffer {
    const size = frame.offload === undefined ? HEADER_BYTES : HEADER_BYTES + VIRTIO_NET_HDR_BYTES;
    const total = size + frame.data.length;
    const at = this.#take(total);
    this.#writeHeader(frame, at, size);
    frame.data.copy(this.#slab, at + size);
    this.#runStart = this.#offset;
    return this.#slab.subarray(at, at + total);
  }

  #take(size: number): number {
    if (this.#offset + size > SLAB_BYTES) {
      if (this.#runStart < this.#offset) this.#spills.push(this.#slab.subarray(this.#runStart, this.#offset));
      this.#slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.#offset = 0;
      this.#runStart = 0;
    }
    const at = this.#offset;
    this.#offset = at + size;
    return at;
  }

  #writeHeader(frame: Frame, at: number, size: number): void {
    const slab = this.#slab;
    const offload = frame.offload;
    const length = frame.data.length + size - HEADER_BYTES;
    slab[at] = offload === undefined ? MessageType.frame : MessageType.offloadFrame;
    slab[at + 1] = (length >>> 16) & 0xff;
    slab[at + 2] = (length >>> 8) & 0xff;
    slab[at + 3] = length & 0xff;
    if (offload !== undefined) offload.copy(slab, at + HEADER_BYTES, 0, VIRTIO_NET_HDR_BYTES);
  }
}

/** A whole frame message as one buffer (tests, fixtures; the link writes header and payload separately). */
export function encodeFrame(frame: Frame): Buffer {
  return Buffer.concat([new FrameEncoder().frameHeader(frame), frame.data]);
}

// ---------------------------------------------------------------- decoding

export interface DecoderSink {
  /** Frames decoded from one chunk, in order. Their buffers may be views into the chunk: copy to keep them past the call. */
  onFrames(frames: Frame[]): void;
  onControl(message: ControlMessage): void;
  /** Called once; the decoder then refuses further input. */
  onDecodeError(err: FrameDecodeError): void;
}

export interface FrameDecoderInit {
  /** Largest message body accepted (default: an offload frame of MAX_FRAME_BYTES). */
  maxMessageBytes?: number;
}

const ST_HEADER = 0;
const ST_BODY = 1;
const ST_DONE = 2;

/** Incremental decoder of one direction of a link; see the file comment for the stages. */
export class FrameDecoder {
  readonly maxMessageBytes: number;
  readonly #sink: DecoderSink;
  #state = ST_HEADER;
  readonly #head = Buffer.alloc(HEADER_BYTES);
  #headFill = 0;
  #type = 0;
  #length = 0;
  #body: Buffer | undefined;
  #bodyFill = 0;
  #batch: Frame[] | undefined;
  #error: FrameDecodeError | undefined;

  constructor(sink: DecoderSink, init: FrameDecoderInit = {}) {
    this.#sink = sink;
    const max = init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxMessageBytes = Math.max(0, Math.min(max, MAX_WIRE_LENGTH));
  }

  /** The error that stopped this decoder, if any. */
  get error(): FrameDecodeError | undefined {
    return this.#error;
  }

  /** Bytes of an incomplete message held between chunks. */
  get bufferedBytes(): number {
    return this.#state === ST_BODY ? this.#bodyFill + HEADER_BYTES : this.#headFill;
  }

  /** Stop decoding (the link is closing); later chunks are ignored. */
  stop(): void {
    this.#state = ST_DONE;
    this.#body = undefined;
  }

  /** Feed one chunk. Returns false once the decoder has failed or been stopped. */
  push(chunk: Buffer): boolean {
    const end = chunk.length;
    let off = 0;
    while (off < end && this.#state !== ST_DONE) {
      if (this.#state === ST_HEADER) {
        if (this.#headFill === 0 && end - off >= HEADER_BYTES) {
          this.#type = chunk[off]!;
          this.#length = (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!;
          off += HEADER_BYTES;
        } else {
          const n = Math.min(HEADER_BYTES - this.#headFill, end - off);
          chunk.copy(this.#head, this.#headFill, off, off + n);
          this.#headFill += n;
          off += n;
          if (this.#headFill < HEADER_BYTES) break;
          this.#headFill = 0;
          const h = this.#head;
          this.#type = h[0]!;
          this.#length = (h[1]! << 16) | (h[2]! << 8) | h[3]!;
        }
        const bad = this.#checkHeader(this.#type, this.#length);
        if (bad !== undefined) {
          this.#fail(bad);
          break;
        }
        const length = this.#length;
        if (end - off >= length) {
          this.#message(chunk, off, off + length);
          off += length;
        } else {
          const body = Buffer.allocUnsafe(length);
          chunk.copy(body, 0, off, end);
          this.#body = body;
          this.#bodyFill = end - off;
          off = end;
          this.#state = ST_BODY;
        }
      } else {
        const body = this.#body!;
        const n = Math.min(this.#length - this.#bodyFill, end - off);
        chunk.copy(body, this.#bodyFill, off, off + n);
        this.#bodyFill += n;
        off += n;
        if (this.#bodyFill === this.#length) {
          this.#body = undefined;
          this.#state = ST_HEADER;
          this.#message(body, 0, body.length);
        }
      }
    }
    this.#flushFrames();
    return this.#state !== ST_DONE;
  }

  #checkHeader(type: number, length: number): FrameDecodeError | undefined {
    switch (type) {
      case MessageType.frame:
        if (length > this.maxMessageBytes || length > MAX_FRAME_BYTES) return new FrameTooLargeError(length, Math.min(this.maxMessageBytes, MAX_FRAME_BYTES));
        if (length < MIN_FRAME_BYTES) return new FrameTooShortError(length, MIN_FRAME_BYTES);
        return undefined;
      case MessageType.offloadFrame: {
        const max = Math.min(this.maxMessageBytes, VIRTIO_NET_HDR_BYTES + MAX_FRAME_BYTES);
        if (length > max) return new FrameTooLargeError(length, max);
        if (length < VIRTIO_NET_HDR_BYTES + MIN_FRAME_BYTES) return new FrameTooShortError(length - VIRTIO_NET_HDR_BYTES, MIN_FRAME_BYTES);
        return undefined;
      }
      case MessageType.keepalive:
        return length === 0 ? undefined : new MalformedMessageError(`keepalive with a ${length}-byte body (must be empty)`);
      case MessageType.echoRequest:
      case MessageType.echoReply:
        return length === ECHO_TOKEN_BYTES ? undefined : new MalformedMessageError(`echo with a ${length}-byte body (must be ${ECHO_TOKEN_BYTES})`);
      case MessageType.hello:
        if (length > MAX_HELLO_BYTES) return new FrameTooLargeError(length, MAX_HELLO_BYTES);
        return length < 5 ? new MalformedMessageError(`hello of ${length} bytes is too short`) : undefined;
      case MessageType.auth:
        if (length > MAX_AUTH_BYTES) return new FrameTooLargeError(length, MAX_AUTH_BYTES);
        return length < 3 ? new MalformedMessageError(`auth of ${length} bytes is too short`) : undefined;
      case MessageType.goodbye:
        if (length > 1 + MAX_GOODBYE_REASON_BYTES) return new FrameTooLargeError(length, 1 + MAX_GOODBYE_REASON_BYTES);
        return length < 1 ? new MalformedMessageError('goodbye without a reason code') : undefined;
      default:
        return new UnknownMessageError(type);
    }
  }

  /** One whole message body: buf[start, end). */
  #message(buf: Buffer, start: number, end: number): void {
    const type = this.#type;
    if (type === MessageType.frame) {
      const frame: Frame = { data: buf.subarray(start, end), offload: undefined };
      if (this.#batch === undefined) this.#batch = [frame];
      else this.#batch.push(frame);
      return;
    }
    if (type === MessageType.offloadFrame) {
      const split = start + VIRTIO_NET_HDR_BYTES;
      const frame: Frame = { data: buf.subarray(split, end), offload: buf.subarray(start, split) };
      if (this.#batch === undefined) this.#batch = [frame];
      else this.#batch.push(frame);
      return;
    }
    let msg: ControlMessage | FrameDecodeError;
    if (type === MessageType.keepalive) msg = KEEPALIVE;
    else if (type === MessageType.echoRequest || type === MessageType.echoReply) {
      msg = { type: type === MessageType.echoRequest ? 'echo-request' : 'echo-reply', token: Buffer.from(buf.subarray(start, end)) };
    }
    else if (type === MessageType.hello) msg = decodeHelloBody(buf, start, end);
    else if (type === MessageType.auth) msg = decodeAuthBody(buf, start, end);
    else msg = decodeGoodbyeBody(buf, start, end);
    if (msg instanceof Error) {
      this.#fail(msg);
      return;
    }
    this.#flushFrames();
    this.#sink.onControl(msg);
  }

  #flushFrames(): void {
    const batch = this.#batch;
    if (batch !== undefined) {
      this.#batch = undefined;
      this.#sink.onFrames(batch);
    }
  }

  #fail(err: FrameDecodeError): void {
    this.#flushFrames();
    this.#state = ST_DONE;
    this.#body = undefined;
    this.#error = err;
    this.#sink.onDecodeError(err);
  }
}

