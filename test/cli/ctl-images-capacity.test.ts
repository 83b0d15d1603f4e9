/**
 * A site store's capacity (`images.capacityBytes`) end to end: a real
 * controller and two daemons on loopback, the west store capped at 10
 * chunks. Version 1 (8 chunks) fits; version 2 (8 other chunks) does not:
 * west refuses it (stalled, VNET_ERR_IMAGE_CAPACITY, nothing fetched) and
 * `vnet ctl images` says why. Deleting version 1 frees the room (west
 * collects its chunks) and west's retry brings version 2 whole.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningDaemon } from '../../src/host/daemon-runner.ts';
import { waitFor } from '../helpers/wait.ts';
import { ctlAgainstController } from './ctl-runner.ts';
import { imageSitesDeployment, startImageSites } from './image-sites.ts';

const CHUNK = 4096;

describe('a site store\'s capacity', { timeout: 120_000 }, () => {
  const c = ctlAgainstController('ctl-capacity', imageSitesDeployment('ctl-capacity'));
  const { dir, ctl } = c;
  const daemons: RunningDaemon[] = [];

  before(async () => {
    daemons.push(...await startImageSites(c, (host) => ({ collect: { graceMs: 0 }, ...(host === 'hW' ? { capacityBytes: 10 * CHUNK } : {}) })));
    await waitFor(() => daemons.every((d) => d.agent?.state === 'connected'), 'both daemons connected');
  });
  after(async () => {
    for (const d of daemons) await d.close();
  });

  it('refuses a version it cannot fit, says why in vnet ctl images, and takes it once a deletion made room', async () => {
    const west = daemons[1]!;
    for (const v of [1, 2]) {
      const file = join(dir, `v${v}.img`);
      writeFileSync(file, new Uint8Array(8 * CHUNK).map((_, i) => (Math.imul(i >>> 12, 31) + i + v * 7) & 0xff));
      assert.equal((await ctl('images', 'publish', file, '--id', 'big', '--version', String(v), '--chunk-size', String(CHUNK))).code, 0);
      if (v === 1) await waitFor(() => west.images!.propagator.status('big', 1)?.state === 'complete', 'west holds v1');
    }
    await waitFor(() => west.images!.propagator.status('big', 2)?.state === 'stalled', 'west refuses v2');
    assert.equal(west.images!.propagator.status('big', 2)?.fetched, 0, 'nothing fetched');
    const shown = await waitFor(async () => {
      const r = await ctl('images', 'big');
      return /stalled/.test(r.out.join('\n')) ? r.out.join('\n') : undefined;
    }, 'vnet ctl images shows the refusal');
    assert.match(shown, /west\s+\S+\s+0% 0\/8 stalled: site west's chunk store cannot fit image big version 2: its 8 missing chunks \(32768 bytes\) and the 32768 bytes held exceed the capacity of 40960 bytes/);
    const view = c.proc.controller.images.get('big').versions.find((v) => v.version === 2)!.replicas.find((r) => r.site === 'west');
    assert.equal(view?.stalled?.code, 'VNET_ERR_IMAGE_CAPACITY');

    assert.equal((await ctl('images', 'delete', 'big', '--version', '1')).code, 0);
    await waitFor(() => west.images!.propagator.status('big', 2)?.state === 'complete', 'west takes v2 once v1 is collected');
    assert.ok(west.images!.collection.stats.removedChunks >= 8);
    await waitFor(() => c.proc.controller.images.get('big').versions[0]!.replicas.find((r) => r.site === 'west')?.complete, 'the catalogue shows west complete');
    assert.equal(c.proc.controller.images.get('big').versions[0]!.replicas.find((r) => r.site === 'west')?.stalled, undefined, 'no longer stalled');
  });
});
