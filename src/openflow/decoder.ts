import { BadLengthError, BadVersionError, type OpenFlowDecodeError } from './errors.ts';
import { decodeMessage } from './message-codec.ts';
import { OFP_HEADER_BYTES, OFP_MAX_MESSAGE_BYTES, OFP_VERSION, OFPT, type OfMessage } from './messages.ts';

/**
 * Incremental decoder of one direction of an OpenFlow connection, in the
 * shape of the project's frame decoder: bytes in any chunking, each message
 * = an 8-byte header (version, type, length u16, xid) + body.
 *
 * Stages, in `push`: header (8 bytes, may span chunks) → checks on the
 * header alone, before any body byte is buffered (length in 8..limit, the
 * version 0x04 on every message but HELLO, which may offer others) → body
 * (decoded in place when the whole message is inside the chunk; otherwise
 * gathered into one buffer of the exact length) → `decodeMessage`. Decoded
 * messages own their bytes (no view into a chunk survives the call).
 *
 * Bad bytes become an OpenFlowDecodeError handed to the sink once; the
 * decoder then refuses further input. It never throws on any input.
 */

export interface OpenFlowSink {
  onMessage(message: OfMessage): void;
  /** Called once; the decoder then refuses further input. */
  onDecodeError(err: OpenFlowDecodeError): void;
}

export interface OpenFlowDecoderInit {
  /** Largest message accepted, header included (default and ceiling: 65535, the protocol's). */
  maxMessageBytes?: number;
}

const ST_HEADER = 0;
const ST_BODY = 1;
const ST_DONE = 2;

export class OpenFlowDecoder {
  readonly maxMessageBytes: number;
  readonly #sink: OpenFlowSink;
  #state = ST_HEADER;
  readonly #head = Buffer.alloc(OFP_HEADER_BYTES);
  #headFill = 0;
  #message: Buffer | undefined;
  #fill = 0;
  #error: OpenFlowDecodeError | undefined;

  constructor(sink: OpenFlowSink, init: OpenFlowDecoderInit = {}) {
    this.#sink = sink;
    this.maxMessageBytes = Math.max(OFP_HEADER_BYTES, Math.min(init.maxMessageBytes ?? OFP_MAX_MESSAGE_BYTES, OFP_MAX_MESSAGE_BYTES));
  }

  get error(): OpenFlowDecodeError | undefined {
    return this.#error;
  }

  /** Bytes of an incomplete message held between chunks. */
  get bufferedBytes(): number {
    return this.#state === ST_BODY ? this.#fill : this.#headFill;
  }

  /** Stop decoding (the connection is closing); later chunks are ignored. */
  stop(): void {
    this.#state = ST_DONE;
    this.#message = undefined;
  }

  /** Feed one chunk. Returns false once the decoder has failed or been stopped. */
  push(chunk: Buffer): boolean {
    const end = chunk.length;
    let off = 0;
    while (off < end && this.#state !== ST_DONE) {
      if (this.#state === ST_HEADER) {
        let length: number;
        if (this.#headFill === 0 && end - off >= OFP_HEADER_BYTES) {
          length = this.#checkHeader(chunk, off);
          if (length === 0) break;
          if (end - off >= length) {
            this.#deliver(chunk, off, off + length);
            off += length;
            continue;
          }
          this.#message = Buffer.allocUnsafe(length);
          chunk.copy(this.#message, 0, off, end);
          this.#fill = end - off;
          off = end;
        } else {
          const n = Math.min(OFP_HEADER_BYTES - this.#headFill, end - off);
          chunk.copy(this.#head, this.#headFill, off, off + n);
          this.#headFill += n;
          off += n;
          if (this.#headFill < OFP_HEADER_BYTES) break;
          this.#headFill = 0;
          length = this.#checkHeader(this.#head, 0);
          if (length === 0) break;
          this.#message = Buffer.allocUnsafe(length);
          this.#head.copy(this.#message, 0);
          this.#fill = OFP_HEADER_BYTES;
        }
        this.#state = ST_BODY;
        if (this.#fill === length) this.#complete();
      } else {
        const message = this.#message!;
        const n = Math.min(message.length - this.#fill, end - off);
        chunk.copy(message, this.#fill, off, off + n);
        this.#fill += n;
        off += n;
        if (this.#fill === message.length) this.#complete();
      }
    }
    return this.#state !== ST_DONE;
  }

  /** The message length from a header at buf[at], or 0 after failing the decoder. */
  #checkHeader(buf: Buffer, at: number): number {
    const version = buf[at]!;
    const type = buf[at + 1]!;
    const length = buf.readUInt16BE(at + 2);
    if (length < OFP_HEADER_BYTES) return this.#fail(new BadLengthError(length, { min: OFP_HEADER_BYTES }));
    if (length > this.maxMessageBytes) return this.#fail(new BadLengthError(length, { max: this.maxMessageBytes }));
    if (version !== OFP_VERSION && type !== OFPT.hello) return this.#fail(new BadVersionError(version));
    return length;
  }

  #complete(): void {
    const message = this.#message!;
    this.#message = undefined;
    this.#state = ST_HEADER;
    this.#deliver(message, 0, message.length);
  }

  #deliver(buf: Buffer, start: number, end: number): void {
    const msg = decodeMessage(buf, start, end);
    if (msg instanceof Error) this.#fail(msg);
    else this.#sink.onMessage(msg);
  }

  #fail(err: OpenFlowDecodeError): 0 {
    this.#state = ST_DONE;
    this.#message = undefined;
    this.#error = err;
    this.#sink.onDecodeError(err);
    return 0;
  }
}
