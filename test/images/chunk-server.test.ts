import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { silentLogger } from '../../src/common/logger.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { ChunkServer } from '../../src/images/chunk-server.ts';
import { RemoteChunkSource } from '../../src/images/remote-chunk-source.ts';
import { ChunkFetcher, type FetchRecord } from '../../src/images/chunk-fetcher.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { ImageReader } from '../../src/images/image-reader.ts';
import { ChunkPeerError } from '../../src/images/errors.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';

const pki = testPki();
const MS: Record<string, number> = { 'east|north': 30, 'east|west': 90, 'north|west': 15 };
const latencyMs = (x: string, y: string): number => (x === y ? 0 : MS[[x, y].sort().join('|')] ?? 1000);

interface Site { store: ChunkStore; server: ChunkServer }

async function site(t: { after: (fn: () => unknown) => void }, root: string, name: string): Promise<Site> {
  const store = await ChunkStore.open({ site: name, dir: join(root, name) });
  const server = await ChunkServer.listen({ logger: silentLogger() }, store, { ...pki.host(`${name}-host`), ca: pki.ca, host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  return { store, server };
}

function remote(s: Site, as: string, over: Partial<{ peer: string; cert: string; key: string; ca: string }> = {}): RemoteChunkSource {
  return new RemoteChunkSource({ site: s.store.site, peer: `${s.store.site}-host`, address: s.server.address, ca: pki.ca, ...pki.host(`${as}-host`), ...over });
}

function tempRoot(t: { after: (fn: () => unknown) => void }): string {
  const root = mkdtempSync(join(tmpdir(), 'vnet-chunk-server-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

test('a VM at a site reads missing chunks on demand over mutual TLS from the nearest replica holding each', async (t) => {
  const root = tempRoot(t);
  const [east, north, west] = [await site(t, root, 'east'), await site(t, root, 'north'), await site(t, root, 'west')];
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 1, chunkSize: 1024 }, new Uint8Array(8 * 1024).map((_, i) => (i * 7 + (i >> 10) * 13) & 0xff), east.store.hasher);
  for (const [i, b] of chunkBytes.entries()) await east.store.put(b, manifest.chunks[i]);
  for (const i of [0, 1]) await north.store.put(chunkBytes[i]!, manifest.chunks[i]);
  const sources = [remote(east, 'west'), remote(north, 'west')];
  t.after(() => sources.forEach((s) => s.close()));
  const records: FetchRecord[] = [];
  const reader = new ImageReader(manifest, new ChunkFetcher({ local: west.store, replicas: sources, latencyMs }), (r) => records.push(r));
  assert.deepEqual(await reader.read(0, 3 * 1024), Uint8Array.from(Buffer.concat(chunkBytes.slice(0, 3))));
  assert.deepEqual(records.map((r) => r.from), ['north', 'north', 'east'], 'north is 15 ms away, east 90: chunks 0 and 1 from north, 2 only at east');
  assert.ok(await west.store.has(manifest.chunks[2]!));
});

test('a chunk corrupted on the serving disk is not served; the reader goes to the next replica', async (t) => {
  const root = tempRoot(t);
  const [east, north, west] = [await site(t, root, 'east'), await site(t, root, 'north'), await site(t, root, 'west')];
  const bytes = new Uint8Array(2048).fill(5);
  const d = await east.store.put(bytes);
  await north.store.put(bytes);
  writeFileSync(join(north.store.dir, 'chunks', d.slice(0, 2), d), new Uint8Array(2048).fill(6));
  const sources = [remote(east, 'west'), remote(north, 'west')];
  t.after(() => sources.forEach((s) => s.close()));
  const got = await new ChunkFetcher({ local: west.store, replicas: sources, latencyMs }).fetch(d);
  assert.equal(got.record.from, 'east');
  assert.deepEqual(got.bytes, bytes);
  assert.equal(await north.store.has(d), false, 'the corrupted copy was removed at north');
});

test('a client with a certificate from another CA is refused by the TLS handshake', async (t) => {
  const root = tempRoot(t);
  const east = await site(t, root, 'east');
  const d = await east.store.put(new Uint8Array([1, 2, 3]));
  const rogue = remote(east, 'west', { ...pki.rogueHost('west-host') });
  t.after(() => rogue.close());
  await assert.rejects(rogue.has(d), ChunkPeerError);
});

test('a server whose certificate does not name the expected host is refused', async (t) => {
  const root = tempRoot(t);
  const east = await site(t, root, 'east');
  const d = await east.store.put(new Uint8Array([1, 2, 3]));
  const wrong = remote(east, 'west', { peer: 'someone-else' });
  t.after(() => wrong.close());
  await assert.rejects(wrong.read(d), ChunkPeerError);
  const right = remote(east, 'west');
  t.after(() => right.close());
  assert.deepEqual(await right.read(d), new Uint8Array([1, 2, 3]));
});

test('a malformed request gets BAD_REQUEST and the connection is closed', async (t) => {
  const root = tempRoot(t);
  const east = await site(t, root, 'east');
  const socket = tls.connect({ ...east.server.address, ca: pki.ca, ...pki.host('west-host'), checkServerIdentity: () => undefined });
  t.after(() => socket.destroy());
  const received: Buffer[] = [];
  socket.on('data', (b: Buffer) => received.push(b));
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write('DELETE everything\n');
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  assert.deepEqual([...Buffer.concat(received)], [3, 0, 0, 0, 0]);
});

test('a replica that cannot be reached is passed over for the next nearest', async (t) => {
  const root = tempRoot(t);
  const [east, north, west] = [await site(t, root, 'east'), await site(t, root, 'north'), await site(t, root, 'west')];
  const d = await east.store.put(new Uint8Array(512).fill(9));
  await north.store.put(new Uint8Array(512).fill(9));
  await north.server.close();
  const sources = [remote(east, 'west'), remote(north, 'west')];
  t.after(() => sources.forEach((s) => s.close()));
  const got = await new ChunkFetcher({ local: west.store, replicas: sources, latencyMs }).fetch(d);
  assert.equal(got.record.from, 'east');
});

test('a writer\'s certificate may PUT verified chunks; bytes that do not match are refused and nothing is stored', async (t) => {
  const root = tempRoot(t);
  const store = await ChunkStore.open({ site: 'east', dir: join(root, 'east') });
  const server = await ChunkServer.listen({ logger: silentLogger() }, store, { ...pki.host('east-host'), ca: pki.ca, host: '127.0.0.1', port: 0, writers: ['publisher-host'] });
  t.after(() => server.close());
  const s: Site = { store, server };
  const writer = remote(s, 'publisher');
  t.after(() => writer.close());
  const bytes = new Uint8Array(2000).map((_, i) => i & 0xff);
  const digest = store.hasher.digest(bytes);
  await writer.write(digest, bytes);
  assert.deepEqual(await store.get(digest), bytes);
  await writer.write(digest, bytes); // already held: stored again is a no-op
  const other = store.hasher.digest(new Uint8Array([1]));
  await assert.rejects(writer.write(other, bytes), { code: 'VNET_ERR_IMAGE_CHUNK_INTEGRITY' });
  assert.equal(await store.has(other), false);
  // Another host of the deployment is not a writer: refused, the connection cut.
  const reader = remote(s, 'west');
  t.after(() => reader.close());
  await assert.rejects(reader.write(other, new Uint8Array([1])), { code: 'VNET_ERR_IMAGE_PEER', message: /may not write/ });
  assert.equal(await store.has(other), false);
});

test('requests pipelined on one connection are each answered in order', async (t) => {
  const root = tempRoot(t);
  const east = await site(t, root, 'east');
  const held: string[] = [];
  const absent: string[] = [];
  for (let i = 0; i < 40; i++) {
    const bytes = new Uint8Array(64).fill(i);
    if (i % 3 === 0) absent.push(east.store.hasher.digest(bytes));
    else held.push(await east.store.put(bytes));
  }
  const src = remote(east, 'west');
  t.after(() => src.close());
  const asked = [...held, ...absent].sort();
  const answers = await Promise.all(asked.map((d) => src.has(d)));
  assert.deepEqual(answers, asked.map((d) => held.includes(d)));
  const reads = await Promise.all(held.slice(0, 10).map((d) => src.read(d)));
  for (const [i, d] of held.slice(0, 10).entries()) assert.equal(east.store.hasher.digest(reads[i]!), d);
});
