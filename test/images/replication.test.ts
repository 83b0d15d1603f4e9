import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore, type ChunkSource } from '../../src/images/chunk-store.ts';
import { ChunkFetcher, type FetchRecord } from '../../src/images/chunk-fetcher.ts';
import { chunkImage, type ImageManifest } from '../../src/images/manifest.ts';
import { propagate, propagationProgress, publishImage, type ManifestRegistry } from '../../src/images/replication.ts';
import { ImageReader } from '../../src/images/image-reader.ts';
import { ChunkIntegrityError, ChunkUnavailableError } from '../../src/images/errors.ts';

const MS: Record<string, number> = { 'a|b': 80, 'a|c': 20, 'b|c': 10 };
const latencyMs = (x: string, y: string): number => (x === y ? 0 : MS[[x, y].sort().join('|')] ?? 1000);

async function sites(t: { after: (fn: () => void) => void }, names: string[]): Promise<Record<string, ChunkStore>> {
  const root = mkdtempSync(join(tmpdir(), 'vnet-images-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const out: Record<string, ChunkStore> = {};
  for (const n of names) out[n] = await ChunkStore.open({ site: n, dir: join(root, n) });
  return out;
}

/** A registry that checks, as a reader would, that every chunk is fetchable from the origin when the manifest lands. */
class CheckingRegistry implements ManifestRegistry {
  readonly versions: ImageManifest[] = [];
  constructor(readonly origin: ChunkStore, readonly seenMissing: string[] = []) {}
  async publish(m: ImageManifest): Promise<void> {
    for (const d of m.chunks) if (!(await this.origin.has(d))) this.seenMissing.push(d);
    this.versions.push(m);
  }
  latest(id: string): ImageManifest | undefined {
    return this.versions.filter((m) => m.imageId === id).at(-1);
  }
}

/** A replica whose first `bad` reads of each chunk arrive with a flipped byte. */
function corrupting(src: ChunkSource, bad: number): ChunkSource & { reads: number } {
  const seen = new Map<string, number>();
  const w = {
    site: src.site,
    reads: 0,
    has: (d: string) => src.has(d),
    async read(d: string): Promise<Uint8Array> {
      w.reads++;
      const n = seen.get(d) ?? 0;
      seen.set(d, n + 1);
      const bytes = Uint8Array.from(await src.read(d));
      if (n < bad) bytes[0] = (bytes[0] ?? 0) ^ 0xff;
      return bytes;
    },
  };
  return w;
}

function image(n: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
}

test('publish stores every chunk at the origin before the manifest appears', async (t) => {
  const s = await sites(t, ['a']);
  const reg = new CheckingRegistry(s.a!);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 64 }, image(1000), s.a!.hasher);
  await publishImage(s.a!, reg, manifest, chunkBytes);
  assert.equal(reg.latest('img'), manifest);
  assert.deepEqual(reg.seenMissing, []);
});

test('publish without a chunk the origin lacks writes no manifest', async (t) => {
  const s = await sites(t, ['a']);
  const reg = new CheckingRegistry(s.a!);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 64 }, image(1000), s.a!.hasher);
  const partial = chunkBytes.map((b, i) => (i === 5 ? undefined : b)) as Uint8Array[];
  await assert.rejects(publishImage(s.a!, reg, manifest, partial), ChunkUnavailableError);
  assert.equal(reg.latest('img'), undefined);
});

test('a chunk the site lacks is read on demand from the nearest replica that has it', async (t) => {
  const s = await sites(t, ['a', 'b', 'c']);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 100 }, image(1000), s.a!.hasher);
  await publishImage(s.a!, new CheckingRegistry(s.a!), manifest, chunkBytes);
  await s.b!.put(chunkBytes[3]!, manifest.chunks[3]);
  const fetcher = new ChunkFetcher({ local: s.c!, replicas: [s.a!, s.b!], latencyMs });
  assert.deepEqual(fetcher.replicaOrder, ['b', 'a']);
  const records: FetchRecord[] = [];
  const reader = new ImageReader(manifest, fetcher, (r) => records.push(r));
  assert.deepEqual(await reader.read(350, 100), Uint8Array.from([...chunkBytes[3]!.subarray(50), ...chunkBytes[4]!.subarray(0, 50)]));
  assert.deepEqual(records.map((r) => [r.from, manifest.chunks.indexOf(r.digest)]), [['b', 3], ['a', 4]], 'chunk 3 from b (10 ms), chunk 4 only at a');
  assert.ok(await s.c!.has(manifest.chunks[3]!), 'kept locally');
  records.length = 0;
  await reader.readChunk(3);
  assert.equal(records[0]?.from, 'c', 'the second read is local');
});

