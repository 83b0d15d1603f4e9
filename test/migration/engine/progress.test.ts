import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProgressBar, type ProgressEvent } from '../../../src/migration/engine/progress.ts';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { runVirtualMigration } from '../../../src/migration/drivers/virtual-time.ts';
import { TimeBound } from '../../../src/migration/stop-rules/time-bound.ts';

const base: ProgressEvent = {
  phase: 'memory', iteration: 3, rule: 'smart-stop', elapsedMs: 12_000, bytesSent: 1.2 * 1024 ** 3, pagesSent: 300_000,
  pagesLeft: 100_000, ramPages: 400_000, dirtyRate: 4120, throttle: 0.25, etaMs: 8100, deadlineMs: undefined,
};

test('the bar is exactly the width asked for, and shows phase, iteration, share, bytes and throttle', () => {
  for (const w of [0, 10, 40, 80, 120]) assert.equal(formatProgressBar(base, w).length, w);
  const line = formatProgressBar(base, 100);
  assert.match(line, /^memory it 3 \[#+\.+\] 75% 1\.2 GiB 12s eta 8\.1s 4120 pg\/s cpu 25%/);
});

test('done is a full bar; a time-bound run shows its bound', () => {
  assert.match(formatProgressBar({ ...base, phase: 'done', pagesLeft: 5 }, 60), /\[#+\] 100%/);
  assert.match(formatProgressBar({ ...base, rule: 'time-bound', deadlineMs: 30_000 }, 120), /bound 30s/);
});

test('a migration reports progress events with falling pages left and rising bytes', async () => {
  const guest = new ModelGuest({ name: 'g', pageCount: 4096, representation: 'synthetic', seed: 1,
    memoryWorkload: { dirtyRate: 500, wssShare: 0.2, hotShare: 0.02, locality: 0.8, zeroShare: 0.3, dupShare: 0.1, bytesPerWrite: 256, rewriteShare: 0.2 } });
  const events: ProgressEvent[] = [];
  const r = await runVirtualMigration({ guest, rule: new TimeBound({ deadlineMs: 20_000 }), onProgress: (e) => events.push(e) },
    { link: { bandwidthBps: 20e6, rttMs: 10 }, progressEveryMs: 500 });
  assert.ok(r.ok);
  const mem = events.filter((e) => e.phase === 'memory');
  assert.ok(mem.length >= 5);
  for (let i = 1; i < mem.length; i++) assert.ok((mem[i]?.bytesSent ?? 0) >= (mem[i - 1]?.bytesSent ?? 0));
  assert.ok((mem.at(-1)?.pagesLeft ?? Infinity) < (mem[0]?.pagesLeft ?? 0));
  assert.equal(mem[0]?.deadlineMs, 20_000);
});
