/**
 * An image version: the ordered chunks of a disk image plus the order in
 * which a boot was recorded to read them. A manifest names its chunks by
 * digest only; the bytes live in the sites' chunk stores.
 *
 * `validateManifest` is total: anything that is not a well-formed manifest
 * is a ManifestError naming the field, never a crash.
 */
import type { ChunkHasher } from './chunk-digest.ts';
import { isChunkDigest } from './chunk-digest.ts';
import { ManifestError } from './errors.ts';

export interface ImageManifest {
  readonly imageId: string;
  readonly version: number;
  readonly chunkSize: number;
  /** Bytes in the image (the last chunk may be short). */
  readonly size: number;
  /** Chunk digests in image order. */
  readonly chunks: readonly string[];
  /** Chunk indexes in the order a recorded boot first read them. */
  readonly accessOrder: readonly number[];
}

export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
export const MAX_CHUNKS = 1 << 20;
const IMAGE_ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const KEYS = new Set(['imageId', 'version', 'chunkSize', 'size', 'chunks', 'accessOrder']);

function positiveInt(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v <= max;
}

export function validateManifest(raw: unknown): ImageManifest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ManifestError('(root)', 'not an object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new ManifestError(k, 'unknown key');
  if (typeof o.imageId !== 'string' || !IMAGE_ID.test(o.imageId)) throw new ManifestError('imageId', 'lower-case letters, digits, ".", "_" or "-", at most 63, starting with a letter or digit');
  if (!positiveInt(o.version, Number.MAX_SAFE_INTEGER)) throw new ManifestError('version', 'a positive integer');
  if (!positiveInt(o.chunkSize, MAX_CHUNK_SIZE)) throw new ManifestError('chunkSize', `a positive integer up to ${MAX_CHUNK_SIZE}`);
  if (!Array.isArray(o.chunks) || o.chunks.length > MAX_CHUNKS) throw new ManifestError('chunks', `an array of at most ${MAX_CHUNKS} digests`);
  const chunks = o.chunks as unknown[];
  chunks.forEach((c, i) => {
    if (!isChunkDigest(c)) throw new ManifestError(`chunks[${i}]`, 'not a chunk digest (<xxh64>-<sha256> in hex)');
  });
  const size = o.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ManifestError('size', 'a non-negative integer');
  if (Math.ceil(size / o.chunkSize) !== chunks.length) throw new ManifestError('size', `${size} bytes in chunks of ${o.chunkSize} need ${Math.ceil(size / o.chunkSize)} chunks, not ${chunks.length}`);
  if (!Array.isArray(o.accessOrder)) throw new ManifestError('accessOrder', 'an array of chunk indexes');
  const seen = new Set<number>();
  (o.accessOrder as unknown[]).forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= chunks.length) throw new ManifestError(`accessOrder[${i}]`, `a chunk index below ${chunks.length}`);
    if (seen.has(v)) throw new ManifestError(`accessOrder[${i}]`, `chunk ${v} is listed twice`);
    seen.add(v);
  });
  return Object.freeze({
    imageId: o.imageId,
    version: o.version,
    chunkSize: o.chunkSize,
    size,
    chunks: Object.freeze([...(chunks as string[])]),
    accessOrder: Object.freeze([...(o.accessOrder as number[])]),
  });
}

export interface ChunkedImage {
  readonly manifest: ImageManifest;
  /** The bytes of each chunk, by index. */
  readonly chunkBytes: readonly Uint8Array[];
}

/** Splits an image into chunks and builds its manifest. */
export function chunkImage(
  init: { imageId: string; version: number; chunkSize: number; accessOrder?: readonly number[] },
  image: Uint8Array,
  hasher: ChunkHasher,
): ChunkedImage {
  const chunkBytes: Uint8Array[] = [];
  for (let off = 0; off < image.length; off += init.chunkSize) chunkBytes.push(image.subarray(off, Math.min(off + init.chunkSize, image.length)));
  const manifest = validateManifest({
    imageId: init.imageId,
    version: init.version,
    chunkSize: init.chunkSize,
    size: image.length,
    chunks: chunkBytes.map((b) => hasher.digest(b)),
    accessOrder: [...(init.accessOrder ?? [])],
  });
  return { manifest, chunkBytes };
}
