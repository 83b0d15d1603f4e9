/**
 * The lock-step content cache: what the destination holds, page by page,
 * and which page holds each non-zero content (for reference records).
 *
 * Sender and receiver each keep one and update it with the same calls in
 * the same order — the stream's sequence order — so a reference or a delta
 * the sender emits always resolves to the same content at the receiver.
 * Its size is bounded: at most `capacity` contents are indexed; the oldest
 * entry is forgotten first (FIFO), deterministically on both sides. When a
 * holder page is overwritten its entry goes too, even if another page holds
 * the same content (a missed reference costs bytes, never correctness).
 */

import { mix32 } from './content-model.ts';

/**
 * key -> holder index, open addressing with linear probing on typed arrays
 * (a Map keyed by 53-bit numbers was the engine's hottest spot at 16 GB).
 * Deletion shifts later entries back, so there are no tombstones.
 */
class HolderTable {
  readonly #mask: number;
  readonly #hi: Uint32Array;
  readonly #lo: Uint32Array;
  readonly #idx: Int32Array;
  size = 0;

  constructor(capacity: number) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.#mask = n - 1;
    this.#hi = new Uint32Array(n);
    this.#lo = new Uint32Array(n);
    this.#idx = new Int32Array(n).fill(-1);
  }

  #slot(hi: number, lo: number): number {
    return (mix32(hi ^ mix32(lo)) & this.#mask) >>> 0;
  }

  #find(hi: number, lo: number): number {
    let s = this.#slot(hi, lo);
    for (;;) {
      const v = this.#idx[s] ?? -1;
      if (v < 0) return -1 - s;
      if (this.#hi[s] === hi && this.#lo[s] === lo) return s;
      s = (s + 1) & this.#mask;
    }
  }

  get(hi: number, lo: number): number {
    const s = this.#find(hi, lo);
    return s < 0 ? -1 : (this.#idx[s] ?? -1);
  }

  set(hi: number, lo: number, index: number): void {
    let s = this.#find(hi, lo);
    if (s < 0) { s = -1 - s; this.size++; }
    this.#hi[s] = hi;
    this.#lo[s] = lo;
    this.#idx[s] = index;
  }

  delete(hi: number, lo: number): void {
    let s = this.#find(hi, lo);
    if (s < 0) return;
    this.size--;
    // Backward-shift deletion keeps every probe chain unbroken.
    for (;;) {
      this.#idx[s] = -1;
      let j = s;
      for (;;) {
        j = (j + 1) & this.#mask;
        const v = this.#idx[j] ?? -1;
        if (v < 0) return;
        const home = this.#slot(this.#hi[j] ?? 0, this.#lo[j] ?? 0);
        // Move j back to s unless its home lies cyclically in (s, j].
        const inRange = s <= j ? home > s && home <= j : home > s || home <= j;
        if (!inRange) break;
      }
      this.#hi[s] = this.#hi[j] ?? 0;
      this.#lo[s] = this.#lo[j] ?? 0;
      this.#idx[s] = this.#idx[j] ?? -1;
      s = j;
    }
  }
}

export class PageCache {
  readonly size: number;
  readonly capacity: number;
  readonly #hi: Uint32Array;
  readonly #lo: Uint32Array;
  readonly #known: Uint8Array;
  readonly #holders: HolderTable;
  readonly #ringHi: Uint32Array;
  readonly #ringLo: Uint32Array;
  readonly #ringIdx: Uint32Array;
  #ringHead = 0;
  #ringLen = 0;

  constructor(size: number, capacity: number = size) {
    this.size = size;
    this.capacity = Math.max(1, Math.min(capacity, size));
    this.#hi = new Uint32Array(size);
    this.#lo = new Uint32Array(size);
    this.#known = new Uint8Array(size);
    this.#holders = new HolderTable(this.capacity);
    this.#ringHi = new Uint32Array(this.capacity);
    this.#ringLo = new Uint32Array(this.capacity);
    this.#ringIdx = new Uint32Array(this.capacity);
  }

  known(index: number): boolean {
    return this.#known[index] === 1;
  }

  keyHi(index: number): number {
    return this.#hi[index] ?? 0;
  }

  keyLo(index: number): number {
    return this.#lo[index] ?? 0;
  }

  /** Whether the destination's page `index` holds exactly the content with this key. */
  holdsAt(index: number, hi: number, lo: number): boolean {
    return this.#known[index] === 1 && this.#hi[index] === hi >>> 0 && this.#lo[index] === lo >>> 0;
  }

  /** A page of the destination that holds this content, or -1. */
  holder(hi: number, lo: number): number {
    const idx = this.#holders.get(hi >>> 0, lo >>> 0);
    if (idx < 0 || !this.holdsAt(idx, hi, lo)) return -1;
    return idx;
  }

  /** The destination's page `index` now holds content `key`; `indexable` is false for the zero page. */
  record(index: number, hi: number, lo: number, indexable: boolean): void {
    hi >>>= 0;
    lo >>>= 0;
    if (this.#known[index] === 1) {
      const oh = this.#hi[index] ?? 0;
      const ol = this.#lo[index] ?? 0;
      if (this.#holders.get(oh, ol) === index) this.#holders.delete(oh, ol);
    }
    this.#hi[index] = hi;
    this.#lo[index] = lo;
    this.#known[index] = 1;
    if (!indexable) return;
    const cur = this.#holders.get(hi, lo);
    if (cur >= 0 && this.holdsAt(cur, hi, lo)) return;
    this.#holders.set(hi, lo, index);
    if (this.#ringLen === this.capacity) {
      const h = this.#ringHead;
      const eh = this.#ringHi[h] ?? 0;
      const el = this.#ringLo[h] ?? 0;
      const ei = this.#ringIdx[h] ?? 0;
      if (this.#holders.get(eh, el) === ei && !(eh === hi && el === lo && ei === index)) this.#holders.delete(eh, el);
      this.#ringLen--;
      this.#ringHead = (h + 1) % this.capacity;
    }
    const tail = (this.#ringHead + this.#ringLen) % this.capacity;
    this.#ringHi[tail] = hi;
    this.#ringLo[tail] = lo;
    this.#ringIdx[tail] = index;
    this.#ringLen++;
  }

  /** Number of contents indexed for references now. */
  indexed(): number {
    return this.#holders.size;
  }
}
