/**
 * `vnet ctl images delete` end to end: a real controller (in-process) and
 * two real daemons keeping their sites' chunk stores on loopback. Versions 1
 * and 2 share half their chunks; a VM on each (opened through the daemons'
 * propagators, as image-vm.ts does, so the daemons report them) makes the
 * deletion of its version a 409 naming it; once v1 is deleted every site's
 * store loses v1's own chunks and keeps the shared ones, the VM on v2 reads
 * its whole disk still, the latest is v2, and the removals are counted.
 * Unknown images and versions are 404s; no token is a 401, a read-only one
 * a 403. Deleting the whole image empties both stores.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createApiToken } from '../../src/controller/api/token-store.ts';
import type { RunningDaemon } from '../../src/host/daemon-runner.ts';
import type { OpenedImage } from '../../src/host/image-propagator.ts';
import { waitFor } from '../helpers/wait.ts';
import { ctlAgainstController } from './ctl-runner.ts';
import { imageSitesDeployment, startImageSite, type ImageSiteHost } from './image-sites.ts';

const CHUNK = 4096;
const CHUNKS = 12;

describe('vnet ctl images delete', { timeout: 120_000 }, () => {
  const c = ctlAgainstController('ctl-delete', imageSitesDeployment('ctl-delete'));
  const { dir, ctl } = c;
  const daemons: RunningDaemon[] = [];
  // v2 keeps v1's first half and changes the rest.
  const v1 = new Uint8Array(CHUNKS * CHUNK).map((_, i) => (Math.imul(i >>> 12, 131) + i) & 0xff);
  const v2 = v1.map((b, i) => (i >= (CHUNKS / 2) * CHUNK ? b ^ 0x5a : b));

  let hubPort: number | undefined;
  // No grace: the test's chunks are seconds old (the grace is chunk-collector.test.ts's).
  const start = (host: ImageSiteHost): Promise<RunningDaemon> => startImageSite(c, host, hubPort, { collect: { graceMs: 0 } });

  before(async () => {
    daemons.push(await start('hub'));
    hubPort = daemons[0]!.daemon.facts().listen?.port;
    daemons.push(await start('hW'));
    await waitFor(() => daemons.every((d) => d.agent?.state === 'connected'), 'both daemons connected');
  });
  after(async () => {
    for (const d of daemons) await d.close();
  });

  it('refuses a version in use naming the VM, deletes it once free: sites keep shared chunks, lose v1\'s own, the VM on v2 unaffected', async () => {
    for (const [v, bytes] of [[1, v1], [2, v2]] as const) {
      const file = join(dir, `v${v}.img`);
      writeFileSync(file, bytes);
      const r = await ctl('images', 'publish', file, '--id', 'debian', '--version', String(v), '--chunk-size', String(CHUNK));
      assert.equal(r.code, 0, r.err.join('\n'));
    }
    const [hub, west] = daemons as [RunningDaemon, RunningDaemon];
    await waitFor(() => west.images!.propagator.status('debian', 2)?.state === 'complete', 'west holds v2');
    await waitFor(() => west.images!.propagator.status('debian', 1)?.state === 'complete', 'west holds v1');
    const m1 = c.proc.controller.images.manifest('debian', 1)!;
    const m2 = c.proc.controller.images.manifest('debian', 2)!;
    const shared = m1.chunks.filter((d) => m2.chunks.includes(d));
    const v1Only = m1.chunks.filter((d) => !m2.chunks.includes(d));
    assert.deepEqual([shared.length, v1Only.length], [CHUNKS / 2, CHUNKS / 2]);

    // A VM on each version, as a daemon's image VM opens it.
    const vm1 = await hub.images!.propagator.open('debian', 1, undefined, 'vm1');
    const vm2: OpenedImage = await west.images!.propagator.open('debian', 2, undefined, 'vm2');
    const publisher = c.proc.controller.imagePublisher;
    await waitFor(() => publisher.usersOf('debian').length === 2, () => `both VMs reported (${publisher.usersOf('debian').join(', ')})`);
    const busy = await ctl('images', 'delete', 'debian', '--version', '1');
    assert.equal(busy.code, 1);
    assert.match(busy.err.join('\n'), /409 VNET_ERR_IMAGE_IN_USE: image debian version 1 is in use by VM vm1@hub \(version 1\)/);
    assert.ok(c.proc.controller.images.manifest('debian', 1), 'nothing deleted');

    vm1.close();
    await waitFor(() => publisher.usersOf('debian', 1).length === 0, 'vm1 gone from the hub\'s report');
    const r = await ctl('images', 'delete', 'debian', '--version', '1');
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out.join('\n'), /deleted debian version 1; the sites collect/);
    const view = c.proc.controller.images.get('debian');
    assert.deepEqual([view.latest, view.versions.map((v) => v.version)], [2, [2]]);

    for (const d of daemons) {
      const store = d.images!.store;
      await waitFor(async () => {
        for (const x of v1Only) if (await store.has(x)) return false;
        return true;
      }, `${store.site} collects v1's own chunks`);
      for (const x of m2.chunks) assert.ok(await store.has(x), `${store.site} keeps ${x} (v2's)`);
      assert.equal(d.images!.collection.stats.removedChunks, v1Only.length);
      assert.equal(d.images!.collection.stats.removedBytes, v1Only.length * CHUNK);
      assert.match(await d.registry.metrics(), new RegExp(`vnet_daemon_image_chunks_collected_total\\{host="${d.daemon.hostId}"\\} ${v1Only.length}`));
    }
    assert.equal(west.images!.propagator.status('debian', 1), undefined, 'west no longer holds v1');

    // The hub restarted: the holds after its welcome are v2's only, and it collects again with what they keep.
    await hub.close();
    const hub2 = await start('hub');
    daemons[0] = hub2;
    await waitFor(() => hub2.agent?.state === 'connected', 'the hub again');
    await waitFor(() => hub2.images!.propagator.status('debian', 2)?.state === 'complete', 'the restarted hub holds v2');
    assert.equal(hub2.images!.propagator.status('debian', 1), undefined, 'v1 is not held again');
    assert.deepEqual([...(hub2.images!.propagator.liveDigests() ?? [])].sort(), [...new Set(m2.chunks)].sort());

    // The VM on v2 reads its whole disk.
    const got = new Uint8Array(v2.length);
    for (const [i, d] of m2.chunks.entries()) got.set((await vm2.fetcher.fetch(d)).bytes, i * CHUNK);
    assert.deepEqual(got, v2);

    // The whole image: refused while vm2 runs on v2, then every chunk goes.
    const busy2 = await ctl('images', 'delete', 'debian');
    assert.match(busy2.err.join('\n'), /409 VNET_ERR_IMAGE_IN_USE: image debian is in use by VM vm2@hW \(version 2\)/);
    vm2.close();
    await waitFor(() => publisher.usersOf('debian').length === 0, 'vm2 gone from the west daemon\'s report');
    const all = await ctl('images', 'delete', 'debian');
    assert.equal(all.code, 0, all.err.join('\n'));
    for (const d of daemons) await waitFor(async () => (await d.images!.store.list()).length === 0, `${d.images!.store.site}'s store emptied`);
    const gone = c.proc.controller.images.get('debian');
    assert.deepEqual([gone.versions, gone.deleted.map((d) => d.version), gone.nextVersion], [[], [1, 2], 3], 'no version left; numbering continues at 3');
    assert.deepEqual(c.proc.controller.images.list(), []);
  });

  it('unknown images and versions are 404s; deleting needs the operator token', async () => {
    const nope = await ctl('images', 'delete', 'nope');
    assert.equal(nope.code, 1);
    assert.match(nope.err.join('\n'), /404 VNET_ERR_NOT_FOUND: image "nope" not found/);
    const file = join(dir, 'small.img');
    writeFileSync(file, v1.subarray(0, 2 * CHUNK));
    assert.equal((await ctl('images', 'publish', file, '--id', 'small', '--chunk-size', String(CHUNK))).code, 0);
    const noVersion = await ctl('images', 'delete', 'small', '--version', '9');
    assert.match(noVersion.err.join('\n'), /404 VNET_ERR_NOT_FOUND: image small version 9 not found/);
    const badVersion = await ctl('images', 'delete', 'small', '--version', 'two');
    assert.equal(badVersion.code, 2);

    const url = `${c.proc.api.url}/api/v1/images/small/versions/1`;
    const anonymous = await fetch(url, { method: 'DELETE' });
    assert.equal(anonymous.status, 401);
    const read = createApiToken(c.proc.controller.tokens, 'viewer', Date.now(), 'read');
    const viewer = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${read.token}` } });
    assert.equal(viewer.status, 403);
    assert.ok(c.proc.controller.images.manifest('small', 1), 'still there');
  });
});
