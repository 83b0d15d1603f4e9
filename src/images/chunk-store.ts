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
 */
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
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

export interface ChunkStoreInit {
  readonly site: string;
  readonly dir: string;
}

export class ChunkStore implements ChunkSource {
  readonly site: string;
  readonly dir: string;
  readonly #hasher: ChunkHasher;

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

  /** Stores bytes (verified against `expected` when given); returns their digest. */
  async put(bytes: Uint8Array, expected?: string): Promise<string> {
    const digest = this.#hasher.digest(bytes);
    if (expected !== undefined && digest !== expected) throw new ChunkIntegrityError(expected, this.site, digest);
    if (await this.has(digest)) return digest;
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

  /** Every digest stored here. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const shard of await readdir(join(this.dir, 'chunks'))) {
      for (const name of await readdir(join(this.dir, 'chunks', shard))) if (isChunkDigest(name)) out.push(name);
    }
    return out.sort();
  }
}
