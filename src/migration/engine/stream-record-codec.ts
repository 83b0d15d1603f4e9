/**
 * One migration stream record to bytes and back (the records:
 * stream-records.ts; the framing and the incremental decoder around this:
 * stream-codec.ts).
 *
 *   encodeRecord  a record's bytes, length prefix included; synthetic
 *                 contents expanded to their bytes.
 *   recordSize    how many bytes it would take, without building them (the
 *                 emulated link charges exactly this).
 *   decodeBody    one record body (kind byte onwards), every size checked:
 *                 total, a MigrationDecodeError (one subclass per failure)
 *                 rather than a throw.
 */
import { PAGE_SIZE, isSynthContent, type SynthContent } from '../guest.ts';
import { CHUNK_SIZE, expandSynth } from './content-model.ts';
import { DELTA_MAP_BYTES, mapChunkCount } from './delta.ts';
import { decodeImageRecord, encodeImageRecord, imageRecordBodySize } from './stream-image-records.ts';
import { MigrationDecodeError, MigrationVersionError, RecordFlagsError, RecordKindError, RecordSizeError, StreamMagicError } from '../errors.ts';
import { IMAGE_STREAM_VERSION, Kind, MAX_DEVICE_STATE, MIN_STREAM_VERSION, PLAIN_STREAM_VERSION, STREAM_MAGIC, STREAM_VERSION, type MigrationRecord, type Space } from './stream-records.ts';

const MAX_NAME = 255;
/** The high bit of the kind byte: the record names a disk block. */
const DISK_BIT = 0x80;
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
