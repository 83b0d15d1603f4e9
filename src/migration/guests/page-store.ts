/**
 * Content arrays with a dirty log: the RAM (or disk) of an in-memory guest.
 *
 *   SynthPageStore  a { base, ver } descriptor per page: 8 bytes a page,
 *                   so 16 GB of guest RAM costs 32 MB
 *   BytePageStore   real bytes, PAGE_SIZE per page; synthetic writes are
 *                   expanded on the way in
 * Both implement the dirty log the Guest interface promises: set on write
 * while logging is on, read-and-cleared by `take`, peeked by `isDirty`;
 * and a write generation per page, bumped by every write whether logging
 * is on or not (u32, wrapping: a digest that compares it for equality
 * misses a change only after exactly 2^32 writes of one page).
 */
import { PAGE_SIZE, isSynthContent, type ContentRepresentation, type PageContent } from '../guest.ts';
import { expandSynth } from '../engine/content-model.ts';

export interface PageStore {
  readonly count: number;
  readonly representation: ContentRepresentation;
  read(index: number): PageContent;
  write(index: number, content: PageContent): void;
  /** The workload's fast path: write a synthetic descriptor (expanded if the store holds bytes). */
  writeSynth(index: number, base: number, ver: number): void;
  /** Current descriptor of a page written only through synthetic writes (workload bookkeeping). */
  synthBase(index: number): number;
  synthVer(index: number): number;
  setLogging(on: boolean): void;
  take(): Uint32Array;
  isDirty(index: number): boolean;
  dirtyCount(): number;
  /** The page's write generation: changes with every write. */
  generation(index: number): number;
}

class DirtyLog {
  readonly #bits: Uint8Array;
  #list: Uint32Array;
  #len = 0;
  on = false;

  constructor(count: number) {
    this.#bits = new Uint8Array(count);
    this.#list = new Uint32Array(Math.min(count, 1024) || 1);
  }

  mark(i: number): void {
    if (!this.on || this.#bits[i] === 1) return;
    this.#bits[i] = 1;
    if (this.#len === this.#list.length) {
      const n = new Uint32Array(this.#list.length * 2);
      n.set(this.#list);
      this.#list = n;
    }
    this.#list[this.#len++] = i;
  }

  take(): Uint32Array {
    const len = this.#len;
    let out: Uint32Array;
    if (len > this.#bits.length >>> 5) {
      // Dense: a scan of the bitmap yields ascending order without a sort.
      out = new Uint32Array(len);
      let k = 0;
      const bits = this.#bits;
      for (let i = 0; i < bits.length; i++) if (bits[i] === 1) { out[k++] = i; bits[i] = 0; }
    } else {
      out = this.#list.slice(0, len).sort();
      for (let k = 0; k < len; k++) this.#bits[this.#list[k] ?? 0] = 0;
    }
    this.#len = 0;
    return out;
  }

  clear(): void {
    this.take();
  }

  isDirty(i: number): boolean {
    return this.#bits[i] === 1;
  }

  count(): number {
    return this.#len;
  }
}

/**
 * What both stores share: a { base, ver } descriptor per page (the workload's
 * bookkeeping; the synthetic store's only content) and the dirty log, with
 * the PageStore methods over them.
 */
abstract class DescriptorStore {
  readonly count: number;
  protected readonly base: Uint32Array;
  protected readonly ver: Uint32Array;
  protected readonly log: DirtyLog;
  readonly #gen: Uint32Array;

  constructor(count: number) {
    this.count = count;
    this.base = new Uint32Array(count);
    this.ver = new Uint32Array(count);
    this.log = new DirtyLog(count);
    this.#gen = new Uint32Array(count);
  }

  /** A write of page `i`: its generation moves on, the dirty log notes it. */
  protected wrote(i: number): void {
    this.#gen[i] = ((this.#gen[i] ?? 0) + 1) >>> 0;
    this.log.mark(i);
  }

  generation(index: number): number { return this.#gen[index] ?? 0; }

  synthBase(index: number): number { return this.base[index] ?? 0; }
  synthVer(index: number): number { return this.ver[index] ?? 0; }
  setLogging(on: boolean): void { this.log.on = on; this.log.clear(); }
  take(): Uint32Array { return this.log.take(); }
  isDirty(index: number): boolean { return this.log.isDirty(index); }
  dirtyCount(): number { return this.log.count(); }
}

export class SynthPageStore extends DescriptorStore implements PageStore {
  readonly representation = 'synthetic' as const;

  read(index: number): PageContent {
    return { base: this.base[index] ?? 0, ver: this.ver[index] ?? 0 };
  }

  write(index: number, content: PageContent): void {
    if (!isSynthContent(content)) throw new TypeError('synthetic store takes synthetic content');
    this.writeSynth(index, content.base, content.ver);
  }

  writeSynth(index: number, base: number, ver: number): void {
    this.base[index] = base;
    this.ver[index] = ver;
    this.wrote(index);
  }
}

export class BytePageStore extends DescriptorStore implements PageStore {
  readonly representation = 'bytes' as const;
  readonly #ram: Uint8Array;

  constructor(count: number) {
    super(count);
    this.#ram = new Uint8Array(count * PAGE_SIZE);
  }

  /** A view of the page's bytes in RAM: copy it to keep it. */
  read(index: number): PageContent {
    return this.#ram.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE);
  }

  write(index: number, content: PageContent): void {
    if (isSynthContent(content)) {
      this.writeSynth(index, content.base, content.ver);
      return;
    }
    this.#ram.set(content.subarray(0, PAGE_SIZE), index * PAGE_SIZE);
    this.wrote(index);
  }

  writeSynth(index: number, base: number, ver: number): void {
    this.base[index] = base;
    this.ver[index] = ver;
    expandSynth({ base, ver }, this.#ram.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE));
    this.wrote(index);
  }
}

export function createPageStore(count: number, representation: ContentRepresentation): PageStore {
  return representation === 'bytes' ? new BytePageStore(count) : new SynthPageStore(count);
}
