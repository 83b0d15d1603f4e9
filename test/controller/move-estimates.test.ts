import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimateMove, MoveEstimateCache } from '../../src/controller/move-estimates.ts';

/**
 * The scheduler's move cost comes from the migration engine run in virtual
 * time. A big VM runs scaled down (its rates and the link scaled alike):
 * the scaled estimate must agree with running the VM at full size.
 */

const PATH = { bandwidthMbit: 20, rttMs: 27 };

test('a scaled-down estimate agrees with the engine run at full size (bytes and seconds within 15%)', async () => {
  for (const profile of ['tpc-w', 'idle', 'kernel-compile'] as const) {
    const vm = { memoryMiB: 32, diskGiB: 0.0625, profile };
    const full = await estimateMove(vm, PATH, { samplePages: Number.MAX_SAFE_INTEGER });
    const scaled = await estimateMove(vm, PATH, { samplePages: 512 });
    assert.ok(Math.abs(scaled.bytes / full.bytes - 1) < 0.15, `${profile}: ${scaled.bytes} bytes scaled, ${full.bytes} full`);
    assert.ok(Math.abs(scaled.seconds / full.seconds - 1) < 0.15, `${profile}: ${scaled.seconds} s scaled, ${full.seconds} s full`);
    // At least the VM's distinct content crosses the link: more than nothing, at no more than the link's rate.
    assert.ok(full.seconds >= (full.bytes * 8) / (PATH.bandwidthMbit * 1e6) * 0.99, `${profile}: faster than the link`);
  }
});

test('the estimate follows the VM and the path: a bigger disk costs more, a faster link less time', async () => {
  const vm = { memoryMiB: 2048, diskGiB: 2, profile: 'tpc-w' as const };
  const base = await estimateMove(vm, { bandwidthMbit: 465, rttMs: 27 });
  const bigDisk = await estimateMove({ ...vm, diskGiB: 20 }, { bandwidthMbit: 465, rttMs: 27 });
  const fast = await estimateMove(vm, { bandwidthMbit: 4650, rttMs: 27 });
  assert.ok(bigDisk.bytes > base.bytes && bigDisk.seconds > base.seconds, `disk: ${bigDisk.bytes} vs ${base.bytes} bytes`);
  assert.ok(fast.seconds < base.seconds, `link: ${fast.seconds} vs ${base.seconds} s`);
  const cache = new MoveEstimateCache();
  await cache.prepare([{ vm, path: { bandwidthMbit: 465, rttMs: 27 } }, { vm, path: { bandwidthMbit: 465, rttMs: 27 } }]);
  assert.equal(cache.size, 1, 'one run per distinct pair');
  assert.deepEqual(cache.get(vm, { bandwidthMbit: 465, rttMs: 27 }), base, 'the engine in virtual time is deterministic');
  assert.equal(cache.get(vm, { bandwidthMbit: 100, rttMs: 27 }), undefined);
});
