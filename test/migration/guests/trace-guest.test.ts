import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE } from '../../../src/migration/guest.ts';
import { diffMemory, encodeTrace, type Trace } from '../../../src/migration/qemu/trace-format.ts';
import { listGuestTraces, openTraceGuest, TraceGuest } from '../../../src/migration/guests/trace-guest.ts';
import { TraceMagicError } from '../../../src/migration/errors.ts';
import { computeTraceStats } from '../../../src/migration/qemu/trace-stats.ts';
import { runVirtualMigration } from '../../../src/migration/drivers/virtual-time.ts';
import { XenStop } from '../../../src/migration/stop-rules/xen-stop.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';

const PAGES = 64;

/** Images at t = 0, 100, 300 ms: image 1 rewrites pages 0..9, image 2 rewrites pages 20..39. */
function images(): Uint8Array[] {
  const a = new Uint8Array(PAGES * PAGE_SIZE);
  for (let p = 0; p < PAGES; p += 2) a.fill(p + 1, p * PAGE_SIZE, p * PAGE_SIZE + 64);
  const b = a.slice();
  for (let p = 0; p < 10; p++) b[p * PAGE_SIZE + 100] = 0xb0 + p;
  const c = b.slice();
  for (let p = 20; p < 40; p++) c[p * PAGE_SIZE + 200] = 0xc0;
  return [a, b, c];
}

function makeTrace(): { trace: Trace; imgs: Uint8Array[] } {
  const imgs = images();
  const times = [0, 100, 300];
  let prev: Uint8Array | undefined;
  const snapshots = imgs.map((img, index) => {
    const d = diffMemory(prev, img, PAGE_SIZE);
    prev = img;
    return { index, tMs: times[index] ?? 0, ...d };
  });
  const meta = { workload: 'unit', kernel: 'vmlinuz-test', memoryMiB: 64, intervalMs: 100, recordedAt: '2026-01-01T00:00:00Z', qemu: '7.2.22 test' };
  return { trace: { pageSize: PAGE_SIZE, pageCount: PAGES, meta, snapshots }, imgs };
}

function memEquals(g: TraceGuest, img: Uint8Array): boolean {
  for (let p = 0; p < PAGES; p++) {
    const page = g.memory.readPage(p) as Uint8Array;
    if (!Buffer.from(page).equals(Buffer.from(img.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)))) return false;
  }
  return true;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

test('memory starts as snapshot 0, with the dirty log off and empty', () => {
  const { trace, imgs } = makeTrace();
  const g = new TraceGuest({ trace });
  assert.equal(g.geometry.pageCount, PAGES);
  assert.equal(g.geometry.representation, 'bytes');
  assert.equal(g.memory.representation, 'bytes');
  assert.ok(memEquals(g, imgs[0]!));
  assert.equal(g.memory.dirtyCount(), 0);
  g.memory.setDirtyLogging(true);
  assert.equal(g.memory.takeDirty().length, 0);
  assert.equal(g.runState, 'running');
});

test('advancing to a snapshot time writes exactly its changed pages: the dirty log and memory match the real image', () => {
  const { trace, imgs } = makeTrace();
  const g = new TraceGuest({ trace });
  g.memory.setDirtyLogging(true);
  g.advance(100);
  assert.deepEqual([...g.memory.takeDirty()], range(0, 10));
  assert.ok(memEquals(g, imgs[1]!));
  g.advance(300);
  assert.deepEqual([...g.memory.takeDirty()], range(20, 40));
  assert.ok(memEquals(g, imgs[2]!));
});

test('uniform spread: half-way through an interval about half its pages are written, in a scattered order', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace, onEnd: 'hold' });
  g.memory.setDirtyLogging(true);
  g.advance(100);
  g.memory.takeDirty();
  g.advance(200); // half of (100, 300]
  assert.equal(g.memory.dirtyCount(), 10);
  const half = [...g.memory.takeDirty()];
  assert.ok(half.every((p) => p >= 20 && p < 40));
  assert.notDeepEqual(half, range(20, 30), 'not a sequential sweep');
  assert.equal(g.memory.isDirty(half[0]!), false, 'takeDirty clears');
  g.advance(300);
  assert.equal(g.memory.dirtyCount(), 10);
});

