/**
 * A VM's disk made from an image version, copy-on-write (docs/images.md,
 * "A VM's disk from an image"):
 *
 *   read    the blocks the VM has written come from its own overlay; every
 *           other block is the image's: a chunk not yet here is fetched on
 *           demand (ImageReader: the site's store, else the nearest replica
 *           holding it, verified) and its unwritten blocks filled into the
 *           guest's disk, once
 *   write   goes to the overlay (the guest's disk; the blocks are marked the
 *           VM's own); a block written only in part first gets the image's
 *           bytes around it
 *   trace   the first `bootTrace.chunks` distinct chunks the VM reads within
 *           `bootTrace.withinMs` of its start, in first-read order, handed
 *           once to `onBootTrace` when it ends: the version's boot trace
 *           (`accessOrder`) once published (`vnet ctl images boot-trace`)
 *   migrate `diskImage`: a span that still holds its chunk (no block written)
 *           goes as a chunk record where the destination holds the chunk;
 *           before the bulk copy, `prepare` fills the chunks never read, so
 *           the disk the engine reads (and digests at the end) is whole
 *
 * The guest's disk is the engine's view (what a migration copies); blocks of
 * a chunk never read nor filled are zeros there until `prepare` or a read
 * fills them. A VM that arrived has its whole disk: every chunk is filled,
 * and its own blocks are those of the chunks the migration said held its
 * writes (the disk-image record, `describe`): a chunk is the unit a move
 * sends as a record or as blocks, so nothing is lost by that rounding.
 */
import type { Clock } from '../common/clock.ts';
import type { ChunkFetcher, FetchRecord } from '../images/chunk-fetcher.ts';
import { ImageReader } from '../images/image-reader.ts';
import type { ImageManifest } from '../images/manifest.ts';
import type { DiskImageSource } from '../migration/drivers/disk-image-exchange.ts';
import { BLOCK_SIZE, type GuestDisk } from '../migration/guest.ts';
import { ImageDiskError } from './errors.ts';

export interface BootTraceLimits {
  /** Distinct chunks recorded at most. */
  readonly chunks: number;
  /** Reads after this long from the start are not recorded (ms). */
  readonly withinMs: number;
}

export const DEFAULT_BOOT_TRACE: BootTraceLimits = Object.freeze({ chunks: 64, withinMs: 60_000 });

/** What a VM's disk is: the image version and the blocks that are the VM's own (a migration carries them chunk by chunk, `describe`). */
export interface ImageDiskDescription {
  readonly imageId: string;
  readonly version: number;
  /** Blocks the VM has written, ascending. */
  readonly written: readonly number[];
}

export interface ImageDiskInit {
  readonly manifest: ImageManifest;
  /** The guest's disk, `blocksOf(manifest)` blocks, 'bytes' representation. */
  readonly disk: GuestDisk;
  readonly fetcher: ChunkFetcher;
  readonly bootTrace?: BootTraceLimits | undefined;
  /** Called once with the boot trace when it ends: `bootTrace.chunks` recorded, or `endBootTrace()` (not called when nothing was read). */
  readonly onBootTrace?: ((accessOrder: readonly number[]) => void) | undefined;
  /** The disk arrived whole (a migration): every chunk is here; `own` marks the chunks holding the VM's writes (bit i of byte i>>3). */
  readonly arrived?: { readonly own: Uint8Array } | undefined;
}

/** Blocks of a disk made from `manifest` (the last chunk may end in a short block, zero-padded). */
export function blocksOf(manifest: ImageManifest): number {
  return Math.ceil(manifest.size / BLOCK_SIZE);
}

export class ImageDisk {
  readonly manifest: ImageManifest;
  /** Chunks the VM's reads filled, by the site that served each (this site's own when its store had it). */
  readonly servedBy = new Map<string, number>();
  readonly #disk: GuestDisk;
  readonly #reader: ImageReader;
  readonly #clock: Clock;
  readonly #chunkBlocks: number;
  readonly #filled: Uint8Array;
  readonly #written = new Set<number>();
  readonly #filling = new Map<number, Promise<void>>();
  readonly #limits: BootTraceLimits;
  readonly #start: number;
  readonly #trace: number[] = [];
  readonly #traced = new Set<number>();
  readonly #onBootTrace: ((accessOrder: readonly number[]) => void) | undefined;
  #traceEnded = false;

