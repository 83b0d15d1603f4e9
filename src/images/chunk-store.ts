/**
 * One site's content-addressed chunk store: files on disk, named by digest.
 *
 *   <dir>/chunks/<first 2 hex of the key>/<digest>   a stored chunk
 *   <dir>/tmp/<random>                                 a write in progress
 *
 * A write goes to a temporary file, is fsynced, renamed into place and the
 * directory fsynced: a chunk is either whole under its name or absent, so a
 * crash mid-propagation loses only the chunk being written, and a restart
 * (which clears tmp/) resumes from what is on disk. Bytes are checked against
 * their digest before they are stored and again when read back: a chunk that
 * does not match is refused (and, read from disk, removed so that it is
 * fetched again).
 *
 * Collection (chunk-collector.ts) removes a chunk with `removeStale`: one
 * unlink, so a chunk is still whole or gone. A chunk's file time is its
 * mark: `put` of a chunk already here renews it, so a chunk an upload or a
 * propagation has just written or asked for again is young, and a chunk
 * being put is never removed under it (nor put while being removed).
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createChunkHasher, isChunkDigest, type ChunkHasher } from './chunk-digest.ts';
import { ChunkIntegrityError, ChunkUnavailableError } from './errors.ts';

/** Where chunks can be read from: a site's own store, or a remote replica. */
export interface ChunkSource {
  readonly site: string;
  has(digest: string): Promise<boolean>;
  /** The chunk's bytes as the source holds them (the caller verifies them). */
  read(digest: string): Promise<Uint8Array>;
}

/** A stored chunk as the collector sees it. */
export interface ChunkEntry {
  readonly digest: string;
  readonly bytes: number;
  /** When it was written, or last put again (ms since the epoch). */
  readonly mtimeMs: number;
}

export interface ChunkStoreInit {
  readonly site: string;
  readonly dir: string;
}

export class ChunkStore implements ChunkSource {
  readonly site: string;
  readonly dir: string;
  readonly #hasher: ChunkHasher;
  /** Digests being put now (never removed meanwhile). */
  readonly #putting = new Map<string, number>();
  /** Digests being removed now (a put waits for the removal to end). */
  readonly #removing = new Map<string, Promise<unknown>>();

  private constructor(init: ChunkStoreInit, hasher: ChunkHasher) {
    this.site = init.site;
    this.dir = init.dir;
    this.#hasher = hasher;
  }

  /** Opens (creating) the store and discards writes a crash left half-done. */
  static async open(init: ChunkStoreInit): Promise<ChunkStore> {
    const store = new ChunkStore(init, await createChunkHasher());
    await rm(join(init.dir, 'tmp'), { recursive: true, force: true });
    await mkdir(join(init.dir, 'tmp'), { recursive: true });
    await mkdir(join(init.dir, 'chunks'), { recursive: true });
    return store;
  }

  get hasher(): ChunkHasher {
    return this.#hasher;
  }

  #path(digest: string): string {
    if (!isChunkDigest(digest)) throw new TypeError(`not a chunk digest: ${JSON.stringify(digest)}`);
    return join(this.dir, 'chunks', digest.slice(0, 2), digest);
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.#path(digest))).isFile();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  /** Stores bytes (verified against `expected` when given; a chunk already here has its time renewed); returns their digest. */
  async put(bytes: Uint8Array, expected?: string): Promise<string> {
    const digest = this.#hasher.digest(bytes);
    if (expected !== undefined && digest !== expected) throw new ChunkIntegrityError(expected, this.site, digest);
    this.#putting.set(digest, (this.#putting.get(digest) ?? 0) + 1);
    try {
      await this.#removing.get(digest);
      if (await this.#renew(digest)) return digest;
      return await this.#write(digest, bytes);
    } finally {
      const n = this.#putting.get(digest)! - 1;
      if (n === 0) this.#putting.delete(digest);
      else this.#putting.set(digest, n);
    }
  }

  /** Renews a stored chunk's time (false: not stored). */
  async #renew(digest: string): Promise<boolean> {
    try {
      const now = new Date();
      await utimes(this.#path(digest), now, now);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  async #write(digest: string, bytes: Uint8Array): Promise<string> {
    const final = this.#path(digest);
    await mkdir(join(this.dir, 'chunks', digest.slice(0, 2)), { recursive: true });
    const tmp = join(this.dir, 'tmp', randomBytes(8).toString('hex'));
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    const dh = await open(join(this.dir, 'chunks', digest.slice(0, 2)), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return digest;
  }

  /** The raw bytes on disk (unverified: what a remote reader is served; it verifies). */
  async read(digest: string): Promise<Uint8Array> {
    try {
      const b = await readFile(this.#path(digest));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ChunkUnavailableError(digest, [this.site]);
      throw e;
    }
  }

  /** The chunk, verified; a corrupted copy is removed (so it is fetched again) and refused. */
  async get(digest: string): Promise<Uint8Array> {
    const bytes = await this.read(digest);
    const got = this.#hasher.digest(bytes);
    if (got !== digest) {
      await rm(this.#path(digest), { force: true });
      throw new ChunkIntegrityError(digest, this.site, got);
    }
    return bytes;
  }

  /** Whether the chunk is held and intact (read and verified; a corrupted copy is removed, so it is fetched or sent again). */
  async holdsIntact(digest: string): Promise<boolean> {
    if (!(await this.has(digest))) return false;
    try {
      await this.get(digest);
      return true;
    } catch (e) {
      if (e instanceof ChunkIntegrityError || e instanceof ChunkUnavailableError) return false;
      throw e;
    }
  }

  /**
   * Removes a chunk unless it was written or put again at or after
   * `cutoffMs`, or is being put now; returns its bytes (undefined: kept, or
   * already gone). One unlink: the chunk is whole or gone.
   */
  async removeStale(digest: string, cutoffMs: number): Promise<number | undefined> {
    const path = this.#path(digest);
    if (this.#putting.has(digest) || this.#removing.has(digest)) return undefined;
    const removal = (async (): Promise<number | undefined> => {
      let st;
      try {
        st = await stat(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      if (st.mtimeMs >= cutoffMs || this.#putting.has(digest)) return undefined;
      await unlink(path);
      return st.size;
    })();
    this.#removing.set(digest, removal.catch(() => undefined));
    try {
      return await removal;
    } finally {
      this.#removing.delete(digest);
    }
  }

  /** Every chunk stored here, with its size and time (a chunk removed meanwhile is left out). */
  async entries(): Promise<ChunkEntry[]> {
    const out: ChunkEntry[] = [];
    for (const digest of await this.list()) {
      try {
        const st = await stat(this.#path(digest));
        out.push({ digest, bytes: st.size, mtimeMs: st.mtimeMs });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    return out;
  }

  /** Every digest stored here. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const shard of await readdir(join(this.dir, 'chunks'))) {
      for (const name of await readdir(join(this.dir, 'chunks', shard))) if (isChunkDigest(name)) out.push(name);
    }
    return out.sort();
  }
}
