/**
 * The daemon's collection scheduler (chunk-collection.ts) in virtual time:
 * no pass until what to keep is known; a pass soon after a change and at
 * its period, several asks making one pass; a bounded pass followed by the
 * next; removals counted (stats and metrics); a failing pass counted and
 * the next one going on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ChunkCollection, registerCollectionMetrics } from '../../src/host/chunk-collection.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { waitFor } from '../helpers/wait.ts';
import { storeWith, type StoreFixture } from '../images/chunk-store-fixture.ts';

const HOUR = 3_600_000;

async function oldChunks(t: { after(fn: () => void): void }, n: number): Promise<StoreFixture> {
  const f = await storeWith(t, n);
  for (const d of f.digests) f.age(d, 2 * HOUR);
  return f;
}

test('no pass until what to keep is known; then removals are counted, in the stats and the metrics', async (t) => {
  const { store, digests } = await oldChunks(t, 3);
  const clock = new ManualClock(0, { wallStartMs: Date.now() });
  let live: Set<string> | undefined;
  const collection = new ChunkCollection({ store, clock, logger: silentLogger(), live: () => live }, { graceMs: HOUR });
  t.after(() => collection.close());
  await collection.runNow();
  assert.deepEqual([collection.stats.passesSkipped, collection.stats.passes, (await store.list()).length], [1, 0, 3]);
  live = new Set([digests[0]!]);
  await collection.runNow();
  assert.deepEqual([collection.stats.passes, collection.stats.removedChunks, collection.stats.removedBytes], [1, 2, 101 + 102]);
  assert.deepEqual(await store.list(), [digests[0]]);
  assert.deepEqual([collection.stats.lastPass?.examined, collection.stats.lastPass?.live], [3, 1]);
  const registry = new Registry();
  registerCollectionMetrics(registry, collection);
  const text = await registry.metrics();
  assert.match(text, /vnet_daemon_image_chunks_collected_total 2\n/);
  assert.match(text, /vnet_daemon_image_collected_bytes_total 203\n/);
  assert.match(text, /vnet_daemon_image_collection_passes_total 1\n/);
});

test('a pass soon after a change (several asks, one pass) and at its period; a bounded pass is followed by the next', async (t) => {
  const { store, digests } = await oldChunks(t, 5);
  const clock = new ManualClock(0, { wallStartMs: Date.now() });
  const collection = new ChunkCollection({ store, clock, logger: silentLogger(), live: () => new Set(digests.slice(0, 1)) }, { graceMs: HOUR, everyMs: 60_000, maxRemovals: 2, soonMs: 1000 });
  t.after(() => collection.close());
  collection.schedule();
  collection.schedule();
  clock.advance(999);
  assert.equal(collection.stats.passes, 0, 'not before its delay');
  clock.advance(1);
  await waitFor(() => collection.stats.passes === 1, 'one pass');
  assert.equal(collection.stats.removedChunks, 2);
  assert.equal(collection.stats.lastPass?.more, true);
  clock.advance(1000); // the next, bounded pass follows
  await waitFor(() => collection.stats.passes === 2, 'the second pass');
  assert.equal(collection.stats.removedChunks, 4);
  assert.deepEqual(await store.list(), [digests[0]]);
  clock.advance(60_000);
  await waitFor(() => collection.stats.passes === 3, 'the periodic pass');
});

test('a pass that fails is counted and logged; the next one goes on', async (t) => {
  const { store } = await oldChunks(t, 2);
  const clock = new ManualClock(0, { wallStartMs: Date.now() });
  const collection = new ChunkCollection({ store, clock, logger: silentLogger(), live: () => new Set() }, { graceMs: HOUR });
  t.after(() => collection.close());
  // The store's directory taken away under it (a disk unmounted): the listing fails.
  rmSync(join(store.dir, 'chunks'), { recursive: true, force: true });
  await collection.runNow();
  assert.equal(collection.stats.failures, 1);
  assert.match(collection.stats.lastError ?? '', /ENOENT/);
  await ChunkStore.open({ site: 'east', dir: store.dir }); // the store's directories again
  await collection.runNow();
  assert.deepEqual([collection.stats.failures, collection.stats.passes], [1, 1]);
});
