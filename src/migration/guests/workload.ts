/**
 * A workload model that runs a guest live: which pages it writes, how fast,
 * and what the writes do to page contents. Deterministic for a seed, so the
 * same migration replays the same in real and in virtual time.
 *
 * Writes per second = `dirtyRate` x the guest's CPU share (throttle). A write
 * lands in the hot set with probability `locality`, otherwise anywhere in the
 * writable working set. It either rewrites the whole page (probability
 * `rewriteShare`: fresh content, or with probability `dupShare` a copy of
 * content found elsewhere in RAM) or changes `bytesPerWrite` bytes of it in
 * place (a new version of the same base: a delta candidate).
 */
import type { PageStore } from './page-store.ts';
import { CHUNK_SIZE, MAX_PATCH_CHUNKS, synthVersion } from '../engine/content-model.ts';

export interface MemoryWorkloadParams {
  /** Page writes per second at full CPU share (not distinct pages). */
  readonly dirtyRate: number;
  /** Share of RAM the workload ever writes (the writable working set). */
  readonly wssShare: number;
  /** Share of RAM that is hot (inside the working set). */
  readonly hotShare: number;
  /** Share of writes that go to the hot set. */
  readonly locality: number;
  /** Share of pages that are zero at the start. */
  readonly zeroShare: number;
  /** Share of non-zero pages whose content duplicates another page's. */
  readonly dupShare: number;
  /** Bytes an in-place write changes (rounded up to 32-byte chunks). */
  readonly bytesPerWrite: number;
  /** Share of writes that replace the page's whole content. */
  readonly rewriteShare: number;
}

export interface DiskWorkloadParams {
  /** Block writes per second at full CPU share. */
  readonly writeRate: number;
  /** Share of the disk the workload writes. */
  readonly wssShare: number;
  /** Share of blocks that are zero (never written) at the start. */
  readonly zeroShare: number;
  /**
   * Share of the guest's progress that waits on its disk writes (0..1,
   * default 0): while a write cannot be issued (synchronous replication with
   * the write queue full) the disk writes stop and the rest of the guest runs
   * at (1 - ioCoupling) of its speed. 0: only the disk stalls; 1: the whole
   * guest waits for its disk (an fsync-bound database).
   */
  readonly ioCoupling?: number;
}

/** mulberry32: small, fast, deterministic. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Bases: 1..DUP_POOL are the shared (duplicated) contents; fresh bases count up from FRESH_BASE. */
const FRESH_BASE = 1 << 20;

export class MemoryWorkload {
  readonly params: MemoryWorkloadParams;
  readonly #rng: Rng;
  readonly #pages: number;
  readonly #wss: number;
  readonly #hot: number;
  readonly #wssStart: number;
  readonly #dupPool: number;
  readonly #chunks: number;
  #nextBase = FRESH_BASE;
  #writes = 0;
  #carry = 0;

  constructor(params: MemoryWorkloadParams, pages: number, seed: number) {
    this.params = params;
    this.#rng = new Rng(seed);
    this.#pages = pages;
    this.#wss = Math.max(1, Math.min(pages, Math.round(pages * params.wssShare)));
    this.#hot = Math.max(1, Math.min(this.#wss, Math.round(pages * params.hotShare)));
    this.#wssStart = pages - this.#wss; // the working set sits at the top of RAM
    this.#dupPool = Math.max(1, Math.round(pages * (1 - params.zeroShare) * params.dupShare / 8));
    this.#chunks = Math.max(1, Math.min(MAX_PATCH_CHUNKS, Math.ceil(params.bytesPerWrite / CHUNK_SIZE)));
  }

  /** Total writes done so far. */
  get writes(): number {
    return this.#writes;
  }

