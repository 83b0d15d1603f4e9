import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiskSync } from '../../src/migration/disk-sync.ts';
import { ModelGuest } from '../../src/migration/memory-guest.ts';

function disk(): ModelGuest {
  return new ModelGuest({ name: 'd', pageCount: 4, blockCount: 100, representation: 'synthetic' });
}

test('bulk copy of every block, then a round over the blocks written meanwhile, then synchronous', () => {
  const g = disk();
  const d = g.disk!;
  const s = new DiskSync(d, { syncThreshold: 2 });
  s.start();
  const copied: number[] = [];
  for (let i = 0; i < 50; i++) copied.push(s.nextCopyBlock(0));
  d.writeBlock(10, { base: 9, ver: 0 });
  d.writeBlock(70, { base: 9, ver: 0 });
  d.writeBlock(71, { base: 9, ver: 0 });
  for (;;) {
    const b = s.nextCopyBlock(0);
    if (b < 0) break;
    copied.push(b);
  }
  // 100 blocks of the bulk pass, then the round over 10, 70, 71 (three > threshold 2)
  assert.deepEqual(copied.slice(0, 100), Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(copied.slice(100), [10, 70, 71]);
  assert.equal(s.synchronous, true);
  assert.equal(s.rounds, 2);
  // synchronous: each write is queued at once, in order
  d.writeBlock(5, { base: 3, ver: 0 });
  s.collectWrites();
  assert.equal(s.nextQueuedBlock(), 5);
  assert.equal(s.nextQueuedBlock(), -1);
  
});

test('a disk the guest keeps writing still switches to synchronous after the round limit', () => {
  const g = disk();
  const d = g.disk!;
  const s = new DiskSync(d, { syncThreshold: 0, maxRounds: 3 });
  s.start();
  let n = 0;
  for (let guard = 0; guard < 10_000; guard++) {
    d.writeBlock(guard % 100, { base: guard + 1, ver: 0 });
    if (s.nextCopyBlock(0) < 0) break;
    n++;
  }
  assert.equal(s.synchronous, true);
  assert.equal(s.rounds, 4);
  assert.ok(n >= 100);
});
