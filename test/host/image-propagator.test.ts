/**
 * The daemon's image propagator (image-propagator.ts) against a real chunk
 * server on loopback (mutual TLS): a chunk no replica has stalls the version,
 * reported with why, and it is retried until it completes; a hold whose
 * manifest does not add up is refused with the field named; a repeated hold
 * re-reports without fetching again. With image-keep: retained, released
 * and kept versions, what collection keeps, and the VMs reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import type { ImageHold, ImageProgressReport, ImageUsesReport } from '../../src/control/image-control.ts';
import { ImagePropagator } from '../../src/host/image-propagator.ts';
import { ChunkServer } from '../../src/images/chunk-server.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { chunkImage, type ImageManifest } from '../../src/images/manifest.ts';
import { initCa, issueHostCert, loadHostCredentials } from '../../src/pki/certs.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

test('a version a replica cannot complete stalls with its reason, is retried, and completes once the chunk is there', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-propagator-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCa(dir);
  await issueHostCert(dir, 'origin');
  await issueHostCert(dir, 'here');
  const origin = await ChunkStore.open({ site: 'east', dir: join(dir, 'east') });
  const server = await ChunkServer.listen({ logger }, origin, { ...(await loadHostCredentials(dir, 'origin')), host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const local = await ChunkStore.open({ site: 'west', dir: join(dir, 'west') });
  const p = new ImagePropagator({ store: local, logger, clock: realClock }, {
    credentials: await loadHostCredentials(dir, 'here'), announce: { host: '127.0.0.1', port: 1 }, retryMs: 20, concurrency: 3,
  });
  t.after(() => p.close());
  const reports: ImageProgressReport[] = [];
  p.onReport((r) => { if (r.type === 'image-progress') reports.push(r); });

  const bytes = new Uint8Array(8 * 512).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const img = chunkImage({ imageId: 'alpine', version: 3, chunkSize: 512, accessOrder: [5, 1] }, bytes, origin.hasher);
  for (let i = 0; i < 8; i++) if (i !== 6) await origin.put(img.chunkBytes[i]!);
  const hold: ImageHold = {
    type: 'image-hold', manifest: { ...img.manifest, chunks: [...img.manifest.chunks], accessOrder: [...img.manifest.accessOrder] }, origin: 'east',
    replicas: [{ site: 'east', peer: 'origin', address: server.address, rttMs: 30 }],
  };
  p.handle(hold);
  const stalled = await waitFor(() => reports.find((r) => r.state === 'stalled'), 'a stalled report');
  assert.equal(stalled.error?.code, 'VNET_ERR_IMAGE_CHUNK_UNAVAILABLE');
  assert.equal(stalled.total, 8);
  assert.ok(stalled.held < 8);
  await origin.put(img.chunkBytes[6]!);
  await waitFor(() => p.status('alpine', 3)?.state === 'complete', 'complete after a retry');
  for (let i = 0; i < 8; i++) assert.deepEqual(await local.get(img.manifest.chunks[i]!), img.chunkBytes[i]);
  assert.equal(p.status('alpine', 3)?.fetched, 8, 'each chunk fetched once across the runs');
  assert.deepEqual(reports.at(-1), { type: 'image-progress', imageId: 'alpine', version: 3, held: 8, total: 8, state: 'complete' });

  // The same hold again: re-reported, nothing fetched.
  const n = reports.length;
  p.handle(hold);
  assert.deepEqual(reports.slice(n), [{ type: 'image-progress', imageId: 'alpine', version: 3, held: 8, total: 8, state: 'complete' }]);
  assert.equal(p.status('alpine', 3)?.fetched, 8);

  // A manifest whose size does not fit its chunks: refused, naming the field.
  p.handle({ ...hold, manifest: { ...hold.manifest, version: 4, size: 99_999 } });
  const refused = reports.at(-1)!;
  assert.equal(refused.state, 'stalled');
  assert.equal(refused.error?.code, 'VNET_ERR_IMAGE_MANIFEST');
  assert.match(refused.error?.message ?? '', /size/);
  assert.equal(p.status('alpine', 4), undefined);
});

test('image-keep: retained versions open but are not fetched, a keep forgets what it does not name, a release forgets one; what collection keeps and the VMs reported', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-propagator-keep-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCa(dir);
  await issueHostCert(dir, 'here');
  const local = await ChunkStore.open({ site: 'west', dir: join(dir, 'west') });
  const p = new ImagePropagator({ store: local, logger, clock: realClock }, { credentials: await loadHostCredentials(dir, 'here'), announce: { host: '127.0.0.1', port: 1 } });
  t.after(() => p.close());
  const uses: ImageUsesReport[] = [];
  p.onReport((r) => { if (r.type === 'image-uses') uses.push(r); });
  let changes = 0;
  p.onHoldsChanged(() => changes++);
  const version = (v: number, fill: number) => chunkImage({ imageId: 'alpine', version: v, chunkSize: 4 }, new Uint8Array([1, 1, 1, 1, fill, fill, fill, fill]), local.hasher);
  const [a1, a2, a3] = [version(1, 2), version(2, 3), version(3, 4)];
  const hold = (m: ImageManifest, extra: Partial<ImageHold> = {}): ImageHold => ({ type: 'image-hold', manifest: { ...m, chunks: [...m.chunks], accessOrder: [] }, origin: 'east', replicas: [], ...extra });
  const keep = (...vs: number[]) => vs.map((v) => ({ imageId: 'alpine', version: v }));

  // A controller without image-keep: no keep, so nothing is ever collected.
  p.handle(hold(a1.manifest, { mode: 'retain' }));
  assert.equal(p.liveDigests(), undefined);
  // A keep naming a version not known yet: collection still waits for it.
  p.handle(hold(a1.manifest, { mode: 'retain', keep: keep(1, 2) }));
  assert.equal(p.liveDigests(), undefined);
  p.handle(hold(a2.manifest, { mode: 'retain', keep: keep(1, 2) }));
  assert.deepEqual([...p.liveDigests()!].sort(), [...new Set([...a1.manifest.chunks, ...a2.manifest.chunks])].sort());
  assert.equal(p.status('alpine', 2), undefined, 'a retained version is not fetched');
  assert.ok(changes >= 3);

  // A VM opens retained v1, another waits for v3; both reported.
  const vm = await p.open('alpine', 1, undefined, 'vm1');
  const waiting = p.open('alpine', 3, undefined, 'vm3');
  await waitFor(() => uses.at(-1)?.vms.length === 2, 'a uses report naming both VMs');
  assert.deepEqual(uses.at(-1)?.vms, [{ vm: 'vm1', imageId: 'alpine', version: 1 }, { vm: 'vm3', imageId: 'alpine', version: 3 }]);

  // v1 deleted: a keep without it forgets it, but the VM on it keeps its chunks live until it closes.
  p.handle(hold(a2.manifest, { mode: 'retain', keep: keep(2) }));
  assert.ok(p.liveDigests()!.has(a1.manifest.chunks[1]!), 'vm1 still reads v1');
  vm.close();
  assert.equal(p.liveDigests()!.has(a1.manifest.chunks[1]!), false);
  assert.ok(p.liveDigests()!.has(a1.manifest.chunks[0]!), 'the chunk v1 shares with v2 stays');

  // v3 held, then released: forgotten (a VM asking for the latest gets v2 again).
  p.handle(hold(a3.manifest, { mode: 'retain', keep: keep(2, 3) }));
  const opened3 = await waiting;
  assert.equal(opened3.manifest.version, 3);
  opened3.close();
  p.handle(hold(a3.manifest, { mode: 'release', keep: keep(2) }));
  assert.equal((await p.open('alpine', undefined)).manifest.version, 2);
  assert.deepEqual([...p.liveDigests()!].sort(), [...a2.manifest.chunks].sort());
  await waitFor(() => uses.at(-1)?.vms.length === 0, 'a uses report with no VM');
});
