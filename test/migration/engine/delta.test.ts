import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyByteDelta, computeByteDelta, deltaPayloadSize, mapChunkCount } from '../../../src/migration/engine/delta.ts';
import { expandSynth, synthDiffChunks, synthFromKey, synthKeyHi, synthKeyLo, synthVersion, isZeroContent } from '../../../src/migration/engine/content-model.ts';
import { Rng } from '../../../src/migration/guests/workload.ts';

test('a byte delta turns the old page into the new one', () => {
  const a = expandSynth({ base: 11, ver: 0 });
  const b = expandSynth({ base: 11, ver: synthVersion(3, 4) });
  const d = computeByteDelta(a, b);
  const copy = a.slice();
  assert.ok(applyByteDelta(copy, d.map, d.xor));
  assert.deepEqual(copy, b);
  assert.equal(d.xor.length, mapChunkCount(d.map) * 32);
  assert.ok(deltaPayloadSize(mapChunkCount(d.map)) < 4096);
});

test('a delta whose bytes do not match its map is refused', () => {
  const a = new Uint8Array(4096);
  assert.equal(applyByteDelta(a, new Uint32Array([1, 0, 0, 0]), new Uint8Array(31)), false);
});

test('the synthetic size model names exactly the chunks XOR finds on the expanded bytes', () => {
  const rng = new Rng(3);
  for (let n = 0; n < 300; n++) {
    const base = rng.below(5) === 0 ? 0 : 1 + rng.below(1000);
    const v1 = rng.below(3) === 0 ? 0 : synthVersion(rng.below(1e6), 1 + rng.below(40));
    const v2 = synthVersion(rng.below(1e6), 1 + rng.below(40));
    const a = { base, ver: v1 };
    const b = { base, ver: v2 };
    const model = synthDiffChunks(a, b);
    const real = computeByteDelta(expandSynth(a), expandSynth(b)).map;
    assert.ok(model !== undefined);
    assert.deepEqual(Array.from(model), Array.from(real), `base ${base} ${v1} -> ${v2}`);
  }
  assert.equal(synthDiffChunks({ base: 1, ver: 0 }, { base: 2, ver: 0 }), undefined);
});

test('synthetic keys are injective and invertible; base 0 ver 0 is the zero page', () => {
  const c = { base: 77, ver: synthVersion(5, 9) };
  assert.deepEqual(synthFromKey(synthKeyHi(c), synthKeyLo(c)), c);
  assert.ok(isZeroContent({ base: 0, ver: 0 }));
  assert.ok(isZeroContent(expandSynth({ base: 0, ver: 0 })));
  assert.ok(!isZeroContent(expandSynth({ base: 0, ver: synthVersion(1, 1) })));
});
