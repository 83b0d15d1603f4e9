/**
 * Sender side of the content cache: turns one page (or disk block) into the
 * cheapest record the destination can resolve, and mirrors the destination's
 * cache in lock-step (records are applied there in the order produced here).
 *
 *   plain      always a full page (the Xen and QEMU defaults)
 *   optimized  skip   the destination already holds exactly this content here
 *              zero   the page is all zeros
 *              ref    the destination holds this content in another page
 *              delta  XOR against the destination's copy of this page, when smaller
 *              full   otherwise
 */
import { PAGE_SIZE, isSynthContent, type ContentRepresentation, type PageContent } from '../guest.ts';
import type { ContentKeyer } from './content-key.ts';
import { PageCache } from './page-cache.ts';
import { isZeroContent, synthFromKey } from './content-model.ts';
import { computeByteDelta, deltaPayloadSize, mapChunkCount, synthDeltaMap } from './delta.ts';
import type { PageRecord, Space } from './stream-records.ts';

export type Encoding = 'plain' | 'optimized';

export interface ContentEncoderInit {
  readonly space: Space;
  readonly count: number;
  readonly representation: ContentRepresentation;
  readonly keyer: ContentKeyer;
  readonly encoding: Encoding;
  /** Contents indexed for references (default: all pages). */
  readonly cacheCapacity?: number;
  /** Bytes guests only: largest RAM for which the sender keeps copies for deltas (default 512 MiB). */
  readonly deltaStoreLimit?: number;
}

export class ContentEncoder {
  readonly space: Space;
  readonly encoding: Encoding;
  readonly cache: PageCache;
  readonly #keyer: ContentKeyer;
  readonly #rep: ContentRepresentation;
  readonly #copies: Uint8Array | undefined;
  readonly #key = new Uint32Array(2);
  readonly counts = { full: 0, zero: 0, ref: 0, delta: 0, skip: 0 };

  constructor(init: ContentEncoderInit) {
    this.space = init.space;
    this.encoding = init.encoding;
    this.#keyer = init.keyer;
    this.#rep = init.representation;
    this.cache = new PageCache(init.count, init.cacheCapacity ?? init.count);
    const limit = init.deltaStoreLimit ?? 512 * 1024 * 1024;
    this.#copies = init.encoding === 'optimized' && init.representation === 'bytes' && init.count * PAGE_SIZE <= limit
      ? new Uint8Array(init.count * PAGE_SIZE) : undefined;
  }

  /** The record for page `index` now holding `content`, or undefined when nothing needs sending. */
  encode(index: number, content: PageContent, seq: number): PageRecord | undefined {
    const space = this.space;
    if (this.encoding === 'plain') {
      this.counts.full++;
      return { t: 'full', seq, space, index, content: isSynthContent(content) ? content : content.slice() };
    }
    const k = this.#key;
    this.#keyer.key(content, k);
    const hi = k[0] ?? 0;
    const lo = k[1] ?? 0;
    const cache = this.cache;
    if (cache.holdsAt(index, hi, lo)) {
      this.counts.skip++;
      return undefined;
    }
    const zero = isZeroContent(content);
    let rec: PageRecord | undefined;
    if (zero) {
      rec = { t: 'zero', seq, space, index };
      this.counts.zero++;
    } else if (cache.holder(hi, lo) >= 0) {
      rec = { t: 'ref', seq, space, index, hi, lo };
      this.counts.ref++;
    } else if (cache.known(index)) {
      rec = this.#delta(index, content, seq);
    }
    if (rec === undefined) {
      rec = { t: 'full', seq, space, index, content: isSynthContent(content) ? content : content.slice() };
      this.counts.full++;
    }
    if (this.#copies !== undefined && !isSynthContent(content)) this.#copies.set(content, index * PAGE_SIZE);
    cache.record(index, hi, lo, !zero);
    return rec;
  }

  #delta(index: number, content: PageContent, seq: number): PageRecord | undefined {
    if (isSynthContent(content)) {
      const old = synthFromKey(this.cache.keyHi(index), this.cache.keyLo(index));
      const map = synthDeltaMap(old, content);
      if (map === undefined || deltaPayloadSize(mapChunkCount(map)) >= PAGE_SIZE) return undefined;
      this.counts.delta++;
      return { t: 'delta', seq, space: this.space, index, map, xor: undefined, next: content };
    }
    if (this.#copies === undefined || this.#rep !== 'bytes') return undefined;
    const old = this.#copies.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE);
    const d = computeByteDelta(old, content);
    if (deltaPayloadSize(mapChunkCount(d.map)) >= PAGE_SIZE) return undefined;
    this.counts.delta++;
    return { t: 'delta', seq, space: this.space, index, map: d.map, xor: d.xor, next: undefined };
  }
}
