import type { Mac } from '../common/mac.ts';

/**
 * A hash table keyed by (source MAC, destination MAC, ingress), with the keys
 * in typed arrays: the forwarding table's decision cache, and the traffic
 * counters' cells (with ingress 0).
 *
 * Why not nested Maps: MACs are 48-bit numbers, outside V8's small-integer
 * range, so every Map.get boxes its key (an allocation per lookup, and a
 * scavenge every ~100k frames); here the keys stay unboxed doubles, and a
 * lookup is a hash, usually one probe, and three compares.
 *
 * Linear probing at load factor at most 1/2 (the table holds `maxEntries` in
 * at least twice as many slots). There is no deletion: the caller validates
 * what `get` returns (a stale value is overwritten in place by `set`), and
 * `clear` empties everything. When `full`, the caller clears before setting.
 */
export class FlowCache<V> {
  readonly maxEntries: number;
  readonly #mask: number;
  readonly #src: Float64Array;
  readonly #dst: Float64Array;
  readonly #ing: Int32Array;
  readonly #val: (V | undefined)[];
  #used = 0;

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 1 << 24) throw new RangeError(`maxEntries must be an integer 1..2^24, got ${maxEntries}`);
    let slots = 8;
    while (slots < maxEntries * 2) slots *= 2;
    this.maxEntries = maxEntries;
    this.#mask = slots - 1;
    this.#src = new Float64Array(slots);
    this.#dst = new Float64Array(slots);
    this.#ing = new Int32Array(slots);
    this.#val = new Array<V | undefined>(slots).fill(undefined);
  }

  get size(): number {
    return this.#used;
  }

  get full(): boolean {
    return this.#used >= this.maxEntries;
  }

  get(src: Mac, dst: Mac, ingress: number): V | undefined {
    const mask = this.#mask;
    const val = this.#val;
    for (let i = slotOf(src, dst, ingress) & mask; ; i = (i + 1) & mask) {
      const v = val[i];
      if (v === undefined) return undefined;
      if (this.#src[i] === src && this.#dst[i] === dst && this.#ing[i] === ingress) return v;
    }
  }

  /** Store (or replace) the value for a key. The caller clears first when `full`. */
  set(src: Mac, dst: Mac, ingress: number, value: V): void {
    const mask = this.#mask;
    const val = this.#val;
    let i = slotOf(src, dst, ingress) & mask;
    for (; val[i] !== undefined; i = (i + 1) & mask) {
      if (this.#src[i] === src && this.#dst[i] === dst && this.#ing[i] === ingress) {
        val[i] = value;
        return;
      }
    }
    if (this.#used >= this.maxEntries) throw new RangeError('flow cache full: clear() before set()'); // a caller bug
    this.#src[i] = src;
    this.#dst[i] = dst;
    this.#ing[i] = ingress;
    val[i] = value;
    this.#used++;
  }

  /** Visit every entry (slot order). The callback must not set or clear. */
  forEach(fn: (src: Mac, dst: Mac, ingress: number, value: V) => void): void {
    const val = this.#val;
    for (let i = 0; i < val.length; i++) {
      const v = val[i];
      if (v !== undefined) fn(this.#src[i]!, this.#dst[i]!, this.#ing[i]!, v);
    }
  }

  clear(): void {
    if (this.#used === 0) return;
    this.#val.fill(undefined);
    this.#used = 0;
  }
}

const TWO_32 = 4_294_967_296;

/** Mix the six 32-bit-or-less parts of the key (murmur3-style finalizer); integer ops only, no boxing. */
function slotOf(src: Mac, dst: Mac, ingress: number): number {
  let h = Math.imul(src >>> 0, 0x85ebca6b) ^ Math.imul((src / TWO_32) | 0, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ Math.imul(dst >>> 0, 0x9e3779b1);
  h ^= Math.imul((dst / TWO_32) | 0, 0x27d4eb2f) ^ Math.imul(ingress, 0x165667b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
