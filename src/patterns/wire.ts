/**
 * The Patterns wire format: length-framed messages over one TCP connection
 * per pattern edge.
 *
 *   header (12 bytes, big-endian)
 *     0  u16  magic 0x5650 ("VP")
 *     2  u8   version (1)
 *     3  u8   type: 1 hello, 2 data, 3 arrive, 4 release, 5 abort
 *     4  u32  round (0 for hello; barrier 0 is the start barrier; data rounds are 1..R)
 *     8  u32  payload length
 *   payload
 *     hello    20 bytes: index u32, workers u32, message bytes u32, rounds u32, pattern u8, k u8, 0 u16
 *     data     exactly the run's message size; the bytes of `referencePayload(size)`
 *     arrive   empty (a child has finished the round, with its whole subtree)
 *     release  empty (the root saw everyone arrive; go on)
 *     abort    origin worker u32, then a UTF-8 reason of at most 1024 bytes
 *
 * The decoder is an incremental state machine: it accepts bytes in any
 * chunking, checks every field against limits before it buffers anything,
 * compares data payloads with the reference as they stream in (no copy of
 * the payload is kept), and turns bad bytes into a returned error, never a throw.
 */
import { PATTERN_KINDS, type PatternKind } from '../topology/patterns.ts';

export const PATTERNS_MAGIC = 0x5650;
export const PATTERNS_VERSION = 1;
export const HEADER_BYTES = 12;
export const HELLO_BYTES = 20;
export const MAX_REASON_BYTES = 1024;
/** Largest message size a run may use (64 MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export const MSG_HELLO = 1;
export const MSG_DATA = 2;
export const MSG_ARRIVE = 3;
export const MSG_RELEASE = 4;
export const MSG_ABORT = 5;

export interface Hello {
  readonly index: number;
  readonly workers: number;
  readonly messageBytes: number;
  readonly rounds: number;
  readonly pattern: PatternKind;
  readonly k: number;
}

export type PatternsMessage =
  | { readonly type: 'hello'; readonly hello: Hello }
  | { readonly type: 'data'; readonly round: number }
  | { readonly type: 'arrive'; readonly round: number }
  | { readonly type: 'release'; readonly round: number }
  | { readonly type: 'abort'; readonly origin: number; readonly reason: string };

export interface DecodeResult {
  readonly messages: PatternsMessage[];
  /** Set once the stream is bad; the decoder then ignores further input. */
  readonly error: string | undefined;
}

/** The payload every data message carries: deterministic pseudo-random bytes, so a receiver can check each byte. */
export function referencePayload(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function encodeHeader(type: number, round: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt16BE(PATTERNS_MAGIC, 0);
  h.writeUInt8(PATTERNS_VERSION, 2);
  h.writeUInt8(type, 3);
  h.writeUInt32BE(round >>> 0, 4);
  h.writeUInt32BE(length >>> 0, 8);
  return h;
}

export function encodeHello(hello: Hello): Buffer {
  const b = Buffer.alloc(HEADER_BYTES + HELLO_BYTES);
  encodeHeader(MSG_HELLO, 0, HELLO_BYTES).copy(b, 0);
  b.writeUInt32BE(hello.index, 12);
  b.writeUInt32BE(hello.workers, 16);
  b.writeUInt32BE(hello.messageBytes, 20);
  b.writeUInt32BE(hello.rounds, 24);
  b.writeUInt8(PATTERN_KINDS.indexOf(hello.pattern) + 1, 28);
  b.writeUInt8(hello.k, 29);
  return b;
}

export function encodeAbort(round: number, origin: number, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > MAX_REASON_BYTES) text = text.subarray(0, MAX_REASON_BYTES);
  const b = Buffer.allocUnsafe(HEADER_BYTES + 4 + text.length);
  encodeHeader(MSG_ABORT, round, 4 + text.length).copy(b, 0);
  b.writeUInt32BE(origin >>> 0, HEADER_BYTES);
  text.copy(b, HEADER_BYTES + 4);
  return b;
}

type State = 'header' | 'small' | 'data' | 'failed';

/** Incremental decoder of one connection's byte stream. */
export class PatternsDecoder {
  readonly #reference: Buffer;
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #headerFill = 0;
  #state: State = 'header';
  #type = 0;
  #round = 0;
  #length = 0;
  #small: Buffer = Buffer.alloc(0);
  #fill = 0;
  #error: string | undefined;

  /** `reference` is the expected data payload; its length is the only data length accepted. */
  constructor(init: { reference: Buffer }) {
    this.#reference = init.reference;
  }

