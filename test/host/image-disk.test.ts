/**
 * A VM's disk from an image, copy-on-write (src/host/image-disk.ts): reads
 * fill only the chunks they touch, from the site's store or the nearest
 * replica; writes are the VM's own; the migration view sends an unwritten
 * span as its chunk and fills the rest before the copy; the boot trace
 * stops at its limits; an arrived disk keeps the VM's own chunks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/common/clock.ts';
import { blocksOf, ImageDisk } from '../../src/host/image-disk.ts';
import { ChunkFetcher } from '../../src/images/chunk-fetcher.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { chunkImage, type ImageManifest } from '../../src/images/manifest.ts';
import { BLOCK_SIZE } from '../../src/migration/guest.ts';
import { ModelGuest } from '../../src/migration/guests/memory-guest.ts';

const CHUNK = 2 * BLOCK_SIZE;

async function setup(t: { after(fn: () => void): void }): Promise<{ bytes: Uint8Array; manifest: ImageManifest; local: ChunkStore; replica: ChunkStore; clock: ManualClock; make(opts?: Partial<ConstructorParameters<typeof ImageDisk>[1]>): { disk: ImageDisk; guest: ModelGuest } }> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-image-disk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bytes = new Uint8Array(8 * CHUNK - 100).map((_, i) => (i * 7 + (i >>> 13)) & 0xff);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'base', version: 3, chunkSize: CHUNK }, bytes, await createChunkHasher());
  const local = await ChunkStore.open({ site: 'here', dir: join(dir, 'here') });
  const replica = await ChunkStore.open({ site: 'near', dir: join(dir, 'near') });
  for (const b of chunkBytes) await replica.put(b);
  await local.put(chunkBytes[6]!);
  const clock = new ManualClock(1000);
  const make = (opts: Partial<ConstructorParameters<typeof ImageDisk>[1]> = {}): { disk: ImageDisk; guest: ModelGuest } => {
    const guest = new ModelGuest({ name: 'g', pageCount: 4, blockCount: blocksOf(manifest), representation: 'bytes' });
    const fetcher = new ChunkFetcher({ local, replicas: [replica], latencyMs: () => 10 });
    return { disk: new ImageDisk({ clock }, { manifest, disk: guest.disk!, fetcher, ...opts }), guest };
  };
  return { bytes, manifest, local, replica, clock, make };
}

test('reads fill only the chunks they touch (local first, else the replica); writes are the VM\'s own', async (t) => {
  const { bytes, make } = await setup(t);
  const { disk } = make();
  assert.deepEqual(await disk.read(CHUNK - 10, 20), bytes.subarray(CHUNK - 10, CHUNK + 10));
  assert.deepEqual(await disk.read(6 * CHUNK, 5), bytes.subarray(6 * CHUNK, 6 * CHUNK + 5));
  assert.deepEqual(Object.fromEntries(disk.servedBy), { near: 2, here: 1 }, 'chunks 0 and 1 from the replica, 6 from the site');
  assert.equal(disk.filledChunks, 3);
  // A whole-block write needs no fetch; a partial one gets the image's bytes around it.
  await disk.write(3 * CHUNK, new Uint8Array(BLOCK_SIZE).fill(9));
  assert.equal(disk.filledChunks, 3);
  await disk.write(4 * CHUNK + 1, Uint8Array.of(1, 2));
  assert.equal(disk.filledChunks, 4);
  const want = bytes.slice(3 * CHUNK, 5 * CHUNK);
  want.fill(9, 0, BLOCK_SIZE);
  want.set([1, 2], CHUNK + 1);
  assert.deepEqual(await disk.read(3 * CHUNK, 2 * CHUNK), want, 'the rest of chunk 3 from the image, under the VM\'s block');
  assert.deepEqual(disk.description, { imageId: 'base', version: 3, written: [6, 8] });
  // The last chunk is short: reads clip at the image's end; writes past it are refused, nothing written.
  assert.equal((await disk.read(8 * CHUNK - 150, 500)).length, 50);
  await assert.rejects(disk.write(8 * CHUNK - 101, Uint8Array.of(1, 2)), { code: 'VNET_ERR_HOST_IMAGE_DISK' });
  await assert.rejects(disk.read(-1, 1), { code: 'VNET_ERR_HOST_IMAGE_DISK' });
  assert.deepEqual(disk.description.written, [6, 8]);
});

test('the migration view: an unwritten span is its chunk (even unread); prepare fills the rest; describe names the VM\'s chunks; an arrived disk keeps them', async (t) => {
  const { bytes, manifest, make } = await setup(t);
  const { disk, guest } = make();
  await disk.write(2 * CHUNK, new Uint8Array(BLOCK_SIZE));
  const view = disk.diskImage;
  assert.equal(view.chunkBlocks, 2);
  assert.equal(view.matches(0, 2, manifest.chunks[0]!), true, 'never read: still the image\'s chunk');
  assert.equal(view.matches(4, 2, manifest.chunks[2]!), false, 'written');
  assert.equal(view.matches(2, 2, manifest.chunks[0]!), false, 'another chunk\'s digest');
  await view.prepare!(new Set(manifest.chunks), undefined);
  assert.equal(disk.filledChunks, 8, 'every chunk filled before the copy (the disk digest covers all of it)');
  for (let b = 0; b < blocksOf(manifest); b++) {
    if (b === 4) continue;
    const want = new Uint8Array(BLOCK_SIZE);
    want.set(bytes.subarray(b * BLOCK_SIZE, Math.min(bytes.length, (b + 1) * BLOCK_SIZE)));
    assert.deepEqual(guest.disk!.readBlock(b), want, `block ${b}`);
  }
  const described = view.describe!();
  assert.deepEqual(JSON.parse(described.manifest), manifest);
  assert.deepEqual(described.own, Uint8Array.of(0b100));
  // The destination: the whole disk is here, and chunk 2 is the VM's own.
  const { disk: arrived } = make({ arrived: { own: described.own } });
  assert.equal(arrived.filledChunks, 8);
  assert.deepEqual(arrived.description.written, [4, 5]);
  assert.equal(arrived.diskImage.matches(4, 2, manifest.chunks[2]!), false);
  assert.equal(arrived.diskImage.matches(0, 2, manifest.chunks[0]!), true);
  assert.throws(() => make({ arrived: { own: new Uint8Array(5) } }), { code: 'VNET_ERR_HOST_IMAGE_DISK' });
});

test('the boot trace: first-read order, each chunk once, ended by its chunk limit or its time; handed on once', async (t) => {
  const { make, clock } = await setup(t);
  const traces: number[][] = [];
  const { disk } = make({ bootTrace: { chunks: 3, withinMs: 5000 }, onBootTrace: (a) => traces.push([...a]) });
  await disk.read(5 * CHUNK, 1);
  await disk.read(1 * CHUNK, 1);
  await disk.read(5 * CHUNK, 1);
  assert.deepEqual(traces, []);
  await disk.read(2 * CHUNK - 1, 2);
  assert.deepEqual(traces, [[5, 1, 2]], 'three distinct chunks: the trace ends');
  await disk.read(7 * CHUNK, 1);
  disk.endBootTrace();
  assert.deepEqual(disk.bootTrace(), [5, 1, 2]);
  assert.equal(traces.length, 1);

  const timed: number[][] = [];
  const { disk: slow } = make({ bootTrace: { chunks: 64, withinMs: 5000 }, onBootTrace: (a) => timed.push([...a]) });
  await slow.read(3 * CHUNK, 1);
  clock.advance(6000);
  await slow.read(4 * CHUNK, 1);
  assert.deepEqual(timed, [[3]], 'a read after the boot\'s time ends the trace without it');
});

test('an image whose chunk size is not whole disk blocks, or a guest disk of another size, is refused', async (t) => {
  const { manifest, local } = await setup(t);
  const fetcher = new ChunkFetcher({ local, replicas: [], latencyMs: () => 0 });
  const guest = new ModelGuest({ name: 'g', pageCount: 4, blockCount: blocksOf(manifest) + 1, representation: 'bytes' });
  assert.throws(() => new ImageDisk({ clock: new ManualClock() }, { manifest, disk: guest.disk!, fetcher }), { code: 'VNET_ERR_HOST_IMAGE_DISK' });
  const odd = { ...manifest, chunkSize: CHUNK + 512 };
  assert.throws(() => new ImageDisk({ clock: new ManualClock() }, { manifest: odd, disk: guest.disk!, fetcher }), /not a multiple of the disk block/);
});