test('burst spread writes nothing until the snapshot time, then all of it', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace, spread: 'burst' });
  g.memory.setDirtyLogging(true);
  g.advance(99);
  assert.equal(g.memory.dirtyCount(), 0);
  g.advance(100);
  assert.equal(g.memory.dirtyCount(), 10);
});

test('a paused guest does not run: time spent paused is skipped', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace, start: 1000 });
  g.memory.setDirtyLogging(true);
  g.advance(1050);
  g.pause(1050);
  assert.equal(g.runState, 'paused');
  const before = g.memory.dirtyCount();
  g.advance(5000);
  assert.equal(g.memory.dirtyCount(), before);
  g.resume(5000);
  g.advance(5050);
  assert.equal(g.memory.dirtyCount(), 10, 'reaches snapshot 1 after 100 ms of running time');
  assert.equal(g.ranMs, 100);
});

test('throttle scales the replay speed and is clamped to (0, 1]', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace, spread: 'burst' });
  g.setThrottle(0.5);
  assert.equal(g.throttle, 0.5);
  g.memory.setDirtyLogging(true);
  g.advance(100);
  assert.equal(g.memory.dirtyCount(), 0, 'only 50 ms of trace time');
  g.advance(200);
  assert.equal(g.memory.dirtyCount(), 10);
  g.setThrottle(0);
  assert.ok(g.throttle > 0 && g.throttle <= 0.01);
  g.setThrottle(7);
  assert.equal(g.throttle, 1);
  g.setThrottle(Number.NaN);
  assert.equal(g.throttle, 1);
});

test('after the last snapshot, loop replays snapshot 1 onwards; hold stops writing', () => {
  const { trace } = makeTrace();
  const looping = new TraceGuest({ trace, onEnd: 'loop' });
  looping.memory.setDirtyLogging(true);
  looping.advance(300);
  looping.memory.takeDirty();
  looping.advance(400); // 100 ms into the second pass: snapshot 1 again
  assert.equal(looping.loops, 1);
  assert.deepEqual([...looping.memory.takeDirty()], range(0, 10));
  looping.advance(400 + 300 * 1000); // a thousand passes in one step stays bounded
  assert.ok(looping.loops >= 1000);

  const holding = new TraceGuest({ trace, onEnd: 'hold' });
  holding.memory.setDirtyLogging(true);
  holding.advance(300);
  holding.memory.takeDirty();
  holding.advance(10_000);
  assert.equal(holding.memory.dirtyCount(), 0);
  assert.equal(holding.loops, 0);
});

test('writePage stores bytes and marks the page dirty; synthetic content is expanded; bad indices are refused', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace });
  g.memory.setDirtyLogging(true);
  const page = new Uint8Array(PAGE_SIZE).fill(0x42);
  g.memory.writePage(63, page);
  assert.deepEqual([...g.memory.takeDirty()], [63]);
  assert.equal((g.memory.readPage(63) as Uint8Array)[4095], 0x42);
  g.memory.writePage(1, { base: 7, ver: 3 });
  assert.deepEqual([...g.memory.takeDirty()], [1]);
  assert.ok(g.memory.readPage(1) instanceof Uint8Array, 'synthetic content is expanded to bytes, as in every bytes guest');
  assert.throws(() => g.memory.readPage(PAGES), RangeError);
  assert.throws(() => g.memory.writePage(-1, page), RangeError);
  g.memory.setDirtyLogging(false);
  g.memory.writePage(2, page);
  assert.equal(g.memory.dirtyCount(), 0);
});

test('the synthetic disk is written at its rate, scaled by the throttle, and logged', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace, diskBlocks: 32, diskWritesPerSecond: 100 });
  const disk = g.disk;
  assert.ok(disk);
  assert.equal(disk.blockCount, 32);
  assert.equal(g.geometry.blockCount, 32);
  disk.setWriteLogging(true);
  const before = Buffer.from(disk.readBlock(0) as Uint8Array);
  g.advance(1000); // 100 writes over 32 blocks
  const w = disk.takeWrites();
  assert.ok(w.length > 20 && w.length <= 32, `${w.length} blocks written`);
  assert.ok(w.every((b, i) => i === 0 || b > (w[i - 1] ?? -1)), 'ascending, no repeats');
  g.setThrottle(0.1);
  g.advance(2000);
  assert.ok(disk.takeWrites().length <= 10);
  assert.equal(before.length, 4096);
  assert.equal(new TraceGuest({ trace, diskBlocks: 0 }).disk, undefined);
});

