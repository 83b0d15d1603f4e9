/**
 * Daemons propagate images themselves (docs/images.md, "Propagation"): a real
 * controller (TLS control channel, SQLite) and real `vnet daemon`s
 * (startDaemonFromConfig, each keeping its site's chunk store and serving it
 * over mutual TLS on loopback), three sites. A version published at the
 * origin reaches the other sites' stores — asked for by image-hold, fetched
 * nearest first, verified — and the controller's catalog shows each site's
 * progress. A store left half full (a daemon cut off mid-propagation) is
 * resumed without fetching twice; a new version moves only its new chunks;
 * a daemon without a store is never sent a hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig, type RunningDaemon } from '../../src/host/daemon-runner.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { publishImage } from '../../src/images/replication.ts';
import type { ImageProgressReport } from '../../src/control/image-control.ts';
import { startImageSites } from '../helpers/image-sites.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const CHUNK = 4096;

const DEPLOYMENT = `name: images
sites:
  - id: east
  - id: texas
  - id: california
hosts:
  - { id: ha, site: east, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hd, site: east, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: hb, site: texas, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hc, site: california, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
wan:
  - { sites: [east, texas], bandwidthMbit: 465, rttMs: 27 }
  - { sites: [east, california], bandwidthMbit: 465, rttMs: 70 }
  - { sites: [texas, california], bandwidthMbit: 465, rttMs: 40 }
policy: { updatePeriodMs: 100 }
`;

function imageBytes(chunks: number, seed: number): Uint8Array {
  const out = new Uint8Array(chunks * CHUNK);
  for (let i = 0; i < out.length; i++) out[i] = (Math.imul(i >>> 12, 2654435761) + seed * ((i >>> 12) === 3 ? 7 : 0) + i) & 0xff;
  return out;
}

test('daemons propagate a published image to every site, resume from what is on disk, report progress the controller records', { timeout: 90_000 }, async (t) => {
  const { dir, tls, controller, url, daemons } = await startImageSites(t, { name: 'images', deployment: DEPLOYMENT, hosts: ['ha', 'hb', 'hc', 'hd'], logger });
  const reports = new Map<string, ImageProgressReport[]>();
  let hubPort: number | undefined;
  const start = async (host: string, site: string, withImages: boolean): Promise<RunningDaemon> => {
    const d = await startDaemonFromConfig({ logger }, parseDaemonConfig({
      host, site, role: host === 'ha' ? 'hub' : 'spoke', transport: 'tls', tls: { dir: tls },
      listen: { host: '127.0.0.1', port: 0 }, ports: [],
      ...(hubPort !== undefined ? { hub: { host: '127.0.0.1', port: hubPort }, hubId: 'ha' } : {}),
      controller: { url, servername: 'controller' },
      ...(withImages ? { images: { dir: join(dir, `chunks-${host}`), host: '127.0.0.1', port: 0 } } : {}),
    }));
    daemons.push(d);
    const seen: ImageProgressReport[] = [];
    reports.set(host, seen);
    d.images?.propagator.onReport((r) => { if (r.type === 'image-progress') seen.push(r); });
    return d;
  };

  // The origin site's daemon, then v1 published there (every chunk at the origin before the manifest).
  const ha = await start('ha', 'east', true);
  hubPort = ha.daemon.facts().listen?.port;
  const hasher = await createChunkHasher();
  const v1 = chunkImage({ imageId: 'debian', version: 1, chunkSize: CHUNK, accessOrder: [9, 3, 0] }, imageBytes(48, 1), hasher);
  await publishImage(ha.images!.store, controller.images, v1.manifest, v1.chunkBytes);

  // California's store as a daemon cut off mid-propagation left it: half the chunks, and a half-written file in tmp/.
  const calDir = join(dir, 'chunks-hc');
  const leftover = await ChunkStore.open({ site: 'california', dir: calDir });
  for (let i = 0; i < 24; i++) await leftover.put(v1.chunkBytes[i]!);
  mkdirSync(join(calDir, 'tmp'), { recursive: true });
  writeFileSync(join(calDir, 'tmp', 'cut-off'), 'half a chunk');

  const hb = await start('hb', 'texas', true);
  const hc = await start('hc', 'california', true);
  const hd = await start('hd', 'east', false);
  await waitFor(() => daemons.every((d) => d.agent?.state === 'connected'), 'every daemon connected');

  const complete = (d: RunningDaemon, version: number): boolean => d.images?.propagator.status('debian', version)?.state === 'complete';
  await waitFor(() => complete(hb, 1) && complete(hc, 1), 'v1 complete at texas and california', 30_000);
  for (const d of [hb, hc]) {
    for (let i = 0; i < v1.manifest.chunks.length; i++) assert.deepEqual(await d.images!.store.get(v1.manifest.chunks[i]!), v1.chunkBytes[i], `chunk ${i} at ${d.images!.store.site}`);
  }
  // California resumed: its first report counted what it had, and it fetched only the rest.
  const calV1 = reports.get('hc')!.filter((r) => r.version === 1);
  assert.equal(calV1[0]?.held, 24, 'the first report counts the chunks already on disk');
  assert.equal(hc.images!.propagator.status('debian', 1)?.fetched, 24, 'only the missing half was fetched');
  assert.equal(hb.images!.propagator.status('debian', 1)?.fetched, 48);

  // The controller recorded each site's progress (what `vnet ctl images` shows).
  const sitesOf = async (version: number): Promise<Record<string, string>> => {
    const v = controller!.images.get('debian').versions.find((x) => x.version === version);
    return Object.fromEntries((v?.replicas ?? []).map((r) => [r.site, `${r.held}/${r.total}`]));
  };
  await waitFor(async () => JSON.stringify(await sitesOf(1)) === JSON.stringify({ california: '48/48', east: '48/48', texas: '48/48' }), 'the catalog shows v1 complete everywhere');

  // v2, published while everyone is connected: the same image with one chunk changed; only that chunk moves.
  const v2 = chunkImage({ imageId: 'debian', version: 2, chunkSize: CHUNK, accessOrder: [3] }, imageBytes(48, 2), hasher);
  const changed = v2.manifest.chunks.filter((d) => !v1.manifest.chunks.includes(d));
  assert.equal(changed.length, 1);
  await publishImage(ha.images!.store, controller.images, v2.manifest, v2.chunkBytes);
  await waitFor(() => complete(hb, 2) && complete(hc, 2), 'v2 complete at texas and california', 30_000);
  assert.equal(hb.images!.propagator.status('debian', 2)?.fetched, 1);
  assert.equal(hc.images!.propagator.status('debian', 2)?.fetched, 1);
  assert.ok(await hc.images!.store.has(changed[0]!));
  await waitFor(async () => JSON.stringify(await sitesOf(2)) === JSON.stringify({ california: '48/48', east: '48/48', texas: '48/48' }), 'the catalog shows v2 complete everywhere');

  // A daemon that keeps no store announced none and was sent no hold.
  assert.equal(hd.agent?.stats.imageHolds, 0);
  assert.ok((ha.agent?.stats.imageHolds ?? 0) >= 2, 'the origin was asked to hold both versions too');
});
