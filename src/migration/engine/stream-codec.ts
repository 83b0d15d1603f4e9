/**
 * The migration stream, version 3 (docs/migration-protocol.md); version 1
 * streams (no synchronous disk replication records), version 2 (no image
 * chunk records) and version 3 (no catch-up marks) are still accepted. A
 * sender writes the oldest version that has what its stream uses: 4 when it
 * sends catch-up marks (the hello's `catchUp` flag: every socket migration),
 * 3 when it sends image chunks (the `images` flag), 2 otherwise.
 *
 *   record  := length u32be (of kind..end) | kind u8 | body
 *   kind    low 7 bits the record type, high bit set = a disk block (else a memory page)
 *
 * Stages: `encodeRecord` turns a record into bytes; `recordSize` says how
 * many bytes it would take without building them (the emulated link charges
 * exactly this); `RecordDecoder` is an incremental state machine that accepts
 * bytes in any chunking, bounds every length, and turns bad input into a
 * MigrationDecodeError (one subclass per failure, each with its stable
 * code) — it never throws.
 */
import { PAGE_SIZE, isSynthContent, type ContentRepresentation, type PageContent, type SynthContent } from '../guest.ts';
import { CHUNK_SIZE, expandSynth } from './content-model.ts';
import { DELTA_MAP_BYTES, mapChunkCount } from './delta.ts';
import { decodeImageRecord, encodeImageRecord, imageRecordBodySize, type ChunkHeldRecord, type ChunkQueryRecord, type ChunkRecord, type DiskImageRecord } from './stream-image-records.ts';
import { MigrationDecodeError, MigrationVersionError, RecordFlagsError, RecordKindError, RecordLengthError, RecordSizeError, StreamMagicError } from '../errors.ts';

export const STREAM_MAGIC = 0x564e4d47; // 'VNMG'
export const STREAM_VERSION = 4;
/** The version a stream without image chunk records or catch-up marks announces. */
export const PLAIN_STREAM_VERSION = 2;
/** The version a stream with image chunk records and no catch-up marks announces. */
export const IMAGE_STREAM_VERSION = 3;
export { CHUNK_DIGEST_BYTES, MAX_CHUNK_QUERY } from './stream-image-records.ts';
export type { ChunkHeldRecord, ChunkQueryRecord, ChunkRecord } from './stream-image-records.ts';
/** Oldest version a receiver accepts (version 1 lacks only the sync and disk-ack records). */
export const MIN_STREAM_VERSION = 1;
export const MAX_DEVICE_STATE = 1 << 20;
export const MAX_RECORD = MAX_DEVICE_STATE + 64;
const MAX_NAME = 255;

export const enum Kind {
  Hello = 0x01,
  Iteration = 0x02,
  Full = 0x10,
  Zero = 0x11,
  Ref = 0x12,
  Delta = 0x13,
  Device = 0x20,
  Pause = 0x21,
  Done = 0x22,
  Abort = 0x23,
  Sync = 0x24,
  Mark = 0x28,
  Ack = 0x30,
  DiskAck = 0x31,
  Applied = 0x33,
}
const DISK_BIT = 0x80;

export type Space = 'mem' | 'disk';

export interface HelloRecord {
  readonly t: 'hello';
  readonly name: string;
  readonly pageCount: number;
  readonly blockCount: number;
  readonly rule: string;
  /** The destination keeps the image paused (checkpoint) instead of resuming. */
  readonly keep: boolean;
  /** The stream may carry zero, ref and delta records (else full pages only): the receiver keeps its cache. */
  readonly optimized: boolean;
  /** (v3) The stream may carry chunk records: disk spans the destination fills from its own image chunk store. */
  readonly images?: boolean;
  /** (v4) The sender sends catch-up marks: answer each with `applied`. */
  readonly catchUp?: boolean;
}
export interface IterationRecord { readonly t: 'iter'; readonly seq: number; readonly iteration: number; readonly phase: number }
export interface FullRecord { readonly t: 'full'; readonly seq: number; readonly space: Space; readonly index: number; readonly content: PageContent }
export interface ZeroRecord { readonly t: 'zero'; readonly seq: number; readonly space: Space; readonly index: number }
export interface RefRecord { readonly t: 'ref'; readonly seq: number; readonly space: Space; readonly index: number; readonly hi: number; readonly lo: number }
/**
 * A delta: `map` names the changed chunks; bytes streams carry `xor`, the
 * emulated synthetic stream carries `next` (the resulting descriptor) instead.
 */
