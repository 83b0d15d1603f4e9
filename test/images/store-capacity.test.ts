/**
 * A store's capacity (store-capacity.ts): the bytes a version still lacks
 * (each distinct chunk once, the short last chunk at its size) beside what
 * the store holds, against the cap — at the cap fits, a byte over does not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkImage } from '../../src/images/manifest.ts';
import { checkCapacity, chunkSizes } from '../../src/images/store-capacity.ts';
import { storeWith } from './chunk-store-fixture.ts';

test('a version fits when what it lacks plus what is held is at most the cap', async (t) => {
  const { store } = await storeWith(t, 2); // 100 + 101 bytes held
  const bytes = new Uint8Array(10).map((_, i) => i);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'x', version: 1, chunkSize: 4 }, new Uint8Array([...bytes, ...bytes.subarray(0, 4)]), store.hasher);
  // Chunks: 0-3, 4-7, 8-9 0-1 (4), 2-3 (2): four distinct.
  assert.deepEqual([...chunkSizes(manifest).values()], [4, 4, 4, 2]);
  await store.put(chunkBytes[0]!);
  const held = 201 + 4;
  await checkCapacity(store, manifest, held + 10);
  await assert.rejects(checkCapacity(store, manifest, held + 9), {
    code: 'VNET_ERR_IMAGE_CAPACITY',
    message: `site east's chunk store cannot fit image x version 1: its 3 missing chunks (10 bytes) and the ${held} bytes held exceed the capacity of ${held + 9} bytes (images.capacityBytes): delete old versions or raise the cap`,
  });
  for (const b of chunkBytes) await store.put(b);
  await checkCapacity(store, manifest, 1); // nothing missing: nothing to refuse
});
