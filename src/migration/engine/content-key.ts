/**
 * Content keys (64 bits as two u32 halves) and whole-guest digests.
 *   bytes      xxh64 of the page bytes (xxhash-wasm, seed 0)
 *   synthetic  the injective descriptor key of content-model.ts
 * A digest folds the keys of every page in index order; source and
 * destination compare digests at the end of a migration (the receiver's
 * KeyTable and the sender's ImageKeys keep them ready as pages change).
 */
import xxhash from 'xxhash-wasm';
import { isSynthContent, type GuestDisk, type GuestMemory, type PageContent } from '../guest.ts';
import { mix32, synthKeyHi, synthKeyLo } from './content-model.ts';

export interface ContentKeyer {
  /** Writes the key of `c` into out[0] (hi) and out[1] (lo). */
  key(c: PageContent, out: Uint32Array): void;
}

let hasher: Awaited<ReturnType<typeof xxhash>> | undefined;

/** Loads xxhash-wasm once per process and returns the keyer. */
export async function createContentKeyer(): Promise<ContentKeyer> {
  hasher ??= await xxhash();
  const h = hasher;
  return {
    key(c: PageContent, out: Uint32Array): void {
      if (isSynthContent(c)) {
        out[0] = synthKeyHi(c);
        out[1] = synthKeyLo(c);
        return;
      }
      const v = h.h64Raw(c, 0n);
      out[0] = Number(v >> 32n);
      out[1] = Number(v & 0xffffffffn);
    },
  };
}

/** Folds keys into a 64-bit digest (two murmur-mixed lanes); hex string. */
export class DigestFold {
  #a = 0x811c9dc5;
  #b = 0x01000193;
  #n = 0;

  add(hi: number, lo: number): void {
    this.#a = mix32(this.#a ^ hi ^ Math.imul(this.#n, 0x9e3779b1));
    this.#b = mix32(this.#b ^ lo ^ this.#a);
    this.#n++;
  }

  hex(): string {
    return this.#a.toString(16).padStart(8, '0') + this.#b.toString(16).padStart(8, '0');
  }
}

/**
 * The keys of every page (or block) of an image, kept current as its pages
 * are written: the image's digest (the same as `memoryDigest`/`diskDigest`
 * of it) folded from the table, without reading or hashing a page again.
 * The receiver keeps one per space, so its check at `done` costs a fold of
 * the keys, not a pass over the memory while the guest is paused.
 */
export class KeyTable {
  readonly #keys: Uint32Array;

  constructor(count: number) {
    this.#keys = new Uint32Array(count * 2);
  }

  /** The table of an image as it is now (one pass over it). */
  static of(count: number, read: (i: number) => PageContent, keyer: ContentKeyer): KeyTable {
    const t = new KeyTable(count);
    const k = new Uint32Array(2);
    for (let i = 0; i < count; i++) {
      keyer.key(read(i), k);
      t.set(i, k[0] ?? 0, k[1] ?? 0);
    }
    return t;
  }

  set(i: number, hi: number, lo: number): void {
    this.#keys[2 * i] = hi;
    this.#keys[2 * i + 1] = lo;
  }

  digest(): string {
    const f = new DigestFold();
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i += 2) f.add(keys[i] ?? 0, keys[i + 1] ?? 0);
    return f.hex();
  }
}

/**
 * The sender's digest of an image kept ready: the key of every page, each
 * re-keyed only when the page's write generation moved since it was keyed
 * (GuestMemory.generation: every write bumps it, dirty logging or not), so
 * the digest at `done`, while the guest is paused, costs a fold plus the
 * pages written since the last `refresh` — not a pass over all of RAM. The
 * result is exactly `memoryDigest`/`diskDigest` of the image as it is. An
 * image without generations is re-keyed whole every time.
 */
export class ImageKeys {
  readonly #table: KeyTable;
  readonly #gens: Uint32Array;
  readonly #read: (i: number) => PageContent;
  readonly #generation: ((i: number) => number) | undefined;
  readonly #keyer: ContentKeyer;
  readonly #k = new Uint32Array(2);
  #primed = false;
  /** Pages keyed by the last refresh. */
  rekeyed = 0;

  constructor(count: number, read: (i: number) => PageContent, generation: ((i: number) => number) | undefined, keyer: ContentKeyer) {
    this.#table = new KeyTable(count);
    this.#gens = new Uint32Array(count);
    this.#read = read;
    this.#generation = generation;
    this.#keyer = keyer;
  }

  static ofMemory(memory: GuestMemory, keyer: ContentKeyer): ImageKeys {
    return new ImageKeys(memory.pageCount, (i) => memory.readPage(i), memory.generation?.bind(memory), keyer);
  }

  static ofDisk(disk: GuestDisk | undefined, keyer: ContentKeyer): ImageKeys {
    if (disk === undefined) return new ImageKeys(0, () => new Uint8Array(0), undefined, keyer);
    return new ImageKeys(disk.blockCount, (i) => disk.readBlock(i), disk.generation?.bind(disk), keyer);
  }

  /** Key the pages written since the last refresh (every page the first time, or without generations). */
  refresh(): void {
    this.rekeyed = this.#keyPages(0, this.#gens.length);
    this.#primed = true;
  }

  /**
   * The first refresh in slices of `slicePages`, awaiting `between()` after
   * each (a driver yields its event loop there), so keying a big image never
   * holds the loop for long. A page written after its slice has a newer
   * generation and is keyed again by the next refresh.
   */
  async prime(slicePages: number, between: () => Promise<void>): Promise<void> {
    if (this.#primed) return;
    let n = 0;
    for (let from = 0; from < this.#gens.length; from += slicePages) {
      n += this.#keyPages(from, Math.min(this.#gens.length, from + slicePages));
      await between();
    }
    this.#primed = true;
    this.rekeyed = n;
  }

  /** Keys pages [from, to) that changed since they were keyed (all of them before priming); returns how many. */
  #keyPages(from: number, to: number): number {
    const gen = this.#generation;
    const gens = this.#gens;
    const k = this.#k;
    let n = 0;
    for (let i = from; i < to; i++) {
      const g = gen === undefined ? 0 : gen(i);
      if (this.#primed && gen !== undefined && gens[i] === g) continue;
      this.#keyer.key(this.#read(i), k);
      this.#table.set(i, k[0] ?? 0, k[1] ?? 0);
      gens[i] = g;
      n++;
    }
    return n;
  }

  /** The image's digest as it is now. */
  digest(): string {
    this.refresh();
    return this.#table.digest();
  }
}

export function memoryDigest(memory: GuestMemory, keyer: ContentKeyer): string {
  const f = new DigestFold();
  const k = new Uint32Array(2);
  for (let i = 0; i < memory.pageCount; i++) {
    keyer.key(memory.readPage(i), k);
    f.add(k[0] ?? 0, k[1] ?? 0);
  }
  return f.hex();
}

export function diskDigest(disk: GuestDisk | undefined, keyer: ContentKeyer): string {
  const f = new DigestFold();
  if (disk === undefined) return f.hex();
  const k = new Uint32Array(2);
  for (let i = 0; i < disk.blockCount; i++) {
    keyer.key(disk.readBlock(i), k);
    f.add(k[0] ?? 0, k[1] ?? 0);
  }
  return f.hex();
}

export function bytesDigest(bytes: Uint8Array): string {
  const f = new DigestFold();
  for (let i = 0; i < bytes.length; i += 4) {
    const w = (bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8) | ((bytes[i + 2] ?? 0) << 16) | ((bytes[i + 3] ?? 0) << 24);
    f.add(w >>> 0, bytes.length);
  }
  return f.hex();
}