test('device state is a blob that changes as the guest runs and can be overwritten', () => {
  const { trace } = makeTrace();
  const g = new TraceGuest({ trace });
  const s0 = g.readDeviceState();
  g.advance(150);
  assert.notDeepEqual(g.readDeviceState(), s0);
  g.writeDeviceState(Uint8Array.of(1, 2, 3));
  assert.deepEqual([...g.readDeviceState()], [1, 2, 3]);
});

test('two guests of one trace, driven the same way, dirty the same pages (deterministic)', () => {
  const { trace } = makeTrace();
  const a = new TraceGuest({ trace });
  const b = new TraceGuest({ trace });
  for (const g of [a, b]) {
    g.memory.setDirtyLogging(true);
    g.advance(100);
    g.memory.takeDirty();
    g.advance(170);
  }
  assert.deepEqual([...a.memory.takeDirty()], [...b.memory.takeDirty()]);
});

test('listGuestTraces lists *.trace files as sources whose open() gives a fresh guest at snapshot 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-traces-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { trace, imgs } = makeTrace();
  writeFileSync(join(dir, 'unit-a.trace'), encodeTrace(trace));
  writeFileSync(join(dir, 'notes.txt'), 'ignored');
  const list = await listGuestTraces(dir);
  assert.deepEqual(list.map((s) => s.name), ['unit-a']);
  assert.match(list[0]!.description, /unit workload/);
  assert.match(list[0]!.description, /64 MiB/);
  const g1 = await list[0]!.open();
  g1.advance(300);
  const g2 = await list[0]!.open();
  assert.ok(memEquals(g2 as TraceGuest, imgs[0]!), 'independent of the first guest');
  assert.equal(g2.geometry.name, 'trace:unit-a');
  const g3 = await openTraceGuest(join(dir, 'unit-a.trace'), { onEnd: 'hold' });
  assert.equal(g3.geometry.pageCount, PAGES);

  writeFileSync(join(dir, 'broken.trace'), 'not a trace');
  await assert.rejects(listGuestTraces(dir), TraceMagicError);
  await assert.rejects(listGuestTraces(join(dir, 'missing')), { code: 'ENOENT' });
});

test('trace statistics: zero and duplicate shares, dirty rate and delta sizes of the synthetic trace', () => {
  const { trace } = makeTrace();
  const st = computeTraceStats(trace);
  // Image 0: 32 zero pages, 32 pages with distinct content.
  assert.equal(st.snapshots[0]?.zeroPages, 32);
  assert.equal(st.snapshots[0]?.duplicatePages, 0);
  assert.equal(st.snapshots[1]?.changedPages, 10);
  assert.equal(st.snapshots[1]?.dirtyRate, 100); // 10 pages in 0.1 s
  assert.equal(st.snapshots[2]?.dirtyRate, 100); // 20 pages in 0.2 s
  assert.equal(st.dirtyRate, 100);
  // Image 1 makes odd pages 1..9 non-zero (distinct); image 2 makes odd pages 21..39 non-zero, all with the same content.
  assert.equal(st.snapshots[2]?.zeroPages, 32 - 5 - 10);
  assert.equal(st.snapshots[2]?.duplicatePages, 9);
  assert.equal(st.snapshots[2]?.changedDuplicate, 9);
  // One changed byte → one 32-byte chunk → 16 + 32 bytes.
  assert.equal(st.delta.p50, 48);
  assert.equal(st.delta.count, 30);
});

test('a trace guest migrates through the engine (virtual time) and the destination verifies', async () => {
  const { trace } = makeTrace();
  for (const rule of [new XenStop(), new SmartStop()]) {
    const guest = new TraceGuest({ trace, diskBlocks: 16 });
    const r = await runVirtualMigration({ guest, rule }, { link: { bandwidthBps: 10e6, rttMs: 5 } });
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(r.verified, true);
    assert.ok(r.sender.memoryPagesSent >= PAGES);
  }
});
