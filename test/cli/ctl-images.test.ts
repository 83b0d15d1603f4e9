/**
 * `vnet ctl images` against a real controller on loopback: an image published
 * (chunks stored at the origin site's chunk store first, then the manifest in
 * the controller's store), a second site's progress recorded, and the command
 * showing versions, sites and progress; the API's 404 for an unknown image.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { ImageView } from '../../src/controller/image-catalog.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { propagationProgress, publishImage } from '../../src/images/replication.ts';
import { ctlAgainstController } from './ctl-runner.ts';

const DEPLOYMENT = `
name: ctl-images
controller: { control: { host: 127.0.0.1, port: 0 }, api: { host: 127.0.0.1, port: 0 } }
sites: [{ id: east }, { id: west }]
wan:
  - { sites: [east, west], bandwidthMbit: 100, rttMs: 40 }
hosts:
  - { id: hub, site: east, hub: true }
  - { id: hW, site: west }
`;

describe('vnet ctl images', { timeout: 60_000 }, () => {
  const c = ctlAgainstController('ctl-images', DEPLOYMENT);
  const { dir, ctl } = c;

  it('lists nothing before an image is published', async () => {
    const r = await ctl('images');
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out.join('\n'), /no images published/);
  });

  it('shows a published version, its origin as a complete replica and another site\'s progress', async () => {
    const east = await ChunkStore.open({ site: 'east', dir: join(dir, 'chunks-east') });
    const west = await ChunkStore.open({ site: 'west', dir: join(dir, 'chunks-west') });
    const image = new Uint8Array(64 * 1024).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
    const { manifest, chunkBytes } = chunkImage({ imageId: 'debian-12', version: 1, chunkSize: 4096, accessOrder: [0, 3] }, image, east.hasher);
    await publishImage(east, c.proc.controller.images, manifest, chunkBytes);
    for (const i of [0, 3, 5]) await west.put(chunkBytes[i]!, manifest.chunks[i]);
    await c.proc.controller.images.recordProgress(await propagationProgress(west, manifest));

    const r = await ctl('images');
    assert.equal(r.code, 0, r.err.join('\n'));
    const text = r.out.join('\n');
    assert.match(text, /debian-12\s+1 \(latest\)/);
    assert.match(text, /east\s+\[█+\] 100% 16\/16 complete/);
    assert.match(text, /west\s+\[\S+\]\s+19% 3\/16$/m);

    const j = await ctl('images', 'debian-12', '--json');
    const view = JSON.parse(j.out.join('\n')) as ImageView;
    assert.deepEqual(view.versions.map((v) => [v.version, v.chunks, v.bootChunks, v.originSite]), [[1, 16, 2, 'east']]);
    assert.deepEqual(view.versions[0]!.replicas.map((x) => [x.site, x.held, x.complete]), [['east', 16, true], ['west', 3, false]]);
  });

  it('an unknown image is the controller\'s 404, exit code 1', async () => {
    const r = await ctl('images', 'nope');
    assert.equal(r.code, 1);
    assert.match(r.err.join('\n'), /image "nope" not found/);
  });
});
