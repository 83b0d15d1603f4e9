/**
 * The disk phase of a migration sends only the image chunks the
 * destination's store lacks (stream v3, disk-image-exchange.ts): a VM whose
 * disk is a base image plus its own writes, moved over loopback TCP between
 * real chunk stores. Counted: a VM on a base image the destination holds
 * sends only its changed chunks; the same disk to a destination without
 * the image sends every block; a chunk corrupted in the destination's store
 * is found at the query and its blocks are sent. Each time the
 * destination's disk is bit-identical to the source's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { realClock, type Clock } from '../../../src/common/clock.ts';
import { createChunkHasher, type ChunkHasher } from '../../../src/images/chunk-digest.ts';
import { ChunkStore } from '../../../src/images/chunk-store.ts';
import { chunkImage } from '../../../src/images/manifest.ts';
import { BLOCK_SIZE, type Guest } from '../../../src/migration/guest.ts';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { receiveMigration, sendMigration } from '../../../src/migration/drivers/socket-migration.ts';
import { connectMigration, listenMigration } from '../../../src/migration/drivers/socket-channel.ts';
import type { DiskImageSource } from '../../../src/migration/drivers/disk-image-exchange.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';

const BLOCKS = 64;
const CHUNK_BLOCKS = 4;
const CHUNK = CHUNK_BLOCKS * BLOCK_SIZE;

function baseImage(): Uint8Array {
  const out = new Uint8Array(BLOCKS * BLOCK_SIZE);
  for (let i = 0; i < out.length; i++) out[i] = (Math.imul(i >>> 12, 2654435761) >>> 24) ^ (i & 0xff);
  return out;
}

/** A VM cloned from the base image, then its own writes to blocks 5 and 41 (chunks 1 and 10). */
function clonedVm(base: Uint8Array): ModelGuest {
  const g = new ModelGuest({ name: 'vm', pageCount: 128, blockCount: BLOCKS, representation: 'bytes', seed: 3 });
  for (let b = 0; b < BLOCKS; b++) g.disk!.writeBlock(b, base.slice(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE));
  for (const b of [5, 41]) g.disk!.writeBlock(b, new Uint8Array(BLOCK_SIZE).fill(b));
  return g;
}

function diskImageOf(g: Guest, chunks: readonly string[], hasher: ChunkHasher): DiskImageSource {
  return {
    chunkBlocks: CHUNK_BLOCKS,
    chunks,
    matches(first, count, digest) {
      const span = new Uint8Array(count * BLOCK_SIZE);
      for (let i = 0; i < count; i++) span.set(g.disk!.readBlock(first + i) as Uint8Array, i * BLOCK_SIZE);
      return hasher.digest(span) === digest;
    },
  };
}

function clockFromNow(): Clock {
  const t0 = realClock.now();
  return { ...realClock, now: () => realClock.now() - t0 };
}

async function migrate(g: Guest, image: DiskImageSource, destination: ChunkStore) {
  const l = await listenMigration({});
  const acc = l.accept(1);
  const out: Duplex[] = await connectMigration({ host: '127.0.0.1', port: l.port, channels: 1 });
  const inn = await acc;
  const clock = clockFromNow();
  try {
    const rp = receiveMigration({ channels: inn, clock, timeoutMs: 20_000, chunks: destination });
    const r = await sendMigration({ guest: g, rule: new SmartStop(), channels: out, clock, timeoutMs: 20_000, diskImage: image });
    return { r, rr: await rp };
  } finally {
    for (const s of [...out, ...inn]) s.destroy();
    await l.close();
  }
}

function sameDisk(a: Guest, b: Guest): void {
  for (let i = 0; i < BLOCKS; i++) assert.deepEqual(b.disk!.readBlock(i), a.disk!.readBlock(i), `block ${i}`);
}

test('a VM cloned from a base image the destination holds moves only its delta; a unique disk moves whole; both arrive bit-identical', { timeout: 60_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vnet-disk-image-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const hasher = await createChunkHasher();
  const base = baseImage();
  const { manifest, chunkBytes } = chunkImage({ imageId: 'base', version: 1, chunkSize: CHUNK }, base, hasher);
  const holding = await ChunkStore.open({ site: 'west', dir: join(root, 'west') });
  for (const b of chunkBytes) await holding.put(b);

  const vm = clonedVm(base);
  const { r, rr } = await migrate(vm, diskImageOf(vm, manifest.chunks, hasher), holding);
  assert.ok(r.ok && rr.ok, String(r.error ?? rr.error));
  sameDisk(vm, rr.guest!);
  assert.deepEqual(r.sender.diskImage, { chunks: 14, blocks: 56 }, 'the 14 unchanged chunks were filled at the destination');
  assert.ok(r.bytes.disk < 8 * (BLOCK_SIZE + 13) + 14 * 120, `only the two changed chunks' blocks crossed: ${r.bytes.disk} disk bytes`);

  // The same disk to a destination whose store lacks the image: every block crosses.
  const empty = await ChunkStore.open({ site: 'east', dir: join(root, 'east') });
  const vm2 = clonedVm(base);
  const whole = await migrate(vm2, diskImageOf(vm2, manifest.chunks, hasher), empty);
  assert.ok(whole.r.ok && whole.rr.ok, String(whole.r.error ?? whole.rr.error));
  sameDisk(vm2, whole.rr.guest!);
  assert.equal(whole.r.sender.diskImage, undefined, 'no chunk records: the destination holds none');
  assert.ok(whole.r.bytes.disk >= BLOCKS * BLOCK_SIZE * 0.9, `the whole disk crossed: ${whole.r.bytes.disk} bytes`);
  assert.ok(whole.r.bytes.disk > 5 * r.bytes.disk);
});

test('a chunk corrupted in the destination\'s store is detected at the query, removed, and its blocks are sent', { timeout: 60_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'vnet-disk-image-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const hasher = await createChunkHasher();
  const base = baseImage();
  const { manifest, chunkBytes } = chunkImage({ imageId: 'base', version: 1, chunkSize: CHUNK }, base, hasher);
  const store = await ChunkStore.open({ site: 'west', dir: join(root, 'west') });
  for (const b of chunkBytes) await store.put(b);
  const bad = manifest.chunks[7]!;
  const shard = join(root, 'west', 'chunks', bad.slice(0, 2));
  assert.ok(readdirSync(shard).includes(bad));
  writeFileSync(join(shard, bad), new Uint8Array(CHUNK).fill(0xee));

  const vm = clonedVm(base);
  const { r, rr } = await migrate(vm, diskImageOf(vm, manifest.chunks, hasher), store);
  assert.ok(r.ok && rr.ok, String(r.error ?? rr.error));
  sameDisk(vm, rr.guest!);
  assert.deepEqual(r.sender.diskImage, { chunks: 13, blocks: 52 }, 'chunk 7 was not trusted: sent as blocks');
  assert.equal(await store.has(bad), false, 'the corrupted copy was removed from the store');
});