  constructor(components: { clock: Clock }, init: ImageDiskInit) {
    const m = init.manifest;
    if (m.chunkSize % BLOCK_SIZE !== 0) throw new ImageDiskError(m.imageId, m.version, `its chunk size ${m.chunkSize} is not a multiple of the disk block (${BLOCK_SIZE} bytes)`);
    if (init.disk.blockCount !== blocksOf(m)) throw new ImageDiskError(m.imageId, m.version, `the guest's disk has ${init.disk.blockCount} blocks, the image ${blocksOf(m)}`);
    if (init.disk.representation !== 'bytes') throw new ImageDiskError(m.imageId, m.version, 'the guest\'s disk must hold bytes');
    this.manifest = m;
    this.#disk = init.disk;
    this.#clock = components.clock;
    this.#chunkBlocks = m.chunkSize / BLOCK_SIZE;
    this.#filled = new Uint8Array(m.chunks.length);
    this.#reader = new ImageReader(m, init.fetcher, (r: FetchRecord) => this.#served(r));
    this.#limits = init.bootTrace ?? DEFAULT_BOOT_TRACE;
    this.#start = components.clock.now();
    this.#onBootTrace = init.onBootTrace;
    if (init.arrived !== undefined) {
      const { own } = init.arrived;
      if (own.length !== Math.ceil(m.chunks.length / 8)) throw new ImageDiskError(m.imageId, m.version, `the VM's own chunks come as ${own.length} bitmap bytes, the image has ${m.chunks.length} chunks`);
      this.#filled.fill(1);
      this.#traceEnded = true; // it booted elsewhere
      for (let c = 0; c < m.chunks.length; c++) {
        if ((((own[c >> 3] ?? 0) >> (c & 7)) & 1) === 0) continue;
        for (let b = c * this.#chunkBlocks; b < Math.min(init.disk.blockCount, (c + 1) * this.#chunkBlocks); b++) this.#written.add(b);
      }
    }
  }

  /** The VM reads `length` bytes at `offset` (clipped to the disk's end). */
  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const end = this.#range(offset, length, 'read');
    for (let c = Math.floor(offset / this.manifest.chunkSize); c * this.manifest.chunkSize < end; c++) {
      this.#record(c);
      await this.#fill(c, signal);
    }
    const out = new Uint8Array(end - offset);
    for (let pos = offset; pos < end; ) {
      const b = Math.floor(pos / BLOCK_SIZE);
      const from = pos - b * BLOCK_SIZE;
      const n = Math.min(BLOCK_SIZE - from, end - pos);
      out.set((this.#disk.readBlock(b) as Uint8Array).subarray(from, from + n), pos - offset);
      pos += n;
    }
    return out;
  }

  /** The VM writes `bytes` at `offset`: its own blocks from now on. */
  async write(offset: number, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    const end = this.#range(offset, bytes.length, 'write');
    if (end - offset !== bytes.length) throw new ImageDiskError(this.manifest.imageId, this.manifest.version, `a write of ${bytes.length} bytes at ${offset} runs past the disk's end (${this.manifest.size} bytes)`);
    for (let pos = offset; pos < end; ) {
      const b = Math.floor(pos / BLOCK_SIZE);
      const from = pos - b * BLOCK_SIZE;
      const n = Math.min(BLOCK_SIZE - from, end - pos);
      // Part of a block: the image's bytes around the write first.
      if (n < BLOCK_SIZE && !this.#written.has(b)) await this.#fill(Math.floor(b / this.#chunkBlocks), signal);
      const block = n === BLOCK_SIZE ? new Uint8Array(BLOCK_SIZE) : (this.#disk.readBlock(b) as Uint8Array).slice();
      block.set(bytes.subarray(pos - offset, pos - offset + n), from);
      this.#disk.writeBlock(b, block);
      this.#written.add(b);
      pos += n;
    }
  }

  /** The chunks the VM read first (indexes, first-read order). */
  bootTrace(): number[] {
    return [...this.#trace];
  }

  get description(): ImageDiskDescription {
    return { imageId: this.manifest.imageId, version: this.manifest.version, written: [...this.#written].sort((a, b) => a - b) };
  }

  /** Chunks filled into the guest's disk so far. */
  get filledChunks(): number {
    return this.#filled.reduce((n, f) => n + f, 0);
  }

  /** The disk as a migration's sender sees it (src/migration/drivers/disk-image-exchange.ts). */
  get diskImage(): DiskImageSource {
    return {
      chunkBlocks: this.#chunkBlocks,
      chunks: this.manifest.chunks,
      matches: (first, count, digest) => {
        const c = Math.floor(first / this.#chunkBlocks);
        if (this.manifest.chunks[c] !== digest || first !== c * this.#chunkBlocks) return false;
        for (let b = first; b < first + count; b++) if (this.#written.has(b)) return false;
        return true;
      },
      prepare: (_held, signal) => this.#prepare(signal),
      describe: () => ({ manifest: JSON.stringify(this.manifest), own: this.#ownChunks() }),
    };
  }

  /** The chunks holding the VM's writes, as a bitmap (bit i of byte i>>3). */
  #ownChunks(): Uint8Array {
    const own = new Uint8Array(Math.ceil(this.manifest.chunks.length / 8));
    for (const b of this.#written) {
      const c = Math.floor(b / this.#chunkBlocks);
      own[c >> 3]! |= 1 << (c & 7);
    }
    return own;
  }

  /**
   * Before a migration's bulk copy, every chunk not filled yet is filled
   * here (from this site's store, else the nearest replica): the end of the
   * migration checks a digest of the whole disk, so the source's copy must
   * be whole. What crosses the migration link is still only what the
   * destination lacks: the chunks it holds go as chunk records.
   */
  async #prepare(signal?: AbortSignal): Promise<void> {
    for (let c = 0; c < this.manifest.chunks.length; c++) await this.#fill(c, signal);
  }

  #range(offset: number, length: number, what: string): number {
    const { size } = this.manifest;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset > size) {
      throw new ImageDiskError(this.manifest.imageId, this.manifest.version, `a ${what} of ${length} bytes at ${offset} is outside the disk (${size} bytes)`);
    }
    return Math.min(size, offset + length);
  }

  /** The boot is over (its time is up): the trace recorded so far is handed on, and nothing more is recorded. */
  endBootTrace(): void {
    if (this.#traceEnded) return;
    this.#traceEnded = true;
    if (this.#trace.length > 0) this.#onBootTrace?.(this.bootTrace());
  }

  #record(c: number): void {
    if (this.#traceEnded || this.#traced.has(c)) return;
    if (this.#clock.now() - this.#start > this.#limits.withinMs) { this.endBootTrace(); return; }
    this.#traced.add(c);
    this.#trace.push(c);
    if (this.#trace.length >= this.#limits.chunks) this.endBootTrace();
  }

  #served(r: FetchRecord): void {
    this.servedBy.set(r.from, (this.servedBy.get(r.from) ?? 0) + 1);
  }

  /** The chunk's unwritten blocks from the image, once (concurrent reads share the fetch). */
  #fill(c: number, signal?: AbortSignal): Promise<void> {
    if (this.#filled[c] === 1) return Promise.resolve();
    let p = this.#filling.get(c);
    if (p === undefined) {
      p = (async () => {
        const bytes = await this.#reader.readChunk(c, signal);
        const first = c * this.#chunkBlocks;
        for (let i = 0; i * BLOCK_SIZE < bytes.length; i++) {
          if (this.#written.has(first + i)) continue;
          const block = new Uint8Array(BLOCK_SIZE);
          block.set(bytes.subarray(i * BLOCK_SIZE, Math.min(bytes.length, (i + 1) * BLOCK_SIZE)));
          this.#disk.writeBlock(first + i, block);
        }
        this.#filled[c] = 1;
      })().finally(() => this.#filling.delete(c));
      this.#filling.set(c, p);
    }
    return p;
  }
}
