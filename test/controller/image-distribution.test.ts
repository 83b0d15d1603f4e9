/**
 * Which versions each site's chunk server is asked to hold and from where
 * (image-distribution.ts), the messages' decoding (image-control.ts), and the
 * deployment's `hosts[].images` checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { decodeControllerMessage, decodeDaemonMessage, encodeControlMessage } from '../../src/control/control-protocol.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { ImageCatalog } from '../../src/controller/image-catalog.ts';
import { ImageDistribution } from '../../src/controller/image-distribution.ts';
import { openStore } from '../../src/controller/store/store.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { chunkImage } from '../../src/images/manifest.ts';

const DEPLOYMENT = `name: d
sites: [{ id: east }, { id: texas }, { id: california }]
hosts:
  - { id: ha, site: east, hub: true, images: { host: 10.0.0.1, port: 7600 } }
  - { id: hb, site: texas, images: { host: 10.0.0.2, port: 0 } }
  - { id: hc, site: california, images: { host: 10.0.0.3, port: 7600 } }
  - { id: hd, site: east }
wan:
  - { sites: [east, texas], bandwidthMbit: 465, rttMs: 27 }
  - { sites: [east, california], bandwidthMbit: 465, rttMs: 70 }
  - { sites: [texas, california], bandwidthMbit: 465, rttMs: 40 }
`;

async function setup(t: { after(fn: () => void): void }): Promise<{ catalog: ImageCatalog; dist: ImageDistribution; v1: ReturnType<typeof chunkImage> }> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-image-dist-'));
  const store = openStore({ path: join(dir, 'vnet.db') });
  t.after(() => { store.close(); rmSync(dir, { recursive: true, force: true }); });
  const catalog = new ImageCatalog({ store, wallClock: () => 1000 });
  const dist = new ImageDistribution({ catalog, deployment: parseDeployment(DEPLOYMENT, 'd.yaml'), logger: silentLogger() });
  const v1 = chunkImage({ imageId: 'debian', version: 1, chunkSize: 4, accessOrder: [1] }, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4]), await createChunkHasher());
  return { catalog, dist, v1 };
}

test('a chunk server saying hello is asked to hold the latest version of each image, other sites nearest first', async (t) => {
  const { catalog, dist, v1 } = await setup(t);
  await catalog.publish(v1.manifest, 'east');
  assert.deepEqual(dist.sessionOpened('hc', { host: '0.0.0.0', port: 7600 }).map((m) => m.host), ['hc']);
  // hb's port is 0 in the deployment: known only from its hello, which then makes it a replica for the others (hc asked again).
  const holds = dist.sessionOpened('hb', { host: '0.0.0.0', port: 9100 });
  assert.deepEqual(holds.map((m) => m.host).sort(), ['hb', 'hc']);
  const toC = holds.find((m) => m.host === 'hc')!.message;
  assert.equal(toC.type, 'image-hold');
  if (toC.type !== 'image-hold') return;
  assert.deepEqual(toC.replicas, [
    { site: 'texas', peer: 'hb', address: { host: '10.0.0.2', port: 9100 }, rttMs: 40 },
    { site: 'east', peer: 'ha', address: { host: '10.0.0.1', port: 7600 }, rttMs: 70 },
  ]);
  assert.equal(toC.origin, 'east');
  assert.deepEqual(toC.manifest, v1.manifest);
  // The hold goes through the codec as the daemon will decode it.
  const decoded = decodeControllerMessage(encodeControlMessage(toC));
  assert.ok(decoded.ok);
});

test('no hold for a host that is no site\'s server, nor for one whose daemon keeps no store; a publish goes to every connected server', async (t) => {
  const { catalog, dist, v1 } = await setup(t);
  await catalog.publish(v1.manifest, 'east');
  assert.deepEqual(dist.sessionOpened('hd', { host: '127.0.0.1', port: 1 }), []);
  assert.deepEqual(dist.sessionOpened('ha', undefined), [], 'an older daemon (no images in its hello) is sent nothing');
  dist.sessionOpened('hc', { host: '127.0.0.1', port: 7600 });
  const v2 = { ...v1.manifest, version: 2 };
  assert.deepEqual(dist.published(v2, 'east').map((m) => m.host), ['hc']);
  dist.sessionClosed('hc');
  assert.deepEqual(dist.published(v2, 'east'), []);
});

test('progress is recorded for the reporting server\'s site; counts that do not fit the version and reports from other hosts are refused', async (t) => {
  const { catalog, dist, v1 } = await setup(t);
  await catalog.publish(v1.manifest, 'east');
  dist.sessionOpened('hc', { host: '127.0.0.1', port: 7600 });
  await dist.progress('hc', { type: 'image-progress', imageId: 'debian', version: 1, held: 1, total: 2, state: 'propagating' });
  const replicas = (): Record<string, string> => Object.fromEntries(catalog.get('debian').versions[0]!.replicas.map((r) => [r.site, `${r.held}/${r.total}`]));
  assert.deepEqual(replicas(), { california: '1/2', east: '2/2' });
  await assert.rejects(dist.progress('hc', { type: 'image-progress', imageId: 'debian', version: 1, held: 3, total: 3, state: 'complete' }), { code: 'VNET_ERR_CONFLICT' });
  await assert.rejects(dist.progress('hc', { type: 'image-progress', imageId: 'debian', version: 9, held: 0, total: 2, state: 'propagating' }), { code: 'VNET_ERR_NOT_FOUND' });
  await dist.progress('hd', { type: 'image-progress', imageId: 'debian', version: 1, held: 2, total: 2, state: 'complete' });
  await dist.progress('hb', { type: 'image-progress', imageId: 'debian', version: 1, held: 2, total: 2, state: 'complete' });
  assert.deepEqual(replicas(), { california: '1/2', east: '2/2' }, 'neither a non-server nor a server not connected is recorded');
});

test('image-keep: a hello is sent every version (older ones retained) with the keep; a deletion releases it and re-holds the new latest; uses name VMs', async (t) => {
  const { catalog, dist, v1 } = await setup(t);
  const v2 = { ...v1.manifest, version: 2 };
  await catalog.publish(v1.manifest, 'east');
  await catalog.publish(v2, 'east');
  const holds = (ms: ReturnType<ImageDistribution['published']>): Array<[string, number, string | undefined, string | undefined]> =>
    ms.map((m) => m.message.type === 'image-hold' ? [m.host, m.message.manifest.version, m.message.mode, m.message.keep?.map((k) => k.version).join(',')] : [m.host, 0, 'not a hold', undefined]);
  assert.deepEqual(holds(dist.sessionOpened('hc', { host: '127.0.0.1', port: 7600 }, true)), [['hc', 1, 'retain', '1,2'], ['hc', 2, undefined, '1,2']]);
  assert.deepEqual(holds(dist.sessionOpened('ha', { host: '127.0.0.1', port: 7600 }, false)), [['ha', 2, undefined, undefined]], 'a daemon without image-keep: the latest, core fields only');
  for (const m of dist.sessionOpened('hc', { host: '127.0.0.1', port: 7600 }, true)) assert.ok(decodeControllerMessage(encodeControlMessage(m.message)).ok);

  dist.uses('hc', { type: 'image-uses', vms: [{ vm: 'v7', imageId: 'debian', version: 2 }, { vm: 'v8', imageId: 'debian' }] });
  assert.deepEqual(dist.usersOf('debian'), ['v7@hc (version 2)'], 'a VM still waiting for the latest blocks nothing');
  await assert.rejects(catalog.deleteVersions('debian', 2, (i, v) => dist.usersOf(i, v)), { code: 'VNET_ERR_IMAGE_IN_USE', message: /v7@hc \(version 2\)/ });
  const deleted: number[][] = [];
  catalog.onDeleted((d) => deleted.push(d.map((r) => r.manifest.version)));
  assert.deepEqual(await catalog.deleteVersions('debian', 1, (i, v) => dist.usersOf(i, v)), [1]);
  assert.deepEqual(deleted, [[1]]);
  dist.uses('hc', { type: 'image-uses', vms: [] });
  assert.deepEqual(await catalog.deleteVersions('debian', 2, (i, v) => dist.usersOf(i, v)), [2]);
  const gone = [{ manifest: v2, originSite: 'east' }];
  assert.deepEqual(holds(dist.deleted(gone)), [['hc', 2, 'release', '']], 'the image is gone: a release with an empty keep to hc; nothing for ha (no image-keep)');
  // Numbering continues (deleted numbers are never reused): v3 and v4.
  const v3 = { ...v1.manifest, version: 3 };
  const v4 = { ...v1.manifest, version: 4 };
  await catalog.publish(v3, 'east');
  await catalog.publish(v4, 'east');
  await catalog.deleteVersions('debian', 4, () => []);
  assert.deepEqual(holds(dist.deleted([{ manifest: v4, originSite: 'east' }])), [['hc', 4, 'release', '3'], ['hc', 3, undefined, '3'], ['ha', 3, undefined, undefined]], 'the latest was deleted: v3 is the latest again, held everywhere');
  await assert.rejects(catalog.deleteVersions('debian', 9, () => []), { code: 'VNET_ERR_NOT_FOUND' });
  await assert.rejects(catalog.deleteVersions('nope', undefined, () => []), { code: 'VNET_ERR_NOT_FOUND' });
});

test('image messages are decoded strictly', () => {
  const digest = `${'a'.repeat(16)}-${'b'.repeat(64)}`;
  const hold = { type: 'image-hold', manifest: { imageId: 'x', version: 1, chunkSize: 4, size: 4, chunks: [digest], accessOrder: [0] }, origin: 'east', replicas: [] };
  assert.ok(decodeControllerMessage(JSON.stringify(hold)).ok);
  const bad = (m: unknown, pattern: RegExp, daemon = false): void => {
    const r = daemon ? decodeDaemonMessage(JSON.stringify(m)) : decodeControllerMessage(JSON.stringify(m));
    assert.ok(!r.ok, JSON.stringify(m));
    assert.equal(r.error.code, 'VNET_ERR_CONTROL_MESSAGE');
    assert.match(r.error.message, pattern);
  };
  bad({ ...hold, manifest: { ...hold.manifest, chunks: ['nope'] } }, /manifest\.chunks\[0\]/);
  bad({ ...hold, replicas: [{ site: 'a', peer: 'h', address: { host: 'x', port: 0 }, rttMs: 1 }] }, /replicas\[0\]\.address\.port/);
  bad({ ...hold, extra: 1 }, /unknown key/);
  const progress = { type: 'image-progress', imageId: 'x', version: 1, held: 1, total: 1, state: 'complete' };
  assert.ok(decodeDaemonMessage(JSON.stringify(progress)).ok);
  bad({ ...progress, held: 2 }, /held is at most total/, true);
  bad({ ...progress, state: 'done' }, /state/, true);
});

test('the deployment names at most one chunk server per site', () => {
  assert.throws(() => parseDeployment(DEPLOYMENT.replace('- { id: hd, site: east }', '- { id: hd, site: east, images: { host: 10.0.0.4, port: 1 } }'), 'd.yaml'), {
    code: 'VNET_ERR_CONFIG', message: /hosts\[3\]\.images.*site east already keeps its images on host ha/,
  });
});