  /** The only data payload length accepted. */
  get dataBytes(): number {
    return this.#reference.length;
  }

  get failed(): boolean {
    return this.#state === 'failed';
  }

  /** True between messages (nothing half-received). */
  get idle(): boolean {
    return this.#state === 'header' && this.#headerFill === 0;
  }

  push(chunk: Buffer): DecodeResult {
    const messages: PatternsMessage[] = [];
    let off = 0;
    while (off < chunk.length && this.#state !== 'failed') {
      if (this.#state === 'header') {
        const n = Math.min(HEADER_BYTES - this.#headerFill, chunk.length - off);
        chunk.copy(this.#header, this.#headerFill, off, off + n);
        this.#headerFill += n;
        off += n;
        if (this.#headerFill === HEADER_BYTES) {
          this.#headerFill = 0;
          this.#startMessage(messages);
        }
      } else if (this.#state === 'data') {
        const n = Math.min(this.#length - this.#fill, chunk.length - off);
        if (chunk.compare(this.#reference, this.#fill, this.#fill + n, off, off + n) !== 0) {
          this.#fail(`data payload of round ${this.#round} differs from the reference at bytes ${this.#fill}..${this.#fill + n - 1}`);
          break;
        }
        this.#fill += n;
        off += n;
        if (this.#fill === this.#length) {
          messages.push({ type: 'data', round: this.#round });
          this.#state = 'header';
        }
      } else {
        const n = Math.min(this.#length - this.#fill, chunk.length - off);
        chunk.copy(this.#small, this.#fill, off, off + n);
        this.#fill += n;
        off += n;
        if (this.#fill === this.#length) {
          this.#state = 'header';
          this.#finishSmall(messages);
        }
      }
    }
    return { messages, error: this.#error };
  }

  #fail(message: string): void {
    this.#state = 'failed';
    this.#error = message;
  }

  #startMessage(out: PatternsMessage[]): void {
    const h = this.#header;
    const magic = h.readUInt16BE(0);
    if (magic !== PATTERNS_MAGIC) return this.#fail(`bad magic 0x${magic.toString(16).padStart(4, '0')} (expected 0x5650)`);
    const version = h.readUInt8(2);
    if (version !== PATTERNS_VERSION) return this.#fail(`unsupported version ${version}`);
    this.#type = h.readUInt8(3);
    this.#round = h.readUInt32BE(4);
    this.#length = h.readUInt32BE(8);
    this.#fill = 0;
    switch (this.#type) {
      case MSG_HELLO:
        if (this.#length !== HELLO_BYTES) return this.#fail(`hello of ${this.#length} bytes (expected ${HELLO_BYTES})`);
        break;
      case MSG_DATA:
        if (this.#length !== this.#reference.length) return this.#fail(`data message of ${this.#length} bytes in round ${this.#round} (the run's size is ${this.#reference.length})`);
        if (this.#length === 0) {
          out.push({ type: 'data', round: this.#round });
          return;
        }
        this.#state = 'data';
        return;
      case MSG_ARRIVE:
      case MSG_RELEASE:
        if (this.#length !== 0) return this.#fail(`${this.#type === MSG_ARRIVE ? 'arrive' : 'release'} with a ${this.#length}-byte payload`);
        out.push({ type: this.#type === MSG_ARRIVE ? 'arrive' : 'release', round: this.#round });
        return;
      case MSG_ABORT:
        if (this.#length < 4 || this.#length > 4 + MAX_REASON_BYTES) return this.#fail(`abort with a ${this.#length}-byte payload`);
        break;
      default:
        return this.#fail(`unknown message type ${this.#type}`);
    }
    this.#small = Buffer.alloc(this.#length);
    this.#state = 'small';
  }

  #finishSmall(out: PatternsMessage[]): void {
    const p = this.#small;
    if (this.#type === MSG_HELLO) {
      const code = p.readUInt8(16);
      const pattern = PATTERN_KINDS[code - 1];
      if (pattern === undefined) return this.#fail(`hello with unknown pattern code ${code}`);
      out.push({
        type: 'hello',
        hello: { index: p.readUInt32BE(0), workers: p.readUInt32BE(4), messageBytes: p.readUInt32BE(8), rounds: p.readUInt32BE(12), pattern, k: p.readUInt8(17) },
      });
      return;
    }
    out.push({ type: 'abort', origin: p.readUInt32BE(0), reason: p.subarray(4).toString('utf8') });
  }
}
