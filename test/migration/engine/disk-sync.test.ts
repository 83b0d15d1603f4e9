import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiskSync } from '../../../src/migration/engine/disk-sync.ts';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { TraceGuest } from '../../../src/migration/guests/trace-guest.ts';
import { diffMemory, type Trace } from '../../../src/migration/qemu/trace-format.ts';
import { PAGE_SIZE, type DiskWriteGate, type Guest } from '../../../src/migration/guest.ts';

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

// ---- synchronous replication: the write gate ---------------------------------


/** A gate that admits up to `depth` writes and completes them only when told. */
class CountingGate implements DiskWriteGate {
  readonly admitted: { block: number; at: number }[] = [];
  refused = 0;
  pending = 0;
  constructor(readonly depth: number) {}
  admit(block: number, at: number): boolean {
    if (this.pending >= this.depth) { this.refused++; return false; }
    this.pending++;
    this.admitted.push({ block, at });
    return true;
  }
}

function tinyTrace(): Trace {
  const img = new Uint8Array(8 * PAGE_SIZE);
  const snaps = [0, 1].map((index) => ({ index, tMs: index * 1000, ...diffMemory(index === 0 ? undefined : img, img, PAGE_SIZE) }));
  return { pageSize: PAGE_SIZE, pageCount: 8, meta: { workload: 'unit', kernel: 'k', memoryMiB: 1, intervalMs: 1000, recordedAt: '2026-01-01T00:00:00Z', qemu: '7.2 test' }, snapshots: snaps };
}

/** Every Guest implementation, writing its disk at 100 writes/s. */
const IMPLEMENTATIONS: readonly [string, () => Guest][] = [
  ['model guest', () => new ModelGuest({ name: 'm', pageCount: 16, blockCount: 64, representation: 'synthetic', diskWorkload: { writeRate: 100, wssShare: 1, zeroShare: 0 }, seed: 4 })],
  ['trace guest', () => new TraceGuest({ trace: tinyTrace(), diskBlocks: 64, diskWritesPerSecond: 100 })],
];

for (const [name, make] of IMPLEMENTATIONS) {
  test(`${name}: writes ask the gate at their own times, a full queue stalls them, a completion lets the waiting write go, no gate means local completion`, () => {
    const g = make();
    const d = g.disk!;
    assert.equal(d.queueDepth, 32, 'the documented default queue depth');
    d.setWriteLogging(true);
    const gate = new CountingGate(5);
    d.setWriteGate(gate, 0);
    g.advance(1000);
    // 100 writes were due; 5 were admitted (each written locally at once), the 6th waits
    assert.equal(gate.admitted.length, 5);
    assert.equal(gate.refused, 1);
    assert.ok(gate.admitted.every((a, i) => a.at > 0 && a.at <= 1000 && (i === 0 || a.at >= (gate.admitted[i - 1]?.at ?? 0))), 'issue times within the interval, in order');
    assert.ok(Math.abs((gate.admitted[4]?.at ?? 0) - 50) < 10.001, `5th write near 50 ms, at ${gate.admitted[4]?.at}`);
    assert.deepEqual([...d.takeWrites()], [...new Set(gate.admitted.map((a) => a.block))].sort((a, b) => a - b), 'admitted writes are on the local disk');
    g.advance(2000);
    assert.equal(gate.admitted.length, 5, 'still stalled: nothing completed');
    // two writes complete at 2000: the waiting one goes at once, then the workload resumes
    gate.pending -= 2;
    d.writesCompleted(2000);
    assert.equal(gate.admitted.length, 6);
    assert.equal(gate.admitted[5]?.at, 2000);
    g.advance(2015);
    assert.equal(gate.admitted.length, 7, 'the workload resumed from the completion, one write per 10 ms');
    assert.ok((gate.admitted[6]?.at ?? 0) > 2000 && (gate.admitted[6]?.at ?? 0) <= 2010.001);
    // gate removed: the waiting write (if any) is issued, and writes complete locally from now on
    d.setWriteGate(undefined, 2100);
    const before = gate.admitted.length;
    d.takeWrites();
    g.advance(3100);
    assert.equal(gate.admitted.length, before, 'no gate consulted any more');
    assert.ok(d.takeWrites().length > 30, 'writes go on at their rate (100 writes over 64 blocks)');
  });
}

