/** A chunk store in a temporary directory with `n` small chunks, and a way to age a chunk's file (the collection tests). */
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../../src/images/chunk-store.ts';

export interface StoreFixture {
  store: ChunkStore;
  /** Chunk i is 100 + i bytes of the value i + 1. */
  digests: string[];
  /** Sets a chunk's file time `ms` in the past. */
  age(digest: string, ms: number): void;
}

export async function storeWith(t: { after(fn: () => void): void }, n: number): Promise<StoreFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-collect-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await ChunkStore.open({ site: 'east', dir });
  const digests: string[] = [];
  for (let i = 0; i < n; i++) digests.push(await store.put(new Uint8Array(100 + i).fill(i + 1)));
  const age = (d: string, ms: number): void => {
    const at = new Date(Date.now() - ms);
    utimesSync(join(dir, 'chunks', d.slice(0, 2), d), at, at);
  };
  return { store, digests, age };
}
