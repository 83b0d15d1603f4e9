/**
 * Image version numbers are never reused (image-catalog.ts, docs/images.md
 * "Version numbers"), on both stores: a deleted latest is not the next
 * number again; publishing a deleted number is refused (409,
 * VNET_ERR_IMAGE_VERSION_DELETED) naming the image, the number, when it
 * was deleted and the next number, whatever the content; the whole image
 * deleted, its view still says where numbering continues; and all of it
 * holds after the store is opened anew (a controller restart, or another
 * replica leading).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statusForCode } from '../../src/controller/api/errors.ts';
import { ImageCatalog } from '../../src/controller/image-catalog.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { chunkImage, type ImageManifest } from '../../src/images/manifest.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { etcdStoreFactory, sqliteStoreFactory, type StoreFactory } from '../helpers/store-factories.ts';

const DELETED_AT = Date.UTC(2026, 11, 7, 14, 0, 0);

async function manifestOf(version: number, fill: number): Promise<ImageManifest> {
  return chunkImage({ imageId: 'debian', version, chunkSize: 4, accessOrder: [] }, new Uint8Array(12).fill(fill), await createChunkHasher()).manifest;
}

function versionNumbers(label: string, factory: StoreFactory): void {
  it(`${label}: a deleted version's number is never the next one nor published again, also once the whole image is gone and after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    let now = DELETED_AT - 60_000;
    const catalog = new ImageCatalog({ store, wallClock: () => now });
    assert.throws(() => catalog.get('debian'), { code: 'VNET_ERR_NOT_FOUND' });
    assert.equal(catalog.nextVersion('debian'), 1);
    await catalog.publish(await manifestOf(1, 1), 'east');
    await catalog.publish(await manifestOf(2, 2), 'east');
    assert.deepEqual([catalog.get('debian').latest, catalog.get('debian').nextVersion], [2, 3]);

    // The latest deleted: the next is still 3, and 2 is refused whatever its content (the same as before, or other).
    now = DELETED_AT;
    assert.deepEqual(await catalog.deleteVersions('debian', 2, () => []), [2]);
    const view = catalog.get('debian');
    assert.deepEqual([view.latest, view.nextVersion, view.versions.map((v) => v.version)], [1, 3, [1]]);
    assert.deepEqual(view.deleted, [{ version: 2, publishedAt: DELETED_AT - 60_000, deletedAt: DELETED_AT }]);
    for (const fill of [2, 5]) {
      await assert.rejects(catalog.publish(await manifestOf(2, fill), 'east'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'VNET_ERR_IMAGE_VERSION_DELETED');
        assert.equal(statusForCode(err.code), 409);
        assert.equal(err.message, 'image debian version 2 was published before and deleted at 2026-12-07T14:00:00.000Z: a version number is never reused; publish as version 3, the next never used');
        return true;
      });
    }
    assert.equal(catalog.manifest('debian', 2), undefined, 'nothing written');
    // Same content again under an existing version: still a no-op (no refusal, no new row).
    await catalog.publish(await manifestOf(1, 1), 'east');
    await catalog.publish(await manifestOf(3, 3), 'east');

    // The whole image: listed no more, but its view says where numbering continues.
    now = DELETED_AT + 1000;
    assert.deepEqual(await catalog.deleteVersions('debian', undefined, () => []), [1, 3]);
    assert.deepEqual(catalog.list(), []);
    const gone = catalog.get('debian');
    assert.deepEqual([gone.latest, gone.nextVersion, gone.versions, gone.deleted.map((d) => [d.version, d.deletedAt])], [0, 4, [], [[1, DELETED_AT + 1000], [2, DELETED_AT], [3, DELETED_AT + 1000]]]);
    await assert.rejects(catalog.publish(await manifestOf(3, 3), 'east'), { code: 'VNET_ERR_IMAGE_VERSION_DELETED', message: /image debian version 3 .* deleted at .* publish as version 4/ });

    // Reopened (a restart, or the next leader): the same.
    const again = new ImageCatalog({ store: await reopen(), wallClock: () => now });
    assert.equal(again.get('debian').nextVersion, 4);
    await assert.rejects(again.publish(await manifestOf(1, 1), 'east'), { code: 'VNET_ERR_IMAGE_VERSION_DELETED', message: /version 1 .* publish as version 4/ });
    await again.publish(await manifestOf(4, 4), 'east');
    assert.deepEqual([again.get('debian').latest, again.get('debian').nextVersion, again.get('debian').versions.map((v) => v.version)], [4, 5, [4]]);
  });
}

describe('image version numbers', { timeout: 60_000 }, () => {
  let cluster: EtcdCluster | undefined;
  before(async () => { cluster = await startEtcdCluster(1); });
  after(async () => { await cluster?.stop(); });

  versionNumbers('sqlite', sqliteStoreFactory);
  versionNumbers('etcd', etcdStoreFactory(() => {
    if (cluster === undefined) throw new Error('the etcd cluster starts in before()');
    return cluster;
  }));
});