test('a corrupted copy is refused and fetched again; a replica that keeps sending bad bytes is passed over', async (t) => {
  const s = await sites(t, ['a', 'b', 'c']);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 100 }, image(300), s.a!.hasher);
  await publishImage(s.a!, new CheckingRegistry(s.a!), manifest, chunkBytes);
  for (const [i, b] of chunkBytes.entries()) await s.b!.put(b, manifest.chunks[i]);
  const once = corrupting(s.b!, 1);
  const f1 = new ChunkFetcher({ local: s.c!, replicas: [s.a!, once], latencyMs });
  const r1 = await f1.fetch(manifest.chunks[0]!);
  assert.deepEqual([r1.record.from, r1.record.refused, once.reads], ['b', 1, 2]);
  assert.deepEqual(r1.bytes, chunkBytes[0]);
  const always = corrupting(s.b!, 99);
  const f2 = new ChunkFetcher({ local: s.c!, replicas: [s.a!, always], latencyMs });
  const r2 = await f2.fetch(manifest.chunks[1]!);
  assert.deepEqual([r2.record.from, r2.record.refused], ['a', 2]);
  const f3 = new ChunkFetcher({ local: s.c!, replicas: [always], latencyMs });
  await assert.rejects(f3.fetch(manifest.chunks[2]!), (e: unknown) => e instanceof ChunkUnavailableError && e.cause instanceof ChunkIntegrityError);
  assert.equal(await s.c!.has(manifest.chunks[2]!), false, 'no corrupted copy stored');
});

test('propagation follows the recorded boot order, then image order', async (t) => {
  const s = await sites(t, ['a', 'b']);
  const accessOrder = [7, 2, 9, 0];
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 50, accessOrder }, image(500), s.a!.hasher);
  await publishImage(s.a!, new CheckingRegistry(s.a!), manifest, chunkBytes);
  const got = await propagate(s.b!, new ChunkFetcher({ local: s.b!, replicas: [s.a!], latencyMs }), manifest);
  assert.deepEqual(got.map((r) => manifest.chunks.indexOf(r.digest)), [7, 2, 9, 0, 1, 3, 4, 5, 6, 8]);
  assert.deepEqual(await propagationProgress(s.b!, manifest), { imageId: 'img', version: 1, site: 'b', total: 10, held: 10 });
});

test('a propagation cut off mid-way resumes after a restart from what is on disk, fetching nothing twice', async (t) => {
  const s = await sites(t, ['a', 'b']);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 50, accessOrder: [5, 4] }, image(500), s.a!.hasher);
  await publishImage(s.a!, new CheckingRegistry(s.a!), manifest, chunkBytes);
  const stop = new AbortController();
  const first: string[] = [];
  await assert.rejects(
    propagate(s.b!, new ChunkFetcher({ local: s.b!, replicas: [s.a!], latencyMs }), manifest, {
      signal: stop.signal,
      onChunk: (r) => {
        first.push(r.digest);
        if (first.length === 4) stop.abort();
      },
    }),
    { name: 'AbortError' },
  );
  writeFileSync(join(s.b!.dir, 'tmp', 'torn-write'), chunkBytes[6]!.subarray(0, 10));
  const restarted = await ChunkStore.open({ site: 'b', dir: s.b!.dir });
  assert.deepEqual(await propagationProgress(restarted, manifest), { imageId: 'img', version: 1, site: 'b', total: 10, held: 4 });
  const second = await propagate(restarted, new ChunkFetcher({ local: restarted, replicas: [s.a!], latencyMs }), manifest);
  assert.equal(second.length, 6);
  assert.deepEqual(second.filter((r) => first.includes(r.digest)), []);
  for (const [i, d] of manifest.chunks.entries()) assert.deepEqual(await restarted.get(d), chunkBytes[i]);
});
