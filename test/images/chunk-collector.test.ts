/**
 * One collection pass over a site's chunk store (chunk-collector.ts): every referenced chunk is kept, an
 * unreferenced one older than the grace removed, a young one kept; a put of
 * a chunk already there renews it; a pass stops at its bound; a pass cut
 * off between two removals leaves every chunk whole, and the next one goes
 * on. (The daemon's scheduler: test/host/chunk-collection.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectChunks } from '../../src/images/chunk-collector.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { storeWith } from './chunk-store-fixture.ts';

const HOUR = 3_600_000;

test('keeps every referenced chunk, removes an unreferenced one past the grace, keeps a young one', async (t) => {
  const { store, digests, age } = await storeWith(t, 4);
  const [a, b, old, young] = digests as [string, string, string, string];
  for (const d of [a, b, old]) age(d, 2 * HOUR);
  const pass = await collectChunks(store, new Set([a, b]), { nowMs: Date.now(), graceMs: HOUR, maxRemovals: 100 });
  assert.deepEqual(pass, { examined: 4, live: 2, young: 1, removedChunks: 1, removedBytes: 102, more: false });
  assert.deepEqual((await store.list()).sort(), [a, b, young].sort());
  for (const d of [a, b, young]) await store.get(d); // whole and verified
});

test('a put of a chunk already stored renews it: an upload before its manifest is not collected', async (t) => {
  const { store, digests, age } = await storeWith(t, 2);
  for (const d of digests) age(d, 2 * HOUR);
  await store.put(new Uint8Array(100).fill(1)); // digests[0] again, as a publish's upload does
  const pass = await collectChunks(store, new Set(), { nowMs: Date.now(), graceMs: HOUR, maxRemovals: 100 });
  assert.equal(pass.removedChunks, 1);
  assert.deepEqual(await store.list(), [digests[0]]);
});

test('a pass removes at most maxRemovals, oldest first, and says there is more', async (t) => {
  const { store, digests, age } = await storeWith(t, 5);
  digests.forEach((d, i) => age(d, (10 - i) * HOUR));
  const first = await collectChunks(store, new Set(), { nowMs: Date.now(), graceMs: HOUR, maxRemovals: 2 });
  assert.equal(first.removedChunks, 2);
  assert.equal(first.more, true);
  assert.deepEqual(await store.list(), digests.slice(2).sort());
  const second = await collectChunks(store, new Set(), { nowMs: Date.now(), graceMs: HOUR, maxRemovals: 10 });
  assert.deepEqual([second.removedChunks, second.more], [3, false]);
});

test('a pass cut off between two removals leaves only whole chunks, and the next pass goes on', async (t) => {
  const { store, digests, age } = await storeWith(t, 6);
  const keep = new Set(digests.slice(0, 2));
  for (const d of digests) age(d, 2 * HOUR);
  let removed = 0;
  await assert.rejects(collectChunks(store, keep, {
    nowMs: Date.now(), graceMs: HOUR, maxRemovals: 100,
    onRemoved: () => { if (++removed === 2) throw new Error('crash between removals'); },
  }), /crash between removals/);
  const left = await store.list();
  assert.equal(left.length, 4, 'two removed, the rest untouched');
  for (const d of left) assert.equal((await store.get(d)).length > 0, true, `${d} is whole`);
  // A restart opens the store again: nothing half-written, and collection resumes.
  const reopened = await ChunkStore.open({ site: 'east', dir: store.dir });
  const next = await collectChunks(reopened, keep, { nowMs: Date.now(), graceMs: HOUR, maxRemovals: 100 });
  assert.equal(next.removedChunks, 2);
  assert.deepEqual(await reopened.list(), [...keep].sort());
});
