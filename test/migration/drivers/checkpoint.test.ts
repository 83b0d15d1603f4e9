import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { checkpointVirtual, restoreVirtual } from '../../../src/migration/drivers/checkpoint.ts';
import { createContentKeyer, memoryDigest, diskDigest } from '../../../src/migration/engine/content-key.ts';
import { scaledProfile } from '../../../src/migration/guests/workload-profiles.ts';

test('a live checkpoint finishes within its bound, keeps the image paused, and the source runs on; restore brings it back', async () => {
  const keyer = await createContentKeyer();
  const { profile } = scaledProfile('specjbb', 2048);
  const guest = new ModelGuest({ name: 'ck', pageCount: 2048, blockCount: 256, representation: 'synthetic', memoryWorkload: profile.memory, diskWorkload: profile.disk, seed: 4 });
  const link = { bandwidthBps: 40e6, rttMs: 5 };
  const ramMs = (2048 * 4096 * 8 * 1000) / link.bandwidthBps;
  const { result, image } = await checkpointVirtual(guest, { link, deadlineMs: 4 * ramMs });
  assert.ok(result.ok, result.error?.message);
  assert.equal(result.deadlineMet, true, `${result.memoryMs} ms against ${4 * ramMs}`);
  assert.ok(image !== undefined);
  assert.equal(image.runState, 'paused');
  assert.equal(guest.runState, 'running', 'the source resumes after a checkpoint');
  const atCheckpoint = memoryDigest(image.memory, keyer);
  guest.advance(result.totalMs + 10_000);
  assert.notEqual(memoryDigest(guest.memory, keyer), atCheckpoint, 'the source moved on');
  const restored = await restoreVirtual(image, { link });
  assert.ok(restored.result.ok, restored.result.error?.message);
  assert.equal(restored.guest?.runState, 'running');
  assert.equal(memoryDigest(restored.guest!.memory, keyer), atCheckpoint);
  assert.equal(diskDigest(restored.guest!.disk, keyer), diskDigest(image.disk, keyer));
});