  /** Fill RAM with the starting contents (logging should be off). */
  fill(store: PageStore): void {
    const p = this.params;
    for (let i = 0; i < this.#pages; i++) {
      const r = this.#rng.next();
      if (r < p.zeroShare) continue;
      if (this.#rng.next() < p.dupShare) store.writeSynth(i, 1 + this.#rng.below(this.#dupPool), 0);
      else store.writeSynth(i, this.#nextBase++, 0);
    }
  }

  /** Run for `ms` of guest time at CPU share `share`. */
  run(store: PageStore, ms: number, share: number): void {
    const exact = (this.params.dirtyRate * share * ms) / 1000 + this.#carry;
    const n = Math.floor(exact);
    this.#carry = exact - n;
    this.runWrites(store, n);
  }

  /** Make exactly `n` more writes (the sequence a run of that many writes makes, whatever its timing). */
  runWrites(store: PageStore, n: number): void {
    const p = this.params;
    const hotStart = this.#pages - this.#hot;
    const loc = p.locality;
    const rw = p.rewriteShare;
    for (let k = 0; k < n; k++) {
      // Two draws a write: one picks the page (hot set or working set), one the kind of write.
      const a = this.#rng.next();
      const page = a < loc ? hotStart + Math.floor((a / loc) * this.#hot) : this.#wssStart + Math.floor(((a - loc) / (1 - loc)) * this.#wss);
      this.#writes++;
      const b = this.#rng.next();
      if (b < rw) {
        const base = b / rw < p.dupShare ? 1 + Math.floor(((b / rw) / p.dupShare) * this.#dupPool) : this.#nextBase++;
        store.writeSynth(page, base >>> 0, 0);
      } else {
        store.writeSynth(page, store.synthBase(page), synthVersion(this.#writes, this.#chunks));
      }
    }
  }
}

export class DiskWorkload {
  readonly params: DiskWorkloadParams;
  readonly #rng: Rng;
  readonly #blocks: number;
  readonly #wss: number;
  #nextBase = 1 << 30;
  #carry = 0;
  #writes = 0;

  constructor(params: DiskWorkloadParams, blocks: number, seed: number) {
    this.params = params;
    this.#rng = new Rng(seed ^ 0x5eed);
    this.#blocks = blocks;
    this.#wss = Math.max(1, Math.min(blocks, Math.round(blocks * params.wssShare)));
  }

  fill(store: PageStore): void {
    for (let i = 0; i < this.#blocks; i++) if (this.#rng.next() >= this.params.zeroShare) store.writeSynth(i, this.#nextBase++ >>> 0, 0);
  }

  /** Total writes made so far. */
  get writes(): number {
    return this.#writes;
  }

  /** Run for `ms` of guest time at CPU share `share`, every write completing at once (no gate). */
  run(store: PageStore, ms: number, share: number): void {
    const exact = (this.params.writeRate * share * ms) / 1000 + this.#carry;
    const n = Math.floor(exact);
    this.#carry = exact - n;
    this.runWrites(store, n);
  }

  /** Make exactly `n` more writes (the sequence a run of that many writes makes, whatever its timing). */
  runWrites(store: PageStore, n: number): void {
    for (let k = 0; k < n; k++) this.write(store, this.nextBlock());
  }

  /**
   * Gated runs: the writes due from `from` over `ms` of wall time at CPU
   * share `share`, in order, each at its own time. `issue(block, at)` writes
   * it (returning true) or refuses it (false): the run stops there, and that
   * block is returned as waiting (the caller retries it, then calls
   * `resume`). Returns undefined when every due write was issued.
   */
  runGated(from: number, ms: number, share: number, issue: (block: number, at: number) => boolean): { block: number; at: number } | undefined {
    const perMs = (this.params.writeRate * share) / 1000;
    if (!(perMs > 0) || !(ms > 0)) return undefined;
    const exact = perMs * ms + this.#carry;
    const n = Math.floor(exact);
    const carry0 = this.#carry;
    this.#carry = exact - n;
    for (let k = 1; k <= n; k++) {
      const at = from + (k - carry0) / perMs;
      const b = this.nextBlock();
      if (!issue(b, at)) {
        this.#carry = 0;
        return { block: b, at };
      }
    }
    return undefined;
  }

  /** The block of the next write (draws from the workload's sequence). */
  nextBlock(): number {
    return this.#blocks - this.#wss + this.#rng.below(this.#wss);
  }

  /** Write fresh content to `block` (the next content of the sequence). */
  write(store: PageStore, block: number): void {
    this.#writes++;
    store.writeSynth(block, this.#nextBase++ >>> 0, 0);
  }
}
