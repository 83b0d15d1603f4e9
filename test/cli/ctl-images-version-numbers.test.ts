/**
 * `vnet ctl images publish` never reuses a version number (docs/images.md,
 * "Version numbers"), against a real controller (in-process) and the hub's
 * daemon keeping its site's chunk store on loopback: with the latest
 * deleted, a publish without `--version` takes a new number; `--version` of
 * a deleted number is the controller's 409 naming the image, the number,
 * when it was deleted and the next number (same content or not); a boot
 * trace's new version skips deleted numbers too; once the whole image is
 * deleted `vnet ctl images ID` shows where numbering continues and a publish
 * continues there. Re-publishing an existing version's content stays a no-op.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageView } from '../../src/controller/image-catalog.ts';
import type { RunningDaemon } from '../../src/host/daemon-runner.ts';
import { waitFor } from '../helpers/wait.ts';
import { ctlAgainstController } from './ctl-runner.ts';
import { imageSitesDeployment, startImageSite } from './image-sites.ts';

const CHUNK = 4096;

describe('vnet ctl images: version numbers are never reused', { timeout: 90_000 }, () => {
  const c = ctlAgainstController('ctl-version-numbers', imageSitesDeployment('ctl-version-numbers'));
  const { dir, ctl } = c;
  let hub: RunningDaemon | undefined;
  const file = (n: number): string => {
    const path = join(dir, `v${n}.img`);
    writeFileSync(path, new Uint8Array(3 * CHUNK).map((_, i) => (i * 7 + n * 31 + (i >> 12)) & 0xff));
    return path;
  };
  const publish = async (path: string, ...args: string[]): Promise<number> => {
    const r = await ctl('images', 'publish', path, '--id', 'debian', '--chunk-size', String(CHUNK), '--json', ...args);
    assert.equal(r.code, 0, r.err.join('\n'));
    return (JSON.parse(r.out.join('\n')) as { version: number }).version;
  };
  const view = async (): Promise<ImageView> => {
    const r = await ctl('images', 'debian', '--json');
    assert.equal(r.code, 0, r.err.join('\n'));
    return JSON.parse(r.out.join('\n')) as ImageView;
  };

  before(async () => {
    hub = await startImageSite(c, 'hub', undefined);
    await waitFor(() => hub?.agent?.state === 'connected', 'the hub connected');
  });
  after(async () => {
    await hub?.close();
  });

  it('a deleted number is never the default again, refused when named, and numbering continues after the whole image is deleted', async () => {
    const [f1, f2, f3, f4] = [file(1), file(2), file(3), file(4)];
    assert.equal(await publish(f1), 1);
    assert.equal(await publish(f2), 2);
    // The same content under an existing version: still a no-op (exit 0, the same version).
    assert.equal(await publish(f2, '--version', '2'), 2);

    assert.equal((await ctl('images', 'delete', 'debian', '--version', '2')).code, 0);
    const v = await view();
    assert.deepEqual([v.latest, v.nextVersion, v.deleted.map((d) => d.version)], [1, 3, [2]]);
    const shown = await ctl('images', 'debian');
    assert.match(shown.out.join('\n'), /debian\s+1 \(latest\)/);
    assert.match(shown.out.join('\n'), /^debian: version 2 deleted; the next version is 3 \(numbers are never reused\)$/m);

    // Without --version: a new number, not the deleted latest's.
    assert.equal(await publish(f3), 3);
    // A deleted number named: 409 with when and the next, whatever the content.
    for (const f of [f2, f4]) {
      const r = await ctl('images', 'publish', f, '--id', 'debian', '--version', '2', '--chunk-size', String(CHUNK));
      assert.equal(r.code, 1);
      assert.match(r.err.join('\n'), /409 VNET_ERR_IMAGE_VERSION_DELETED: image debian version 2 was published before and deleted at \d{4}-\d\d-\d\dT[\d:.]+Z: a version number is never reused; publish as version 4, the next never used/);
    }
    assert.equal(c.proc.controller.images.manifest('debian', 2), undefined);

    // A boot trace of the latest (3) with 4 deleted becomes version 5.
    assert.equal(await publish(f4), 4);
    assert.equal((await ctl('images', 'delete', 'debian', '--version', '4')).code, 0);
    hub!.images!.propagator.reportBootTrace({ imageId: 'debian', version: 3, vm: 'v1', accessOrder: [2, 0] });
    const traced = await waitFor(async () => {
      const x = await ctl('images', 'boot-trace', 'debian', '--from-vm', 'v1');
      return x.code === 0 ? x : undefined;
    }, 'the trace reached the controller');
    assert.match(traced.out.join('\n'), /debian version 5: 2 chunks read first at boot/);

    // The whole image deleted: shown with where numbering continues; a publish continues there.
    assert.equal((await ctl('images', 'delete', 'debian')).code, 0);
    const gone = await view();
    assert.deepEqual([gone.latest, gone.nextVersion, gone.versions, gone.deleted.map((d) => d.version)], [0, 6, [], [1, 2, 3, 4, 5]]);
    assert.match((await ctl('images', 'debian')).out.join('\n'), /^debian: every version deleted \(1, 2, 3, 4, 5\); the next version is 6 \(numbers are never reused\)$/m);
    assert.match((await ctl('images')).out.join('\n'), /no images published/);
    assert.equal(await publish(f1), 6);
    const r = await ctl('images', 'publish', f1, '--id', 'debian', '--version', '1', '--chunk-size', String(CHUNK));
    assert.match(r.err.join('\n'), /409 VNET_ERR_IMAGE_VERSION_DELETED: image debian version 1 was published before and deleted at .*publish as version 7/);
  });
});
