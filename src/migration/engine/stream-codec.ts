/**
 * The migration stream, version 4 (docs/migration-protocol.md); version 1
 * streams (no synchronous disk replication records), version 2 (no image
 * chunk records) and version 3 (no catch-up marks) are still accepted. A
 * sender writes the oldest version that has what its stream uses: 4 when it
 * sends catch-up marks (the hello's `catchUp` flag: every socket migration),
 * 3 when it sends image chunks (the `images` flag), 2 otherwise. Each
 * record is its length (u32be) then its kind byte and body (stream-records.ts).
 *
 * Stages: `encodeRecord` turns a record into bytes; `recordSize` says how
 * many bytes it would take without building them (the emulated link charges
 * exactly this); `RecordDecoder` is an incremental state machine that accepts
 * bytes in any chunking, bounds every length, and turns bad input into a
 * MigrationDecodeError (one subclass per failure, each with its stable
 * code) — it never throws.
 *
 * This file is the framing and the decoder's state machine; the records and
 * limits are in stream-records.ts, one record's bytes (encode, size, decode)
 * in stream-record-codec.ts, the image chunk records in
 * stream-image-records.ts.
 */
import type { ContentRepresentation } from '../guest.ts';
import { MigrationDecodeError, RecordLengthError } from '../errors.ts';
import { decodeBody } from './stream-record-codec.ts';
import { MAX_RECORD, type MigrationRecord } from './stream-records.ts';

export interface DecodeLimits {
  /** Largest record accepted (length field), default MAX_RECORD. */
  readonly maxRecord?: number;
}

export type DecodeResult = { readonly records: MigrationRecord[]; readonly error: MigrationDecodeError | undefined };

const LENGTH_BYTES = 4;

/**
 * Incremental decoder. `push` returns the records completed by this chunk;
 * after the first error it returns that error again and decodes nothing more.
 * Bytes-representation only: a decoded full page is a Uint8Array, a delta
 * carries `xor`.
 *
 * Stages, as in src/dataplane/frame-codec.ts: length (4 bytes, may span
 * chunks) → checked against the limit before any body byte is held → body:
 * decoded in place when it lies inside the chunk (decodeBody copies what it
 * keeps), else gathered into one buffer of the record's exact length. Every
 * byte pushed is copied at most once, so any chunking costs linear work
 * (`copiedBytes` counts it).
 */
export class RecordDecoder {
  readonly #max: number;
  readonly #head = Buffer.alloc(LENGTH_BYTES);
  #headFill = 0;
  /** The record being gathered across chunks, of its exact length. */
  #body: Buffer | undefined;
  #bodyFill = 0;
  #copied = 0;
  #error: MigrationDecodeError | undefined;
  readonly representation: ContentRepresentation = 'bytes';

  constructor(limits: DecodeLimits = {}) {
    this.#max = limits.maxRecord ?? MAX_RECORD;
  }

  get error(): MigrationDecodeError | undefined {
    return this.#error;
  }

  /** Bytes held waiting for the rest of a record. */
  get buffered(): number {
    return this.#body !== undefined ? LENGTH_BYTES + this.#bodyFill : this.#headFill;
  }

  /** Bytes copied into held buffers so far; never more than the bytes pushed. */
  get copiedBytes(): number {
    return this.#copied;
  }

  push(chunk: Uint8Array): DecodeResult {
    const records: MigrationRecord[] = [];
    if (this.#error !== undefined) return { records, error: this.#error };
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const end = buf.length;
    let off = 0;
    while (off < end && this.#error === undefined) {
      if (this.#body === undefined) {
        let len: number;
        if (this.#headFill === 0 && end - off >= LENGTH_BYTES) {
          len = buf.readUInt32BE(off);
          off += LENGTH_BYTES;
        } else {
          const n = Math.min(LENGTH_BYTES - this.#headFill, end - off);
          buf.copy(this.#head, this.#headFill, off, off + n);
          this.#copied += n;
          this.#headFill += n;
          off += n;
          if (this.#headFill < LENGTH_BYTES) break;
          this.#headFill = 0;
          len = this.#head.readUInt32BE(0);
        }
        if (len < 1 || len > this.#max) {
          this.#fail(new RecordLengthError(len, this.#max));
          break;
        }
        if (end - off >= len) {
          this.#record(buf.subarray(off, off + len), records);
          off += len;
          continue;
        }
        this.#body = Buffer.allocUnsafe(len);
        this.#bodyFill = 0;
      }
      const body = this.#body;
      const n = Math.min(body.length - this.#bodyFill, end - off);
      buf.copy(body, this.#bodyFill, off, off + n);
      this.#copied += n;
      this.#bodyFill += n;
      off += n;
      if (this.#bodyFill === body.length) {
        this.#body = undefined;
        this.#record(body, records);
      }
    }
    return { records, error: this.#error };
  }

  #record(body: Buffer, records: MigrationRecord[]): void {
    const r = decodeBody(body);
    if (r instanceof MigrationDecodeError) this.#fail(r);
    else records.push(r);
  }

  #fail(err: MigrationDecodeError): void {
    this.#error = err;
    this.#body = undefined;
    this.#headFill = 0;
  }
}
