/**
 * The sender's disk stages: the bulk copy and write-log rounds before the
 * memory phase (ending with the sync record when replication is
 * synchronous), then the replicated guest writes, which go ahead of memory
 * records while they are within their share of the phase's bytes and
 * alternate with memory beyond it. Encoding is the same lock-step content
 * encoder as memory; DiskSync (disk-sync.ts) owns the dirty map, the queue,
 * the pending writes and their acks.
 */
import type { Logger } from 'pino';
import type { Guest } from '../guest.ts';
import type { ContentKeyer } from './content-key.ts';
import { ContentEncoder, type Encoding } from './content-encoder.ts';
import { DiskSync, type DiskReplication } from './disk-sync.ts';
import type { OutRecord, SendLedger } from './send-ledger.ts';

export interface SenderDiskInit {
  readonly guest: Guest;
  readonly keyer: ContentKeyer;
  readonly encoding: Encoding;
  readonly cacheCapacity: number;
  readonly syncThreshold?: number;
  readonly maxRounds?: number;
  readonly replication?: DiskReplication;
  /** Share of the memory phase's bytes replicated writes may take ahead of memory (clamped to [0.05, 1]). */
  readonly share: number;
  readonly logger?: Logger;
  /** The disk is an image the destination's chunk store may already hold (disk-image.ts). */
  readonly image?: SenderDiskImage;
}

/**
 * A disk that is a base image plus the VM's own writes, as the sender sees
 * it: the image's chunks, which of them the destination holds intact (its
 * answer to the chunk-query), and whether a span still holds a chunk's bytes.
 */
export interface SenderDiskImage {
  /** Blocks per image chunk (chunk size / BLOCK_SIZE); chunk i covers blocks from i × chunkBlocks. */
  readonly chunkBlocks: number;
  /** The base image's chunk digests, in image order. */
  readonly chunks: readonly string[];
  /** Digests the destination holds intact. */
  readonly held: ReadonlySet<string>;
  /** Whether blocks [first, first + count) hold exactly the chunk `digest`'s bytes now. */
  matches(first: number, count: number, digest: string): boolean;
}

export class SenderDisk {
  readonly sync: DiskSync;
  readonly encoder: ContentEncoder;
  readonly #guest: Guest;
  readonly #ledger: SendLedger;
  readonly #share: number;
  readonly #image: SenderDiskImage | undefined;
  /** Chunk records sent, and the blocks they covered. */
  readonly imageStats = { chunks: 0, blocks: 0 };

  constructor(init: SenderDiskInit & { readonly disk: NonNullable<Guest['disk']> }, ledger: SendLedger) {
    this.#guest = init.guest;
    this.#ledger = ledger;
    this.#share = Math.min(1, Math.max(0.05, init.share));
    this.#image = init.image !== undefined && init.image.chunkBlocks > 0 && init.image.held.size > 0 ? init.image : undefined;
    const d = init.disk;
    this.encoder = new ContentEncoder({ space: 'disk', count: d.blockCount, representation: d.representation, keyer: init.keyer, encoding: init.encoding, cacheCapacity: Math.min(init.cacheCapacity, d.blockCount) });
    this.sync = new DiskSync(d, {
      ...(init.syncThreshold !== undefined ? { syncThreshold: init.syncThreshold } : {}),
      ...(init.maxRounds !== undefined ? { maxRounds: init.maxRounds } : {}),
      ...(init.replication !== undefined ? { replication: init.replication } : {}),
      ...(init.logger !== undefined ? { logger: init.logger } : {}),
    });
  }

  /** Bulk copy and rounds: sends the next block; false once they are over (after the sync record, when synchronous). */
  copyStep(out: OutRecord[], now: number): boolean {
    const b = this.sync.nextCopyBlock(now);
    if (b < 0) {
      if (this.sync.replication === 'synchronous') this.#ledger.emit(out, { t: 'sync', seq: this.#ledger.seq++ }, 0, 'control');
      return false;
    }
    if (!this.#sendChunk(out, b)) this.#sendBlock(out, b, now);
    return true;
  }

  /**
   * Bulk copy, at the first block of an image chunk the destination holds
   * and the VM has not changed: one chunk record instead of its blocks (the
   * destination fills them from its store). A block written after this is
   * in the write log and goes out in the next round, as any other.
   */
  #sendChunk(out: OutRecord[], b: number): boolean {
    const img = this.#image;
    if (img === undefined || !this.sync.inBulk || b % img.chunkBlocks !== 0) return false;
    const digest = img.chunks[b / img.chunkBlocks];
    if (digest === undefined || !img.held.has(digest)) return false;
    const count = Math.min(img.chunkBlocks, this.sync.disk.blockCount - b);
    if (!img.matches(b, count, digest)) return false;
    this.#ledger.emit(out, { t: 'chunk', seq: this.#ledger.seq++, first: b, count, digest }, 0, 'disk');
    this.sync.skipBulk(count - 1);
    this.imageStats.chunks++;
    this.imageStats.blocks += count;
    return true;
  }

  /** Replication: a queued guest write goes out, if any. `live`: the memory phase runs (its bytes count against the share). */
  sendQueued(out: OutRecord[], now: number, live: boolean): boolean {
    const b = this.sync.nextQueuedBlock();
    if (b < 0) return false;
    const before = this.#ledger.diskBytes;
    this.#sendBlock(out, b, now);
    if (live) this.#ledger.liveDiskBytes += this.#ledger.diskBytes - before;
    return true;
  }

  /** Memory phase: a queued write goes first while replicated writes are within their share of the phase's bytes. */
  first(out: OutRecord[], now: number): boolean {
    const l = this.#ledger;
    if (l.liveDiskBytes > this.#share * (l.liveDiskBytes + l.liveBytes)) return false;
    return this.sendQueued(out, now, true);
  }

  #sendBlock(out: OutRecord[], b: number, now: number): void {
    const disk = this.#guest.disk;
    if (disk === undefined) return;
    const rec = this.encoder.encode(b, disk.readBlock(b), this.#ledger.seq);
    if (rec !== undefined) { this.#ledger.seq++; this.#ledger.emit(out, rec, 0, 'disk'); }
    if (this.sync.synchronous) this.sync.onBlockSent(b, rec?.seq, now);
  }
}
