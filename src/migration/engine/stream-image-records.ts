/**
 * The migration stream's image chunk records (version 3,
 * docs/migration-protocol.md "Image chunks"), encoded and decoded for
 * stream-codec.ts, which owns the framing (length u32 | kind u8 | body):
 *
 *   0x25 chunk        seq u32, first u32, count u32 (≥ 1), digest 81 bytes
 *   0x26 chunk-query  n u32 (≤ MAX_CHUNK_QUERY), n digests of 81 bytes
 *   0x32 chunk-held   n u32, n bytes of bitmap (bit i of byte i>>3, low bit first)
 *   0x27 disk-image   m u32 (≤ MAX_DISK_IMAGE_MANIFEST), m bytes of the image version's manifest
 *                     (JSON, UTF-8: checked by the host, src/images/manifest.ts), n u32, n bytes
 *                     of bitmap (≤ MAX_CHUNK_QUERY bits): the chunks that hold the VM's own writes
 *
 * A digest is `<xxh64>-<sha256>` in lower-case hex (src/images/chunk-digest.ts);
 * anything else is a RecordSizeError. Decoding is total: an error, never a throw.
 */
import type { PageContent } from '../guest.ts';
import { MigrationDecodeError, RecordSizeError } from '../errors.ts';

/** An image chunk digest on the wire: `<xxh64>-<sha256>` in hex. */
export const CHUNK_DIGEST_BYTES = 81;
/** Most digests one chunk-query may ask about (its record stays under the stream's MAX_RECORD). */
export const MAX_CHUNK_QUERY = 10_000;
const DIGEST_RE = /^[0-9a-f]{16}-[0-9a-f]{64}$/;
const KIND_CHUNK = 0x25;
const KIND_QUERY = 0x26;
const KIND_HELD = 0x32;
const KIND_DISK_IMAGE = 0x27;
/** Most bytes of the manifest a disk-image record carries (a manifest of 10,000 chunks is about 0.85 MB). */
export const MAX_DISK_IMAGE_MANIFEST = 1_000_000;

/**
 * (v3) Disk blocks [first, first + count) hold image chunk `digest`: the
 * destination fills them from its own chunk store (verified), nothing of
 * them crosses the link. `blocks` is what the receiving driver read there
 * (never on the wire).
 */
export interface ChunkRecord {
  readonly t: 'chunk';
  readonly seq: number;
  readonly first: number;
  readonly count: number;
  readonly digest: string;
  readonly blocks?: readonly PageContent[];
}
/** (v3) Sender to receiver, before the hello: which of these image chunks does the destination hold intact? */
export interface ChunkQueryRecord { readonly t: 'chunk-query'; readonly digests: readonly string[] }
/** (v3) Receiver to sender: the answer, one bit per digest asked (bit i of byte i>>3, low bit first). */
export interface ChunkHeldRecord { readonly t: 'chunk-held'; readonly held: Uint8Array }

/**
 * (v3) Sender to receiver, before the hello: the disk is this image version
 * (`manifest`, JSON), copy-on-write; `own` marks the chunks holding the VM's
 * own writes (bit i of byte i>>3). The destination keeps it with the VM, so
 * its next move again sends only what that destination lacks.
 */
export interface DiskImageRecord { readonly t: 'disk-image'; readonly manifest: string; readonly own: Uint8Array }

export type ImageRecord = ChunkRecord | ChunkQueryRecord | ChunkHeldRecord | DiskImageRecord;

/** Bytes of the record after its length prefix and kind (its body). */
export function imageRecordBodySize(r: ImageRecord): number {
  switch (r.t) {
    case 'chunk': return 4 + 4 + 4 + CHUNK_DIGEST_BYTES;
    case 'chunk-query': return 4 + CHUNK_DIGEST_BYTES * r.digests.length;
    case 'chunk-held': return 4 + r.held.length;
    case 'disk-image': return 4 + Buffer.byteLength(r.manifest) + 4 + r.own.length;
  }
}

function writeDigest(b: Buffer, d: string, at: number): void {
  b.write(d.padEnd(CHUNK_DIGEST_BYTES, '0').slice(0, CHUNK_DIGEST_BYTES), at, 'latin1');
}