export interface DeltaRecord {
  readonly t: 'delta';
  readonly seq: number;
  readonly space: Space;
  readonly index: number;
  readonly map: Uint32Array;
  readonly xor: Uint8Array | undefined;
  readonly next: SynthContent | undefined;
}
export interface DeviceRecord { readonly t: 'device'; readonly seq: number; readonly state: Uint8Array }
export interface PauseRecord { readonly t: 'pause'; readonly seq: number }
export interface DoneRecord { readonly t: 'done'; readonly seq: number; readonly memDigest: string; readonly diskDigest: string; readonly deviceDigest: string }
export interface AbortRecord { readonly t: 'abort'; readonly seq: number; readonly reason: string }
/** Receiver to sender: the image is verified (ok) or refused, with the error code. */
export interface AckRecord { readonly t: 'ack'; readonly ok: boolean; readonly code: string }
/** Sender to receiver (v2): from here on the disk is replicated synchronously; acknowledge every disk record applied. */
export interface SyncRecord { readonly t: 'sync'; readonly seq: number }
/** Receiver to sender (v2): every disk record with sequence number up to `seq` is applied (cumulative). */
export interface DiskAckRecord { readonly t: 'disk-ack'; readonly seq: number }
/** Sender to receiver (v4): answer with `applied` once every record up to this one is applied (the sender's catch-up before it pauses). */
export interface MarkRecord { readonly t: 'mark'; readonly seq: number }
/** Receiver to sender (v4): every record with sequence number up to `seq` (a mark's) is applied. */
export interface AppliedRecord { readonly t: 'applied'; readonly seq: number }

export type PageRecord = FullRecord | ZeroRecord | RefRecord | DeltaRecord;
export type MigrationRecord = HelloRecord | IterationRecord | PageRecord | DeviceRecord | PauseRecord | DoneRecord | AbortRecord | SyncRecord | MarkRecord | AckRecord | DiskAckRecord | AppliedRecord
  | ChunkRecord | ChunkQueryRecord | ChunkHeldRecord | DiskImageRecord;

const HEAD = 5; // length + kind
const SEQ_INDEX = 8;

/** Encoded size of a record in bytes, including its length prefix. */
export function recordSize(r: MigrationRecord): number {
  switch (r.t) {
    case 'hello': return HEAD + 4 + 2 + 1 + 4 + 4 + 1 + Buffer.byteLength(r.name) + 1 + Buffer.byteLength(r.rule);
    case 'iter': return HEAD + 4 + 4 + 1;
    case 'full': return HEAD + SEQ_INDEX + PAGE_SIZE;
    case 'zero': return HEAD + SEQ_INDEX;
    case 'ref': return HEAD + SEQ_INDEX + 8;
    case 'delta': return HEAD + SEQ_INDEX + DELTA_MAP_BYTES + CHUNK_SIZE * mapChunkCount(r.map);
    case 'device': return HEAD + 4 + r.state.length;
    case 'pause': return HEAD + 4;
    case 'done': return HEAD + 4 + 24;
    case 'abort': return HEAD + 4 + 1 + Math.min(255, Buffer.byteLength(r.reason));
    case 'sync': return HEAD + 4;
    case 'mark': return HEAD + 4;
    case 'applied': return HEAD + 4;
    case 'ack': return HEAD + 1 + 1 + Buffer.byteLength(r.code);
    case 'disk-ack': return HEAD + 4;
    case 'chunk': case 'chunk-query': case 'chunk-held': case 'disk-image': return HEAD + imageRecordBodySize(r);
  }
}

export const FULL_RECORD_SIZE = HEAD + SEQ_INDEX + PAGE_SIZE;

function hexTo8(hex: string, out: Buffer, off: number): void {
  const h = hex.padStart(16, '0').slice(-16);
  for (let i = 0; i < 8; i++) out[off + i] = Number.parseInt(h.slice(i * 2, i * 2 + 2), 16) || 0;
}

function hexFrom8(b: Buffer, off: number): string {
  return b.subarray(off, off + 8).toString('hex');
}

/**
 * Bytes of one record. Synthetic contents are expanded to their bytes; a
 * synthetic delta needs the destination's current copy, `old`, to compute
 * its XOR (the real-socket path of a synthetic guest).
 */
