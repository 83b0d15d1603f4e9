import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createContentKeyer, diskDigest, ImageKeys, memoryDigest } from '../../../src/migration/engine/content-key.ts';
import { createPageStore } from '../../../src/migration/guests/page-store.ts';
import { StoreMemory } from '../../../src/migration/guests/store-views.ts';

test('ImageKeys: the digest equals a full pass at every point, and a refresh re-keys only the pages written since the last one', async () => {
  const keyer = await createContentKeyer();
  const mem = new StoreMemory(createPageStore(64, 'bytes'));
  for (let i = 0; i < 64; i++) mem.writePage(i, new Uint8Array(4096).fill(i));
  const keys = ImageKeys.ofMemory(mem, keyer);
  assert.equal(keys.digest(), memoryDigest(mem, keyer));
  assert.equal(keys.rekeyed, 64, 'the first refresh keys every page');
  assert.equal(keys.digest(), memoryDigest(mem, keyer));
  assert.equal(keys.rekeyed, 0, 'nothing written: nothing re-keyed');
  // Writes with dirty logging off still move the generation (the digest does not trust the dirty log).
  mem.setDirtyLogging(false);
  mem.writePage(3, new Uint8Array(4096).fill(200));
  mem.writePage(40, new Uint8Array(4096).fill(201));
  mem.writePage(3, new Uint8Array(4096).fill(202));
  assert.equal(keys.digest(), memoryDigest(mem, keyer));
  assert.equal(keys.rekeyed, 2);
  // The same content written again is a write too.
  mem.writePage(5, new Uint8Array(4096).fill(5));
  assert.equal(keys.digest(), memoryDigest(mem, keyer));
  assert.equal(keys.rekeyed, 1);
});

test('ImageKeys: an image without write generations is re-keyed whole each time; no disk digests like diskDigest(undefined)', async () => {
  const keyer = await createContentKeyer();
  const store = createPageStore(8, 'bytes');
  const plain = { pageCount: 8, representation: 'bytes' as const, readPage: (i: number) => store.read(i), writePage: () => {}, setDirtyLogging: () => {}, takeDirty: () => new Uint32Array(0), isDirty: () => false, dirtyCount: () => 0 };
  const keys = ImageKeys.ofMemory(plain, keyer);
  keys.refresh();
  store.write(2, new Uint8Array(4096).fill(9));
  assert.equal(keys.digest(), memoryDigest(plain, keyer));
  assert.equal(keys.rekeyed, 8);
  assert.equal(ImageKeys.ofDisk(undefined, keyer).digest(), diskDigest(undefined, keyer));
});

test('ImageKeys.prime keys the image in slices, yielding after each; pages written meanwhile are keyed again by the next refresh', async () => {
  const keyer = await createContentKeyer();
  const mem = new StoreMemory(createPageStore(64, 'bytes'));
  for (let i = 0; i < 64; i++) mem.writePage(i, new Uint8Array(4096).fill(i));
  const keys = ImageKeys.ofMemory(mem, keyer);
  let yields = 0;
  await keys.prime(10, async () => {
    yields++;
    // The guest runs between slices: a page already keyed and one not yet.
    if (yields === 2) {
      mem.writePage(3, new Uint8Array(4096).fill(250));
      mem.writePage(60, new Uint8Array(4096).fill(251));
    }
  });
  assert.equal(yields, 7, '64 pages in slices of 10');
  assert.equal(keys.rekeyed, 64);
  assert.equal(keys.digest(), memoryDigest(mem, keyer));
  assert.equal(keys.rekeyed, 1, 'only the page written after its slice was keyed again');
  await keys.prime(10, async () => assert.fail('primed once only'));
});
