import { EncodeError, MalformedMessageError } from './errors.ts';

/**
 * Bounds-checked big-endian reading and growable writing of OpenFlow
 * structures. A read past the end of the structure being read throws a
 * MalformedMessageError naming it; message decoding turns that into the
 * decoder's typed error, so nothing escapes to the caller.
 */
export class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  readonly what: string;

  constructor(buf: Buffer, start: number, end: number, what: string) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.what = what;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, field: string): void {
    if (n < 0 || this.pos + n > this.end) throw new MalformedMessageError(`${this.what}: ${field} needs ${n} bytes, ${this.end - this.pos} left`);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  skip(n: number, field: string): void {
    this.need(n, field);
    this.pos += n;
  }

  /** A copy of the next n bytes (decoded messages never alias the socket's chunks). */
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return b;
  }

  /** A NUL-padded string field of n bytes. */
  string(n: number, field: string): string {
    const b = this.bytes(n, field);
    const nul = b.indexOf(0);
    return b.subarray(0, nul === -1 ? n : nul).toString('latin1');
  }

  /** A sub-reader over the next n bytes, for a nested structure with its own length. */
  sub(n: number, what: string): Reader {
    this.need(n, `${what} (${n} bytes)`);
    const r = new Reader(this.buf, this.pos, this.pos + n, what);
    this.pos += n;
    return r;
  }
}

/** Appends big-endian fields to a buffer that grows as needed. */
export class Writer {
  #buf = Buffer.alloc(256);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  /** Reserves n bytes and returns where they start; may replace the buffer, so callers read `#buf` after calling it. */
  #room(n: number): number {
    if (this.#len + n > this.#buf.length) {
      const next = Buffer.alloc(Math.max(this.#buf.length * 2, this.#len + n));
      this.#buf.copy(next, 0, 0, this.#len);
      this.#buf = next;
    }
    const at = this.#len;
    this.#len += n;
    return at;
  }

  u8(v: number, field: string): this {
    checkUint(v, 0xff, field);
    const at = this.#room(1);
    this.#buf[at] = v;
    return this;
  }

  u16(v: number, field: string): this {
    checkUint(v, 0xffff, field);
    const at = this.#room(2);
    this.#buf.writeUInt16BE(v, at);
    return this;
  }

  u32(v: number, field: string): this {
    checkUint(v, 0xffffffff, field);
    const at = this.#room(4);
    this.#buf.writeUInt32BE(v, at);
    return this;
  }

  u64(v: bigint, field: string): this {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new EncodeError(`${field} must be a bigint in 0..2^64-1, got ${String(v)}`);
    const at = this.#room(8);
    this.#buf.writeBigUInt64BE(v, at);
    return this;
  }

  zeros(n: number): this {
    this.#room(n);
    return this;
  }

  bytes(b: Uint8Array): this {
    const at = this.#room(b.length);
    this.#buf.set(b, at);
    return this;
  }

  /** A NUL-padded string of exactly n bytes (at most n-1 characters, so it stays terminated). */
  string(s: string, n: number, field: string): this {
    const b = Buffer.from(s, 'latin1');
    if (b.length >= n) throw new EncodeError(`${field} "${s}" is longer than ${n - 1} bytes`);
    const at = this.#room(n);
    this.#buf.set(b, at);
    return this;
  }

  /** Zero bytes up to the next multiple of 8. */
  pad8(): this {
    return this.zeros((8 - (this.#len % 8)) % 8);
  }

  /** Overwrite a u16 already written (a length known only afterwards). */
  patchU16(at: number, v: number, field: string): void {
    checkUint(v, 0xffff, field);
    this.#buf.writeUInt16BE(v, at);
  }

  finish(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

function checkUint(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new EncodeError(`${field} must be an integer in 0..${max}, got ${String(v)}`);
}

/** Bytes needed to pad n to a multiple of 8. */
export function pad8(n: number): number {
  return (8 - (n % 8)) % 8;
}
