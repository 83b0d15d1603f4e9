import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { ChunkIntegrityError, ChunkUnavailableError } from '../../src/images/errors.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-chunks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a digest is the xxh64 key and the sha256 of the bytes', async () => {
  const h = await createChunkHasher();
  const bytes = new TextEncoder().encode('hello chunk');
  const d = h.digest(bytes);
  assert.match(d, /^[0-9a-f]{16}-[0-9a-f]{64}$/);
  assert.equal(d.slice(17), createHash('sha256').update(bytes).digest('hex'));
  assert.notEqual(h.digest(new TextEncoder().encode('hello chunK')), d);
});

test('put stores a chunk under its digest; get returns it; list and has see it', async (t) => {
  const store = await ChunkStore.open({ site: 'a', dir: tempDir(t) });
  const bytes = new Uint8Array([1, 2, 3, 4, 5]);
  const d = await store.put(bytes);
  assert.ok(await store.has(d));
  assert.deepEqual(await store.get(d), bytes);
  assert.deepEqual(await store.list(), [d]);
  assert.equal(await store.put(bytes), d, 'the same bytes are stored once');
  assert.deepEqual(await store.list(), [d]);
});

test('put refuses bytes that do not match the digest they were sent as, and stores nothing', async (t) => {
  const store = await ChunkStore.open({ site: 'a', dir: tempDir(t) });
  const good = store.hasher.digest(new Uint8Array([9, 9, 9]));
  await assert.rejects(store.put(new Uint8Array([9, 9, 8]), good), (e: unknown) => e instanceof ChunkIntegrityError && e.code === 'VNET_ERR_IMAGE_CHUNK_INTEGRITY');
  assert.deepEqual(await store.list(), []);
  assert.equal(await store.has(good), false);
});

test('a chunk corrupted on disk is refused on read and removed (so it is fetched again)', async (t) => {
  const dir = tempDir(t);
  const store = await ChunkStore.open({ site: 'a', dir });
  const d = await store.put(new Uint8Array(4096).fill(7));
  writeFileSync(join(dir, 'chunks', d.slice(0, 2), d), new Uint8Array(4096).fill(6));
  await assert.rejects(store.get(d), ChunkIntegrityError);
  assert.equal(await store.has(d), false);
});

test('a missing chunk is a typed error; a malformed digest is refused', async (t) => {
  const store = await ChunkStore.open({ site: 'a', dir: tempDir(t) });
  const d = store.hasher.digest(new Uint8Array([1]));
  await assert.rejects(store.get(d), ChunkUnavailableError);
  await assert.rejects(store.has('../../etc/passwd'), TypeError);
});

test('reopening discards a write a crash left in tmp/ and keeps whole chunks', async (t) => {
  const dir = tempDir(t);
  const store = await ChunkStore.open({ site: 'a', dir });
  const d = await store.put(new Uint8Array([4, 2]));
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'tmp', 'half-written'), new Uint8Array([4]));
  const again = await ChunkStore.open({ site: 'a', dir });
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  assert.deepEqual(await again.list(), [d]);
  assert.deepEqual(await again.get(d), new Uint8Array([4, 2]));
});
