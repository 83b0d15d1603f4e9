/**
 * A chunk's identity. Two hashes, for two jobs:
 *   key     xxh64 (xxhash-wasm, seed 0; as the migration engine's page cache,
 *           src/migration/engine/content-key.ts): cheap, names the file and
 *           finds duplicates;
 *   sha256  the cryptographic digest a chunk is verified against whenever it
 *           crosses a site or is read back from disk, since a 64-bit
 *           non-cryptographic hash can be forged by whoever serves the bytes.
 * The digest string is `<key>-<sha256>` (16 + 1 + 64 hex characters).
 */
import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';

export const DIGEST_PATTERN = /^[0-9a-f]{16}-[0-9a-f]{64}$/;

export interface ChunkHasher {
  digest(bytes: Uint8Array): string;
}

let hasher: Awaited<ReturnType<typeof xxhash>> | undefined;

/** Loads xxhash-wasm once per process. */
export async function createChunkHasher(): Promise<ChunkHasher> {
  hasher ??= await xxhash();
  const h = hasher;
  return {
    digest(bytes: Uint8Array): string {
      const key = h.h64Raw(bytes, 0n).toString(16).padStart(16, '0');
      return `${key}-${createHash('sha256').update(bytes).digest('hex')}`;
    },
  };
}

export function isChunkDigest(s: unknown): s is string {
  return typeof s === 'string' && DIGEST_PATTERN.test(s);
}