test('model guest: while a write waits, its I/O-bound share (ioCoupling) stops; memory progress slows by it', () => {
  const mk = (): ModelGuest => new ModelGuest({
    name: 'c', pageCount: 4096, blockCount: 64, representation: 'synthetic',
    memoryWorkload: { dirtyRate: 1000, wssShare: 0.5, hotShare: 0.1, locality: 0.5, zeroShare: 0.1, dupShare: 0.1, bytesPerWrite: 64, rewriteShare: 0.2 },
    diskWorkload: { writeRate: 100, wssShare: 1, zeroShare: 0, ioCoupling: 0.5 }, seed: 8,
  });
  const g = mk();
  const twin = mk();
  g.disk!.setWriteGate(new CountingGate(1), 0);
  g.advance(1000);
  twin.advance(1000);
  // the first write at 10 ms is admitted, the second (20 ms) waits: stalled for 980 ms
  assert.equal(g.diskWrites, 1);
  assert.equal(g.diskStalled, true);
  assert.ok(Math.abs(g.diskStallMs - 980) < 1e-6, `stalled ${g.diskStallMs} ms`);
  assert.equal(twin.memoryWrites, 1000);
  assert.equal(g.memoryWrites, Math.floor(1000 * (1000 - 0.5 * 980) / 1000));
  assert.equal(twin.diskWrites, 100);
});

test('DiskSync: a write is pending until the ack for the record that carried it; the guest queue depth bounds pending writes', () => {
  const g = new ModelGuest({ name: 's', pageCount: 4, blockCount: 16, representation: 'synthetic', diskQueueDepth: 3 });
  const d = g.disk!;
  const s = new DiskSync(d, { syncThreshold: 100 });
  s.start();
  while (s.nextCopyBlock(100) >= 0) { /* bulk copy */ }
  assert.equal(s.synchronous, true);
  // the gate is the DiskSync itself; the guest's writes would call admit
  assert.equal(s.admit(4, 110), true);
  assert.equal(s.admit(4, 111), true);
  assert.equal(s.admit(9, 112), true);
  assert.equal(s.admit(10, 113), false, 'queue depth 3');
  assert.equal(s.pending, 3);
  s.onBlockSent(4, 20, 115); // both writes on block 4 ride record 20
  s.onBlockSent(9, 21, 116);
  assert.equal(s.onAck(19, 140), 0, 'an ack for an earlier record completes nothing');
  assert.equal(s.pending, 3);
  assert.equal(s.onAck(20, 150), 2);
  assert.equal(s.pending, 1);
  assert.equal(s.admit(10, 151), true);
  s.onBlockSent(10, undefined, 152); // the destination already holds that content: complete at once
  assert.equal(s.pending, 1);
  s.stop(200); // the write on block 9 completes locally
  assert.equal(s.pending, 0);
  const st = s.stats();
  assert.deepEqual([st.writes, st.acked, st.completedLocally, st.refusals, st.maxPending], [4, 3, 1, 1, 3]);
  assert.equal(st.latency.count, 3);
  assert.ok(Math.abs(st.latency.meanMs - (40 + 39 + 1) / 3) < 1e-9);
  assert.equal(st.latency.maxMs, 40);
});

test('DiskSync asynchronous: every write is admitted and complete at once', () => {
  const g = new ModelGuest({ name: 'a', pageCount: 4, blockCount: 16, representation: 'synthetic', diskQueueDepth: 1 });
  const s = new DiskSync(g.disk!, { syncThreshold: 100, replication: 'asynchronous' });
  s.start();
  while (s.nextCopyBlock(0) >= 0) { /* bulk copy */ }
  for (let i = 0; i < 10; i++) assert.equal(s.admit(i, i), true);
  assert.equal(s.pending, 0);
  assert.equal(s.stats().acked, 10);
});
