/**
 * A configured VM whose disk is an image version (docs/images.md, "A VM's
 * disk from an image"): a real controller and real `vnet daemon`s on
 * loopback, three sites. The image is published at east and propagated to
 * texas; california keeps a store but prefetches nothing, and runs a VM
 * whose disk is the image. The VM starts with no chunk at its site: its
 * first reads fetch each chunk from the nearest replica holding it (texas,
 * 40 ms, not east, 70 ms), verified, and the bytes are the image's; a
 * second read is local; a write stays the VM's own; the boot trace is the
 * chunks in the order first read, and it reaches the controller, which
 * publishes it as the next version's boot order (the propagation order).
 * The VM's disk is also served over NBD (`guest.image.nbd`): a client reads
 * the image's bytes and its write lands in the VM's overlay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig, type RunningDaemon } from '../../src/host/daemon-runner.ts';
import type { ModelGuestVm } from '../../src/host/vm-runtime.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { publishImage } from '../../src/images/replication.ts';
import { NbdTestClient } from '../helpers/nbd-client.ts';
import { startImageSites } from '../helpers/image-sites.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const CHUNK = 16384;
const CHUNKS = 24;

const DEPLOYMENT = `name: image-vm
sites:
  - id: east
  - id: texas
  - id: california
hosts:
  - { id: ha, site: east, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hb, site: texas, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hc, site: california, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
wan:
  - { sites: [east, texas], bandwidthMbit: 465, rttMs: 27 }
  - { sites: [east, california], bandwidthMbit: 465, rttMs: 70 }
  - { sites: [texas, california], bandwidthMbit: 465, rttMs: 40 }
policy: { updatePeriodMs: 100 }
`;

function imageBytes(): Uint8Array {
  // 24 distinct chunks, the last one short (a disk's last block zero-padded).
  const out = new Uint8Array(CHUNKS * CHUNK - 5000);
  for (let i = 0; i < out.length; i++) out[i] = (Math.imul(i >>> 10, 2654435761) >>> 13) ^ (i & 0xff);
  return out;
}

test('a VM whose disk is an image starts at a site holding none of it: its first reads come from the nearest replica, bytes identical', { timeout: 90_000 }, async (t) => {
  const { dir, tls, controller, url, daemons } = await startImageSites(t, { name: 'image-vm', deployment: DEPLOYMENT, hosts: ['ha', 'hb', 'hc'], logger });
  let hubPort: number | undefined;
  const start = async (host: string, site: string, extra: Record<string, unknown> = {}, prefetch = true): Promise<RunningDaemon> => {
    const d = await startDaemonFromConfig({ logger }, parseDaemonConfig({
      host, site, role: host === 'ha' ? 'hub' : 'spoke', transport: 'tls', tls: { dir: tls },
      listen: { host: '127.0.0.1', port: 0 }, ports: [],
      ...(hubPort !== undefined ? { hub: { host: '127.0.0.1', port: hubPort }, hubId: 'ha' } : {}),
      controller: { url, servername: 'controller' },
      images: { dir: join(dir, `chunks-${host}`), host: '127.0.0.1', port: 0, prefetch },
      ...extra,
    }));
    daemons.push(d);
    return d;
  };

  const ha = await start('ha', 'east');
  hubPort = ha.daemon.facts().listen?.port;
  const bytes = imageBytes();
  const hasher = await createChunkHasher();
  const v1 = chunkImage({ imageId: 'debian', version: 1, chunkSize: CHUNK }, bytes, hasher);
  await publishImage(ha.images!.store, controller.images, v1.manifest, v1.chunkBytes);
  const hb = await start('hb', 'texas');
  await waitFor(() => hb.images?.propagator.status('debian', 1)?.state === 'complete', 'v1 complete at texas', 30_000);

  // California: a store that prefetches nothing, and a VM whose disk is the image.
  const hc = await start('hc', 'california', {
    ports: [{ name: 'v1', type: 'memory', mac: '02:00:00:00:00:01', guest: { memoryMiB: 1, image: { id: 'debian', bootTrace: { chunks: 4 }, nbd: { socket: join(dir, 'v1.nbd') } } } }],
  }, false);
  const vm = await waitFor(() => hc.migrations.vm('v1') as ModelGuestVm | undefined, 'the VM on its image disk at california', 30_000);
  const disk = vm.imageDisk!;
  assert.ok(disk !== undefined && vm.diskImage !== undefined, 'the VM\'s disk is the image (and a migration sends it as such)');
  assert.equal(vm.guest.disk!.blockCount, Math.ceil(bytes.length / 4096));
  assert.deepEqual(await hc.images!.store.list(), [], 'no chunk at california before the VM reads');

  // The VM's first reads: chunks 9, 3, then a span over 0 and 1, then the short last chunk.
  const reads: Array<[number, number]> = [[9 * CHUNK + 100, 3000], [3 * CHUNK, CHUNK], [CHUNK - 2048, 4096], [(CHUNKS - 1) * CHUNK, CHUNK]];
  for (const [offset, length] of reads) {
    const got = await disk.read(offset, length);
    assert.deepEqual(got, bytes.subarray(offset, Math.min(bytes.length, offset + length)), `bytes at ${offset}+${length} are the image's`);
  }
  assert.deepEqual(Object.fromEntries(disk.servedBy), { texas: 5 }, 'all 5 chunks came from texas, the nearest replica (none from east)');
  assert.equal((await hc.images!.store.list()).length, 5, 'each verified and kept at california');
  assert.deepEqual(disk.bootTrace(), [9, 3, 0, 1], 'the boot trace: the first 4 distinct chunks in first-read order');

  // Read again, over NBD as QEMU would: local now; a write is the VM's own, the rest of its block still the image's.
  assert.equal(statSync(join(dir, 'v1.nbd')).mode & 0o777, 0o600, 'the NBD socket is the owner\'s only');
  const { client: nbd, size } = await NbdTestClient.open(join(dir, 'v1.nbd'), 'v1');
  t.after(() => nbd.close());
  assert.equal(size, BigInt(bytes.length));
  assert.deepEqual(new Uint8Array((await nbd.read(3 * CHUNK, 100)).data), bytes.subarray(3 * CHUNK, 3 * CHUNK + 100));
  assert.equal(disk.servedBy.get('texas'), 5, 'nothing fetched twice');
  await disk.write(5 * CHUNK + 10, new Uint8Array([1, 2, 3]));
  const after = await disk.read(5 * CHUNK, 20);
  const want = bytes.slice(5 * CHUNK, 5 * CHUNK + 20);
  want.set([1, 2, 3], 10);
  assert.deepEqual(after, want);
  assert.equal((await nbd.write(7 * CHUNK, new Uint8Array(4096).fill(0xee))).error, 0);
  assert.deepEqual(await disk.read(7 * CHUNK, 4096), new Uint8Array(4096).fill(0xee), 'a write over NBD is in the VM\'s overlay');
  assert.deepEqual(disk.description, { imageId: 'debian', version: 1, written: [20, 28] });

  // The boot trace reached the controller; published, it is version 2's boot order (same chunks), which every site holds.
  const publisher = controller.imagePublisher!;
  await assert.rejects(publisher.publishBootTrace('debian', 'nobody'), { code: 'VNET_ERR_NOT_FOUND' });
  const v2 = await waitFor(async () => {
    try {
      return await publisher.publishBootTrace('debian', 'v1');
    } catch (err) {
      if ((err as { code?: string }).code === 'VNET_ERR_NOT_FOUND') return undefined; // not reported yet
      throw err;
    }
  }, 'v1\'s boot trace published');
  assert.equal(v2.created, true);
  assert.deepEqual(v2.manifest.accessOrder, [9, 3, 0, 1]);
  assert.equal(v2.manifest.version, 2);
  assert.deepEqual(v2.manifest.chunks, v1.manifest.chunks);
  assert.deepEqual(controller.images.manifest('debian', 2)?.accessOrder, [9, 3, 0, 1], 'the catalog holds version 2 with the trace');
  await assert.rejects(publisher.publishBootTrace('debian', 'v1'), { code: 'VNET_ERR_CONFLICT' }, 'a trace of version 1 is not the latest any more');
  await waitFor(() => hb.images?.propagator.status('debian', 2)?.state === 'complete', 'texas holds version 2', 30_000);
  assert.equal(hb.images!.propagator.status('debian', 2)?.fetched, 0, 'the same chunks: nothing moved');
});

test('a disk from an image needs the site\'s chunk store: the configuration names the port', () => {
  assert.throws(() => parseDaemonConfig({
    host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 },
    ports: [{ name: 'v1', type: 'memory', mac: '02:00:00:00:00:01', guest: { image: { id: 'debian' } } }],
  }), /ports\[0\]\.guest\.image: a disk from an image needs this site.s chunk store/);
});

test('two ports cannot share an NBD socket: the configuration names the second', () => {
  const port = (name: string, mac: string): Record<string, unknown> => ({ name, type: 'memory', mac, guest: { image: { id: 'debian', nbd: { socket: '/run/vnet/disk.nbd' } } } });
  assert.throws(() => parseDaemonConfig({
    host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, tls: { dir: '/tmp/tls' }, images: { dir: '/tmp/chunks', host: '127.0.0.1', port: 0 },
    ports: [port('v1', '02:00:00:00:00:01'), port('v2', '02:00:00:00:00:02')],
  }), /ports\[1\]\.guest\.image\.nbd\.socket: \/run\/vnet\/disk\.nbd is another port's NBD socket/);
});