export function encodeRecord(r: MigrationRecord, old?: SynthContent): Buffer {
  const size = recordSize(r);
  const b = Buffer.allocUnsafe(size);
  b.writeUInt32BE(size - 4, 0);
  const space = 'space' in r && r.space === 'disk' ? DISK_BIT : 0;
  let o = 5;
  switch (r.t) {
    case 'hello': {
      b[4] = Kind.Hello;
      b.writeUInt32BE(STREAM_MAGIC, o); o += 4;
      b.writeUInt16BE(r.catchUp === true ? STREAM_VERSION : r.images === true ? IMAGE_STREAM_VERSION : PLAIN_STREAM_VERSION, o); o += 2;
      b[o++] = (r.keep ? 1 : 0) | (r.optimized ? 2 : 0) | (r.images === true ? 4 : 0) | (r.catchUp === true ? 8 : 0);
      b.writeUInt32BE(r.pageCount, o); o += 4;
      b.writeUInt32BE(r.blockCount, o); o += 4;
      const n = Buffer.from(r.name);
      b[o++] = n.length; n.copy(b, o); o += n.length;
      const ru = Buffer.from(r.rule);
      b[o++] = ru.length; ru.copy(b, o);
      return b;
    }
    case 'iter':
      b[4] = Kind.Iteration; b.writeUInt32BE(r.seq, 5); b.writeUInt32BE(r.iteration, 9); b[13] = r.phase; return b;
    case 'full': {
      b[4] = Kind.Full | space; b.writeUInt32BE(r.seq, 5); b.writeUInt32BE(r.index, 9);
      const bytes = isSynthContent(r.content) ? expandSynth(r.content) : r.content;
      b.set(bytes.subarray(0, PAGE_SIZE), 13);
      return b;
    }
    case 'zero':
      b[4] = Kind.Zero | space; b.writeUInt32BE(r.seq, 5); b.writeUInt32BE(r.index, 9); return b;
    case 'ref':
      b[4] = Kind.Ref | space; b.writeUInt32BE(r.seq, 5); b.writeUInt32BE(r.index, 9);
      b.writeUInt32BE(r.hi >>> 0, 13); b.writeUInt32BE(r.lo >>> 0, 17);
      return b;
    case 'delta': {
      b[4] = Kind.Delta | space; b.writeUInt32BE(r.seq, 5); b.writeUInt32BE(r.index, 9);
      for (let w = 0; w < 4; w++) b.writeUInt32BE((r.map[w] ?? 0) >>> 0, 13 + w * 4);
      let xor = r.xor;
      if (xor === undefined) xor = synthXor(r.map, old, r.next);
      b.set(xor, 13 + DELTA_MAP_BYTES);
      return b;
    }
    case 'device':
      b[4] = Kind.Device; b.writeUInt32BE(r.seq, 5); b.set(r.state, 9); return b;
    case 'pause':
      b[4] = Kind.Pause; b.writeUInt32BE(r.seq, 5); return b;
    case 'done':
      b[4] = Kind.Done; b.writeUInt32BE(r.seq, 5);
      hexTo8(r.memDigest, b, 9); hexTo8(r.diskDigest, b, 17); hexTo8(r.deviceDigest, b, 25);
      return b;
    case 'abort': {
      b[4] = Kind.Abort; b.writeUInt32BE(r.seq, 5);
      const m = Buffer.from(r.reason).subarray(0, 255);
      b[9] = m.length; m.copy(b, 10);
      return b.subarray(0, 10 + m.length);
    }
    case 'sync':
      b[4] = Kind.Sync; b.writeUInt32BE(r.seq, 5); return b;
    case 'mark':
      b[4] = Kind.Mark; b.writeUInt32BE(r.seq, 5); return b;
    case 'applied':
      b[4] = Kind.Applied; b.writeUInt32BE(r.seq, 5); return b;
    case 'ack': {
      b[4] = Kind.Ack; b[5] = r.ok ? 1 : 0;
      const c = Buffer.from(r.code);
      b[6] = c.length; c.copy(b, 7);
      return b;
    }
    case 'disk-ack':
      b[4] = Kind.DiskAck; b.writeUInt32BE(r.seq, 5); return b;
    case 'chunk': case 'chunk-query': case 'chunk-held': case 'disk-image':
      return encodeImageRecord(r, b);
  }
}

function synthXor(map: Uint32Array, old: SynthContent | undefined, next: SynthContent | undefined): Uint8Array {
  const n = mapChunkCount(map);
  const out = new Uint8Array(n * CHUNK_SIZE);
  if (old === undefined || next === undefined) return out;
  const a = expandSynth(old);
  const c = expandSynth(next);
  let o = 0;
  for (let k = 0; k < 128; k++) {
    if (((map[k >>> 5] ?? 0) & (1 << (k & 31))) === 0) continue;
    for (let i = k * CHUNK_SIZE; i < (k + 1) * CHUNK_SIZE; i++) out[o++] = (a[i] ?? 0) ^ (c[i] ?? 0);
  }
  return out;
}

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

function need(body: Buffer, n: number, what: string): RecordSizeError | undefined {
  return body.length === n ? undefined : new RecordSizeError(`${what} record of ${body.length} bytes, expected ${n}`);
}

