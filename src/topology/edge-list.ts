/**
 * A sparse edge map stored as two parallel typed arrays sorted by key: the
 * representation every hot stage of this area works on. Sorted arrays make
 * the per-update work linear merges instead of hash-map traffic (hundreds of
 * thousands of Map operations and their garbage per update at 10,000 VMs),
 * and EdgeList still reads as a ReadonlyMap<key, value> for everyone else.
 *
 * Building from unsorted (key, value) pairs sorts them with a radix sort
 * when the keys are below 2^32 (up to 65,536 VMs), a native sort of
 * key-and-position packed in one double for short lists, else with a
 * comparator.
 */

const PACK = 2 ** 21; // positions below 2M pack beside keys below 2^32

/** Stable LSD radix sort (two 16-bit passes) of positions 0..count−1 by keys below 2^32. */
function radixOrder(keys: Float64Array, count: number): Uint32Array {
  const k32 = new Uint32Array(count);
  for (let i = 0; i < count; i++) k32[i] = keys[i]!;
  let order = new Uint32Array(count);
  let next = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const counts = new Uint32Array(65_537);
  for (const shift of [0, 16]) {
    counts.fill(0);
    for (let i = 0; i < count; i++) counts[((k32[i]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 0; b < 65_536; b++) counts[b + 1]! += counts[b]!;
    for (let i = 0; i < count; i++) {
      const j = order[i]!;
      next[counts[(k32[j]! >>> shift) & 0xffff]!++] = j;
    }
    [order, next] = [next, order];
  }
  return order;
}

export class EdgeList implements ReadonlyMap<number, number> {
  /** Strictly ascending keys. */
  readonly keyArray: Float64Array;
  readonly valueArray: Float64Array;

  constructor(keys: Float64Array, values: Float64Array) {
    this.keyArray = keys;
    this.valueArray = values;
  }

  static readonly EMPTY = new EdgeList(new Float64Array(0), new Float64Array(0));

  /**
   * From `count` unsorted pairs; values of equal keys are summed. Keys must be
   * non-negative integers below 2^53. The input arrays are not kept.
   */
  static fromPairs(keys: Float64Array, values: Float64Array, count: number): EdgeList {
    if (count === 0) return EdgeList.EMPTY;
    let maxKey = 0;
    for (let i = 0; i < count; i++) if (keys[i]! > maxKey) maxKey = keys[i]!;
    let order: Uint32Array;
    if (maxKey < 2 ** 32 && count >= 512) {
      order = radixOrder(keys, count);
    } else if (count < PACK && maxKey * PACK < 2 ** 53) {
      order = new Uint32Array(count);
      const packed = new Float64Array(count);
      for (let i = 0; i < count; i++) packed[i] = keys[i]! * PACK + i;
      packed.sort();
      for (let i = 0; i < count; i++) order[i] = packed[i]! % PACK;
    } else {
      order = new Uint32Array(count);
      for (let i = 0; i < count; i++) order[i] = i;
      order.sort((a, b) => keys[a]! - keys[b]! || a - b);
    }
    const outKeys = new Float64Array(count);
    const outValues = new Float64Array(count);
    let len = 0;
    for (let i = 0; i < count; i++) {
      const j = order[i]!;
      const k = keys[j]!;
      if (len > 0 && outKeys[len - 1] === k) outValues[len - 1]! += values[j]!;
      else {
        outKeys[len] = k;
        outValues[len] = values[j]!;
        len++;
      }
    }
    return new EdgeList(outKeys.subarray(0, len), outValues.subarray(0, len));
  }

  /** The same pairs as an EdgeList (the argument itself if it is one). */
  static of(map: ReadonlyMap<number, number>): EdgeList {
    if (map instanceof EdgeList) return map;
    const keys = new Float64Array(map.size);
    const values = new Float64Array(map.size);
    let i = 0;
    for (const [k, v] of map) {
      keys[i] = k;
      values[i] = v;
      i++;
    }
    return EdgeList.fromPairs(keys, values, i);
  }

  get size(): number {
    return this.keyArray.length;
  }

  /** Position of `key`, or −1. */
  indexOf(key: number): number {
    const keys = this.keyArray;
    let lo = 0;
    let hi = keys.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = keys[mid]!;
      if (k === key) return mid;
      if (k < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  get(key: number): number | undefined {
    const i = this.indexOf(key);
    return i < 0 ? undefined : this.valueArray[i];
  }

  has(key: number): boolean {
    return this.indexOf(key) >= 0;
  }

  forEach(callback: (value: number, key: number, map: ReadonlyMap<number, number>) => void): void {
    for (let i = 0; i < this.keyArray.length; i++) callback(this.valueArray[i]!, this.keyArray[i]!, this);
  }

  *entries(): MapIterator<[number, number]> {
    for (let i = 0; i < this.keyArray.length; i++) yield [this.keyArray[i]!, this.valueArray[i]!];
  }

  *keys(): MapIterator<number> {
    for (let i = 0; i < this.keyArray.length; i++) yield this.keyArray[i]!;
  }

  *values(): MapIterator<number> {
    for (let i = 0; i < this.valueArray.length; i++) yield this.valueArray[i]!;
  }

  [Symbol.iterator](): MapIterator<[number, number]> {
    return this.entries();
  }

  /** Keep the pairs whose value passes `keep`. */
  filter(keep: (value: number, key: number) => boolean): EdgeList {
    const keys = new Float64Array(this.keyArray.length);
    const values = new Float64Array(this.keyArray.length);
    let len = 0;
    for (let i = 0; i < this.keyArray.length; i++) {
      if (!keep(this.valueArray[i]!, this.keyArray[i]!)) continue;
      keys[len] = this.keyArray[i]!;
      values[len] = this.valueArray[i]!;
      len++;
    }
    return new EdgeList(keys.subarray(0, len), values.subarray(0, len));
  }
}