/** Fills `b` (length prefix already written) from the kind byte on. */
export function encodeImageRecord(r: ImageRecord, b: Buffer): Buffer {
  switch (r.t) {
    case 'chunk':
      b[4] = KIND_CHUNK; b.writeUInt32BE(r.seq, 5); b.writeUInt32BE(r.first, 9); b.writeUInt32BE(r.count, 13);
      writeDigest(b, r.digest, 17);
      return b;
    case 'chunk-query':
      b[4] = KIND_QUERY; b.writeUInt32BE(r.digests.length, 5);
      r.digests.forEach((d, i) => writeDigest(b, d, 9 + i * CHUNK_DIGEST_BYTES));
      return b;
    case 'chunk-held':
      b[4] = KIND_HELD; b.writeUInt32BE(r.held.length, 5); b.set(r.held, 9);
      return b;
    case 'disk-image': {
      b[4] = KIND_DISK_IMAGE;
      const m = b.write(r.manifest, 9, 'utf8');
      b.writeUInt32BE(m, 5);
      b.writeUInt32BE(r.own.length, 9 + m);
      b.set(r.own, 13 + m);
      return b;
    }
  }
}

/** The record of an image kind (`body` from the kind byte on); undefined for any other kind. */
export function decodeImageRecord(kind: number, body: Buffer): ImageRecord | MigrationDecodeError | undefined {
  const size = (n: number, what: string): RecordSizeError | undefined => (body.length === n ? undefined : new RecordSizeError(`${what} record of ${body.length} bytes, expected ${n}`));
  switch (kind) {
    case KIND_CHUNK: {
      const e = size(13 + CHUNK_DIGEST_BYTES, 'chunk');
      if (e !== undefined) return e;
      const digest = body.subarray(13).toString('latin1');
      if (!DIGEST_RE.test(digest)) return new RecordSizeError('chunk record does not carry a chunk digest');
      if (body.readUInt32BE(9) === 0) return new RecordSizeError('chunk record of no blocks');
      return { t: 'chunk', seq: body.readUInt32BE(1), first: body.readUInt32BE(5), count: body.readUInt32BE(9), digest };
    }
    case KIND_QUERY: {
      if (body.length < 5) return new RecordSizeError('chunk-query too short');
      const n = body.readUInt32BE(1);
      if (n > MAX_CHUNK_QUERY) return new RecordSizeError(`chunk-query of ${n} digests (at most ${MAX_CHUNK_QUERY})`);
      const e = size(5 + n * CHUNK_DIGEST_BYTES, 'chunk-query');
      if (e !== undefined) return e;
      const digests: string[] = [];
      for (let i = 0; i < n; i++) {
        const d = body.subarray(5 + i * CHUNK_DIGEST_BYTES, 5 + (i + 1) * CHUNK_DIGEST_BYTES).toString('latin1');
        if (!DIGEST_RE.test(d)) return new RecordSizeError(`chunk-query digest ${i} is not a chunk digest`);
        digests.push(d);
      }
      return { t: 'chunk-query', digests };
    }
    case KIND_HELD: {
      if (body.length < 5) return new RecordSizeError('chunk-held too short');
      return size(5 + body.readUInt32BE(1), 'chunk-held') ?? { t: 'chunk-held', held: new Uint8Array(body.subarray(5)) };
    }
    case KIND_DISK_IMAGE: {
      if (body.length < 9) return new RecordSizeError('disk-image too short');
      const m = body.readUInt32BE(1);
      if (m > MAX_DISK_IMAGE_MANIFEST) return new RecordSizeError(`disk-image manifest of ${m} bytes (at most ${MAX_DISK_IMAGE_MANIFEST})`);
      if (body.length < 9 + m) return new RecordSizeError('disk-image shorter than its manifest');
      const n = body.readUInt32BE(5 + m);
      if (n > Math.ceil(MAX_CHUNK_QUERY / 8)) return new RecordSizeError(`disk-image bitmap of ${n} bytes (at most ${Math.ceil(MAX_CHUNK_QUERY / 8)})`);
      const e = size(9 + m + n, 'disk-image');
      if (e !== undefined) return e;
      return { t: 'disk-image', manifest: body.subarray(5, 5 + m).toString('utf8'), own: new Uint8Array(body.subarray(9 + m)) };
    }
    default:
      return undefined;
  }
}