/** Decodes one record body (kind byte onwards). Total: returns an error, never throws. */
export function decodeBody(body: Buffer): MigrationRecord | MigrationDecodeError {
  const kindByte = body[0] ?? 0;
  const kind = kindByte & 0x7f;
  const space: Space = (kindByte & DISK_BIT) !== 0 ? 'disk' : 'mem';
  const pageKind = kind === Kind.Full || kind === Kind.Zero || kind === Kind.Ref || kind === Kind.Delta;
  if ((kindByte & DISK_BIT) !== 0 && !pageKind) return new RecordKindError(kindByte, `kind 0x${kindByte.toString(16)} cannot name a disk block`);
  const u32 = (o: number): number => body.readUInt32BE(o);
  switch (kind) {
    case Kind.Hello: {
      if (body.length < 1 + 4 + 2 + 1 + 8 + 2) return new RecordSizeError('hello too short');
      if (u32(1) !== STREAM_MAGIC) return new StreamMagicError();
      const version = body.readUInt16BE(5);
      if (version < MIN_STREAM_VERSION || version > STREAM_VERSION) return new MigrationVersionError(version, STREAM_VERSION);
      const flags = body[7] ?? 0;
      if ((flags & ~(version >= 4 ? 15 : version >= 3 ? 7 : 3)) !== 0) return new RecordFlagsError(flags);
      const keep = (flags & 1) !== 0;
      const optimized = (flags & 2) !== 0;
      const images = (flags & 4) !== 0;
      const catchUp = (flags & 8) !== 0;
      const pageCount = u32(8);
      const blockCount = u32(12);
      let o = 16;
      const nl = body[o++] ?? 0;
      if (o + nl + 1 > body.length) return new RecordSizeError('hello name overruns record');
      const name = body.subarray(o, o + nl).toString('utf8'); o += nl;
      const rl = body[o++] ?? 0;
      if (o + rl !== body.length) return new RecordSizeError('hello rule length does not match record');
      const rule = body.subarray(o, o + rl).toString('utf8');
      if (nl > MAX_NAME) return new RecordSizeError('name too long');
      return { t: 'hello', name, pageCount, blockCount, rule, keep, optimized, ...(images ? { images } : {}), ...(catchUp ? { catchUp } : {}) };
    }
    case Kind.Iteration: return need(body, 10, 'iteration') ?? { t: 'iter', seq: u32(1), iteration: u32(5), phase: body[9] ?? 0 };
    case Kind.Full: return need(body, 9 + PAGE_SIZE, 'full') ?? { t: 'full', seq: u32(1), space, index: u32(5), content: new Uint8Array(body.subarray(9)) };
    case Kind.Zero: return need(body, 9, 'zero') ?? { t: 'zero', seq: u32(1), space, index: u32(5) };
    case Kind.Ref: return need(body, 17, 'ref') ?? { t: 'ref', seq: u32(1), space, index: u32(5), hi: u32(9), lo: u32(13) };
    case Kind.Delta: {
      if (body.length < 9 + DELTA_MAP_BYTES) return new RecordSizeError('delta too short');
      const map = new Uint32Array([u32(9), u32(13), u32(17), u32(21)]);
      const n = mapChunkCount(map);
      const e = need(body, 9 + DELTA_MAP_BYTES + n * CHUNK_SIZE, 'delta');
      if (e !== undefined) return e;
      return { t: 'delta', seq: u32(1), space, index: u32(5), map, xor: new Uint8Array(body.subarray(9 + DELTA_MAP_BYTES)), next: undefined };
    }
    case Kind.Device:
      if (body.length < 5 || body.length - 5 > MAX_DEVICE_STATE) return new RecordSizeError('device state size out of range');
      return { t: 'device', seq: u32(1), state: new Uint8Array(body.subarray(5)) };
    case Kind.Pause: return need(body, 5, 'pause') ?? { t: 'pause', seq: u32(1) };
    case Kind.Done:
      return need(body, 29, 'done') ?? { t: 'done', seq: u32(1), memDigest: hexFrom8(body, 5), diskDigest: hexFrom8(body, 13), deviceDigest: hexFrom8(body, 21) };
    case Kind.Abort: {
      if (body.length < 6 || body.length !== 6 + (body[5] ?? 0)) return new RecordSizeError('abort record size');
      return { t: 'abort', seq: u32(1), reason: body.subarray(6).toString('utf8') };
    }
    case Kind.Sync: return need(body, 5, 'sync') ?? { t: 'sync', seq: u32(1) };
    case Kind.DiskAck: return need(body, 5, 'disk-ack') ?? { t: 'disk-ack', seq: u32(1) };
    case Kind.Mark: return need(body, 5, 'mark') ?? { t: 'mark', seq: u32(1) };
    case Kind.Applied: return need(body, 5, 'applied') ?? { t: 'applied', seq: u32(1) };
    case Kind.Ack: {
      if (body.length < 3 || body.length !== 3 + (body[2] ?? 0) || (body[1] ?? 2) > 1) return new RecordSizeError('ack record size');
      return { t: 'ack', ok: body[1] === 1, code: body.subarray(3).toString('utf8') };
    }
    default:
      return decodeImageRecord(kind, body) ?? new RecordKindError(kindByte, `unknown record kind 0x${kindByte.toString(16)}`);
  }
}
