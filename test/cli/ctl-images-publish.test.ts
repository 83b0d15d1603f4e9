/**
 * `vnet ctl images publish` against a real controller (`vnet controller`'s
 * process code, in-process) and real daemons keeping their sites' chunk
 * stores on loopback: the file's chunks go to the origin's store through
 * the API and the origin's chunk server (mutual TLS, the controller's
 * certificate), the manifest only after; the other site propagates it. Bad
 * files and traces, an unknown site, a conflicting version, a manifest
 * before its chunks, and a host certificate trying to write chunks are
 * refused with clear errors. `boot-trace --from-vm` publishes a VM's
 * reported boot trace as the next version's boot order.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningDaemon } from '../../src/host/daemon-runner.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { RemoteChunkSource } from '../../src/images/remote-chunk-source.ts';
import { loadHostCredentials } from '../../src/pki/certs.ts';
import { waitFor } from '../helpers/wait.ts';
import { ctlAgainstController } from './ctl-runner.ts';
import { imageSitesDeployment, startImageSites } from './image-sites.ts';

const CHUNK = 4096;

describe('vnet ctl images publish', { timeout: 90_000 }, () => {
  const c = ctlAgainstController('ctl-publish', imageSitesDeployment('ctl-publish'));
  const { dir, ctl } = c;
  const daemons: RunningDaemon[] = [];
  const image = new Uint8Array(20 * CHUNK + 100).map((_, i) => (Math.imul(i >>> 12, 97) + i) & 0xff);
  const file = join(dir, 'debian.img');

  before(async () => {
    daemons.push(...await startImageSites(c));
    await waitFor(() => daemons.every((d) => d.agent?.state === 'connected'), 'both daemons connected');
    writeFileSync(file, image);
  });
  after(async () => {
    for (const d of daemons) await d.close();
  });

  it('publishes a file at the hub\'s site, boot chunks first, and the other site propagates it', async () => {
    const trace = join(dir, 'boot.trace');
    writeFileSync(trace, `# a boot\n${9 * CHUNK + 10} 5000\n0\n${9 * CHUNK}\n`);
    const r = await ctl('images', 'publish', file, '--id', 'debian', '--boot-trace', trace, '--chunk-size', String(CHUNK));
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out.join('\n'), /published debian version 1 at east: .* in 21 chunks \(21 distinct uploaded\), 3 read first at boot/);
    const v = c.proc.controller.images.get('debian').versions[0]!;
    assert.equal(v.bootChunks, 3);
    assert.deepEqual(c.proc.controller.images.manifest('debian', 1)?.accessOrder, [9, 10, 0]);
    const [hub, west] = daemons as [RunningDaemon, RunningDaemon];
    const manifest = c.proc.controller.images.manifest('debian', 1)!;
    for (const d of manifest.chunks) assert.ok(await hub.images!.store.has(d), 'every chunk at the origin');
    await waitFor(() => west.images!.propagator.status('debian', 1)?.state === 'complete', 'west holds v1');
    const got = new Uint8Array(image.length);
    for (const [i, d] of manifest.chunks.entries()) got.set(await west.images!.store.get(d), i * CHUNK);
    assert.deepEqual(got, image, 'west reassembles the file bit for bit');
    await waitFor(() => c.proc.controller.images.get('debian').versions[0]!.replicas.find((x) => x.site === 'west')?.complete, 'the catalog shows west complete');

    // The same file again under the same version: nothing changes; another file under it: 409.
    const again = await ctl('images', 'publish', file, '--id', 'debian', '--version', '1', '--chunk-size', String(CHUNK), '--boot-trace', trace);
    assert.equal(again.code, 0, again.err.join('\n'));
    const other = join(dir, 'other.img');
    writeFileSync(other, image.map((b) => b ^ 1));
    const clash = await ctl('images', 'publish', other, '--id', 'debian', '--version', '1', '--chunk-size', String(CHUNK));
    assert.equal(clash.code, 1);
    assert.match(clash.err.join('\n'), /409 VNET_ERR_CONFLICT: image debian version 1 is already published with other content/);
    // Without --version: the next one.
    const next = await ctl('images', 'publish', other, '--id', 'debian', '--chunk-size', String(CHUNK), '--json');
    assert.equal(next.code, 0, next.err.join('\n'));
    assert.equal((JSON.parse(next.out.join('\n')) as { version: number }).version, 2);
  });

  it('boot-trace --from-vm: a VM\'s trace, reported by its daemon, becomes the next version\'s boot order', async () => {
    const none = await ctl('images', 'boot-trace', 'debian', '--from-vm', 'v9');
    assert.equal(none.code, 1);
    assert.match(none.err.join('\n'), /404 VNET_ERR_NOT_FOUND: a boot trace of VM "v9"/);
    // The west daemon reports what its VM v9 read first on version 2 (over its control channel, as image-vm.ts does).
    const west = daemons[1]!;
    west.images!.propagator.reportBootTrace({ imageId: 'debian', version: 2, vm: 'v9', accessOrder: [4, 1, 17] });
    const r = await waitFor(async () => {
      const x = await ctl('images', 'boot-trace', 'debian', '--from-vm', 'v9');
      return x.code === 0 ? x : undefined;
    }, 'the trace reached the controller');
    assert.match(r.out.join('\n'), /debian version 3: 3 chunks read first at boot \(recorded by v9\)/);
    const v2 = c.proc.controller.images.manifest('debian', 2)!;
    const v3 = c.proc.controller.images.manifest('debian', 3)!;
    assert.deepEqual(v3.accessOrder, [4, 1, 17]);
    assert.deepEqual(v3.chunks, v2.chunks, 'the same chunks: only the boot order is new');
    await waitFor(() => west.images!.propagator.status('debian', 3)?.state === 'complete', 'west holds v3');
    const stale = await ctl('images', 'boot-trace', 'debian', '--from-vm', 'v9');
    assert.equal(stale.code, 1);
    assert.match(stale.err.join('\n'), /409 VNET_ERR_CONFLICT: VM v9's boot trace is of debian version 2, the latest is 3/);
  });

  it('refuses an unknown site, a missing or empty file, a bad boot trace', async () => {
    const nowhere = await ctl('images', 'publish', file, '--id', 'x', '--site', 'mars');
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.err.join('\n'), /400 VNET_ERR_IMAGE_SITE: site "mars" has no chunk server in the deployment \(sites with one: east, west\)/);
    const missing = await ctl('images', 'publish', join(dir, 'nope.img'), '--id', 'x');
    assert.equal(missing.code, 2);
    assert.match(missing.err.join('\n'), /cannot publish .*nope\.img: ENOENT/);
    const empty = join(dir, 'empty.img');
    writeFileSync(empty, '');
    assert.match((await ctl('images', 'publish', empty, '--id', 'x')).err.join('\n'), /is empty/);
    const badTrace = join(dir, 'bad.trace');
    writeFileSync(badTrace, '0 10\nforty two\n');
    const bad = await ctl('images', 'publish', file, '--id', 'x', '--boot-trace', badTrace);
    assert.equal(bad.code, 2);
    assert.match(bad.err.join('\n'), /bad\.trace:2: expected "OFFSET \[LENGTH\]"/);
    writeFileSync(badTrace, `${image.length} 1\n`);
    assert.match((await ctl('images', 'publish', file, '--id', 'x', '--boot-trace', badTrace)).err.join('\n'), /bad\.trace:1: .* past the image's end/);
    assert.throws(() => c.proc.controller.images.get('x'), { code: 'VNET_ERR_NOT_FOUND' }, 'nothing was published');
  });

  it('a manifest whose chunks are not all at the origin is refused, and no version is written', async () => {
    const hasher = await createChunkHasher();
    const absent = hasher.digest(new Uint8Array([1, 2, 3]));
    const r = await fetch(`${c.proc.api.url}/api/v1/images/ghost/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readFileSync(join(dir, 'api-token'), 'utf8').trim()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ version: 1, chunkSize: 3, size: 3, chunks: [absent] }),
    });
    assert.equal(r.status, 409);
    assert.match(await r.text(), /VNET_ERR_IMAGE_INCOMPLETE.*1 of 1 chunks of image ghost version 1 are not at site east/);
    assert.throws(() => c.proc.controller.images.get('ghost'), { code: 'VNET_ERR_NOT_FOUND' });
  });

  it('a daemon\'s chunk server lets only the controller\'s certificate write', async () => {
    const hub = daemons[0]!;
    const asHost = new RemoteChunkSource({ site: 'east', peer: 'hub', address: hub.images!.server.address, ...(await loadHostCredentials(join(dir, 'certs'), 'hW')) });
    const bytes = new Uint8Array([7, 7, 7]);
    const digest = (await createChunkHasher()).digest(bytes);
    await assert.rejects(asHost.write(digest, bytes), { code: 'VNET_ERR_IMAGE_PEER', message: /may not write chunks/ });
    asHost.close();
    assert.equal(await hub.images!.store.has(digest), false);
  });
});
