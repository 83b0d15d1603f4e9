import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { chunkImage, validateManifest } from '../../src/images/manifest.ts';
import { ManifestError } from '../../src/images/errors.ts';
import { propagationOrder } from '../../src/images/propagation-order.ts';

const D = (c: string): string => c.repeat(16) + '-' + c.repeat(64);

function base(): Record<string, unknown> {
  return { imageId: 'debian-12', version: 1, chunkSize: 4, size: 10, chunks: [D('a'), D('b'), D('c')], accessOrder: [2, 0] };
}

test('a well-formed manifest validates and is frozen', () => {
  const m = validateManifest(base());
  assert.equal(m.imageId, 'debian-12');
  assert.ok(Object.isFrozen(m) && Object.isFrozen(m.chunks));
});

test('each malformed field is a ManifestError naming it', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base(), extra: 1 }, 'extra'],
    [{ ...base(), imageId: '../x' }, 'imageId'],
    [{ ...base(), version: 0 }, 'version'],
    [{ ...base(), chunkSize: -1 }, 'chunkSize'],
    [{ ...base(), chunks: [D('a'), 'zz', D('c')] }, 'chunks[1]'],
    [{ ...base(), size: 13 }, 'size'],
    [{ ...base(), accessOrder: [3] }, 'accessOrder[0]'],
    [{ ...base(), accessOrder: [1, 1] }, 'accessOrder[1]'],
  ];
  for (const [raw, field] of cases) {
    assert.throws(() => validateManifest(raw), (e: unknown) => e instanceof ManifestError && e.field === field && e.code === 'VNET_ERR_IMAGE_MANIFEST', field);
  }
  for (const junk of [null, 3, 'x', [], { chunks: null }]) assert.throws(() => validateManifest(junk), ManifestError);
});

test('chunkImage splits an image (short last chunk) and names each chunk by digest', async () => {
  const h = await createChunkHasher();
  const image = new Uint8Array(10).map((_, i) => i);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'img', version: 3, chunkSize: 4 }, image, h);
  assert.equal(manifest.chunks.length, 3);
  assert.deepEqual(chunkBytes.map((b) => b.length), [4, 4, 2]);
  assert.equal(manifest.chunks[2], h.digest(new Uint8Array([8, 9])));
});

test('propagation order: the recorded boot order first, then image order, each digest once, held ones skipped', () => {
  const m = validateManifest({ imageId: 'i', version: 1, chunkSize: 1, size: 5, chunks: [D('a'), D('b'), D('c'), D('b'), D('e')], accessOrder: [4, 3, 0] });
  assert.deepEqual(propagationOrder(m), [D('e'), D('b'), D('a'), D('c')]);
  assert.deepEqual(propagationOrder(m, new Set([D('e'), D('c')])), [D('b'), D('a')]);
});
