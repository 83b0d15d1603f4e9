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

const HI_MASK = 0x1fffff; // 21 bits of hi + 32 bits of lo = a safe-integer map key

export class PageCache {
  readonly size: number;
  readonly capacity: number;
  readonly #hi: Uint32Array;
  readonly #lo: Uint32Array;
  readonly #known: Uint8Array;
  readonly #holders = new Map<number, number>();
  readonly #ringKey: Float64Array;
  readonly #ringIdx: Uint32Array;
  #ringHead = 0;
  #ringLen = 0;

  constructor(size: number, capacity: number = size) {
    this.size = size;
    this.capacity = Math.max(1, Math.min(capacity, size));
    this.#hi = new Uint32Array(size);
    this.#lo = new Uint32Array(size);
    this.#known = new Uint8Array(size);
    this.#ringKey = new Float64Array(this.capacity);
    this.#ringIdx = new Uint32Array(this.capacity);
  }

  static mapKey(hi: number, lo: number): number {
    return (hi & HI_MASK) * 4294967296 + (lo >>> 0);
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
    const idx = this.#holders.get(PageCache.mapKey(hi, lo));
    if (idx === undefined || !this.holdsAt(idx, hi, lo)) return -1;
    return idx;
  }

  /** The destination's page `index` now holds content `key`; `indexable` is false for the zero page. */
  record(index: number, hi: number, lo: number, indexable: boolean): void {
    if (this.#known[index] === 1) {
      const oldKey = PageCache.mapKey(this.#hi[index] ?? 0, this.#lo[index] ?? 0);
      if (this.#holders.get(oldKey) === index) this.#holders.delete(oldKey);
    }
    this.#hi[index] = hi >>> 0;
    this.#lo[index] = lo >>> 0;
    this.#known[index] = 1;
    if (!indexable) return;
    const key = PageCache.mapKey(hi, lo);
    const cur = this.#holders.get(key);
    if (cur !== undefined && this.holdsAt(cur, hi, lo)) return;
    this.#holders.set(key, index);
    if (this.#ringLen === this.capacity) {
      const oldKey = this.#ringKey[this.#ringHead] ?? 0;
      const oldIdx = this.#ringIdx[this.#ringHead] ?? 0;
      if (this.#holders.get(oldKey) === oldIdx && !(oldKey === key && oldIdx === index)) this.#holders.delete(oldKey);
      this.#ringLen--;
      this.#ringHead = (this.#ringHead + 1) % this.capacity;
    }
    const tail = (this.#ringHead + this.#ringLen) % this.capacity;
    this.#ringKey[tail] = key;
    this.#ringIdx[tail] = index;
    this.#ringLen++;
  }

  /** Number of contents indexed for references now. */
  indexed(): number {
    return this.#holders.size;
  }
}
