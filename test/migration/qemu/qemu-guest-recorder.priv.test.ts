import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureGuestImage, recordGuestTrace } from '../../../src/migration/qemu/qemu-guest-recorder.ts';
import { RecordingAbortedError } from '../../../src/migration/errors.ts';
import { loadTrace } from '../../../src/migration/qemu/trace-format.ts';
import { TraceGuest } from '../../../src/migration/guests/trace-guest.ts';
import { computeTraceStats } from '../../../src/migration/qemu/trace-stats.ts';

// Privileged/CI tier: boots the Debian kernel with the busybox initramfs under
// QEMU/TCG. Needs qemu-system-x86, busybox-static, linux-image-amd64, cpio and
// gzip; a missing one fails the test (the build script or the spawn names it).

function gone(pid: number | undefined): boolean {
  assert.ok(pid !== undefined && pid > 0, 'QEMU had a pid');
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

test('records a real guest under QEMU/TCG: plausible memory, pages change between snapshots, QEMU gone afterwards', { timeout: 100_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-rec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const image = await ensureGuestImage();
  assert.ok(existsSync(image.kernel), image.kernel);
  assert.ok(existsSync(image.initramfs), image.initramfs);

  const out = join(dir, 'compile.trace');
  const seen: number[] = [];
  const r = await recordGuestTrace({
    workload: 'compile',
    out,
    image,
    memoryMiB: 96,
    snapshots: 3,
    intervalMs: 700,
    warmupMs: 500,
    bootTimeoutMs: 60_000,
    signal: AbortSignal.timeout(90_000),
    onSnapshot: (s) => seen.push(s.changedPages),
  });
  assert.equal(r.snapshots, 3);
  assert.equal(r.pageCount, 96 * 256);
  assert.ok(r.bootMs < 60_000);
  assert.ok(gone(r.qemuPid), 'QEMU has exited');
  assert.deepEqual(readdirSync(dir), ['compile.trace'], 'no partial file left');

  const trace = await loadTrace(out);
  assert.equal(trace.meta.workload, 'compile');
  assert.match(trace.meta.kernel, /^vmlinuz-/);
  assert.equal(trace.snapshots.length, 3);
  const [s0, s1, s2] = trace.snapshots;
  // A booted Linux holds kernel text, page tables, the unpacked initramfs: thousands of non-zero pages, not all of RAM.
  assert.ok(s0 !== undefined && s0.pages.length > 1000, `snapshot 0 has ${s0?.pages.length} non-zero pages`);
  assert.ok(s0.pages.length < trace.pageCount);
  // The workload runs: pages change between snapshots, and the timestamps are the guest's running time.
  assert.ok(s1 !== undefined && s1.pages.length > 0, 'pages change between snapshots 0 and 1');
  assert.ok(s2 !== undefined && s2.pages.length > 0, 'pages change between snapshots 1 and 2');
  assert.ok(s1.tMs >= 650 && s2.tMs - s1.tMs >= 650, `times ${s1.tMs}, ${s2.tMs}`);
  assert.deepEqual(seen, trace.snapshots.map((s) => s.pages.length));
  // Real kernel text and data: page content is not one repeated byte.
  const distinct = new Set(s0.data.subarray(0, 64 * 4096));
  assert.ok(distinct.size > 64, `${distinct.size} distinct byte values in the first non-zero pages`);

  const st = computeTraceStats(trace);
  assert.ok(st.zeroShare > 0 && st.zeroShare < 1);
  assert.ok(st.dirtyRate > 0);

  // Replayed through the Guest interface, the dirty log shows the recorded change.
  const g = new TraceGuest({ trace, spread: 'burst', onEnd: 'hold' });
  g.memory.setDirtyLogging(true);
  g.advance(s1.tMs);
  assert.deepEqual([...g.memory.takeDirty()], [...s1.pages]);
});

test('aborting a recording kills QEMU and leaves no trace file', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-rec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ac = new AbortController();
  let pid: number | undefined;
  const out = join(dir, 'idle.trace');
  await assert.rejects(
    recordGuestTrace({
      workload: 'idle',
      out,
      memoryMiB: 96,
      snapshots: 100,
      intervalMs: 1000,
      onQemuStart: (p) => {
        pid = p;
      },
      onSnapshot: () => ac.abort(new Error('test abort after the first snapshot')),
      signal: ac.signal,
    }),
    RecordingAbortedError,
  );
  assert.ok(gone(pid), 'QEMU has exited');
  assert.deepEqual(readdirSync(dir), []);
});
