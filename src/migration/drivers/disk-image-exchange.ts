/**
 * The image side of a migration over sockets (stream version 3,
 * docs/migration-protocol.md "Image chunks"): a VM whose disk is a base
 * image plus its own writes moves only what the destination's chunk store
 * lacks.
 *
 *   sender     before the hello: disk-image {manifest, own} when the disk
 *              can describe itself (a VM's disk from an image: the
 *              destination keeps it with the VM for its next move), then
 *              chunk-query {the image's distinct digests}
 *              on the first channel; waits for chunk-held; then the bulk copy
 *              sends a chunk record, not blocks, for each span the
 *              destination holds and the VM has not changed (sender-disk.ts)
 *   receiver   disk-image → kept for the VM's runtime; chunk-query → each digest read and verified in the local store
 *              (a corrupted copy is removed there and answered "not held", so
 *              its blocks come over the link) → chunk-held; a chunk record →
 *              the chunk read and verified again, split into blocks, applied
 *              in sequence order like any other record
 */
import { BLOCK_SIZE, type PageContent } from '../guest.ts';
import { MAX_CHUNK_QUERY, type ChunkHeldRecord, type ChunkQueryRecord, type ChunkRecord, type DiskImageRecord } from '../engine/stream-image-records.ts';
import type { SenderDiskImage } from '../engine/sender-disk.ts';
import { MigrationProtocolError } from '../errors.ts';

/** The sender's image disk before the destination answered: `held` comes from the chunk-held record. */
export interface DiskImageSource extends Omit<SenderDiskImage, 'held'> {
  /**
   * Called once the destination answered (`held`: what it holds; empty when it
   * did not answer), before the bulk copy: a disk whose blocks are not all
   * present yet (a copy-on-write disk read on demand) brings in what the
   * destination cannot fill itself.
   */
  prepare?(held: ReadonlySet<string>, signal?: AbortSignal): Promise<void>;
  /** What the disk is made from, sent before the query (a disk-image record): the destination keeps it with the VM. */
  describe?(): Omit<DiskImageRecord, 't'>;
}

/** The destination's chunk store as the receiving driver reads it (src/images' ChunkStore fits). */
export interface LocalChunks {
  /** Whether the chunk is held intact (read and verified; a corrupted copy is removed and answered false). */
  holdsIntact(digest: string): Promise<boolean>;
  /** The chunk's bytes, verified (throws when absent or corrupted). */
  get(digest: string): Promise<Uint8Array>;
}

/** The query for an image's distinct chunks (at most MAX_CHUNK_QUERY: the rest are simply sent). */
export function chunkQuery(image: DiskImageSource): ChunkQueryRecord {
  return { t: 'chunk-query', digests: [...new Set(image.chunks)].slice(0, MAX_CHUNK_QUERY) };
}

/** The digests an answer says the destination holds. */
export function heldFromAnswer(query: ChunkQueryRecord, answer: ChunkHeldRecord): Set<string> {
  const held = new Set<string>();
  query.digests.forEach((d, i) => { if ((((answer.held[i >> 3] ?? 0) >> (i & 7)) & 1) === 1) held.add(d); });
  return held;
}

/** The receiver's answer: each digest checked in the local store. */
export async function answerChunkQuery(local: LocalChunks, q: ChunkQueryRecord): Promise<ChunkHeldRecord> {
  const held = new Uint8Array(Math.ceil(q.digests.length / 8));
  for (const [i, d] of q.digests.entries()) if (await local.holdsIntact(d)) held[i >> 3]! |= 1 << (i & 7);
  return { t: 'chunk-held', held };
}

/** A chunk record with its blocks read from the local store (verified); the last block of a short chunk is zero-filled. */
export async function withLocalBlocks(local: LocalChunks, rec: ChunkRecord): Promise<ChunkRecord> {
  const bytes = await local.get(rec.digest);
  if (bytes.length > rec.count * BLOCK_SIZE || bytes.length <= (rec.count - 1) * BLOCK_SIZE) {
    throw new MigrationProtocolError(`chunk ${rec.digest} holds ${bytes.length} bytes, not ${rec.count} disk blocks`);
  }
  const blocks: PageContent[] = [];
  for (let i = 0; i < rec.count; i++) {
    const block = new Uint8Array(BLOCK_SIZE);
    block.set(bytes.subarray(i * BLOCK_SIZE, Math.min(bytes.length, (i + 1) * BLOCK_SIZE)));
    blocks.push(block);
  }
  return { ...rec, blocks };
}
