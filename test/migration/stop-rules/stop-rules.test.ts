import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XenStop } from '../../../src/migration/stop-rules/xen-stop.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';
import { QemuStop } from '../../../src/migration/stop-rules/qemu-stop.ts';
import { TimeBound } from '../../../src/migration/stop-rules/time-bound.ts';
import type { IterationStats, TimeBoundStats } from '../../../src/migration/stop-rules/stop-rule.ts';

function it(over: Partial<IterationStats>): IterationStats {
  return {
    iteration: 1, now: 0, elapsedMs: 0, iterationMs: 1000, pagesSent: 1000, bytesSent: 4_109_000, dirtied: 500,
    totalPagesSent: 2000, totalBytesSent: 8e6, ramPages: 10_000, bandwidth: 4109, bytesPerPage: 4109, throttle: 1, ...over,
  };
}

test('xen stops under 50 dirty pages, at 30 iterations, or after 3x RAM', () => {
  const r = new XenStop();
  assert.equal(r.afterIteration(it({ dirtied: 49 })).stop, true);
  assert.equal(r.afterIteration(it({ dirtied: 50 })).stop, false);
  assert.equal(r.afterIteration(it({ iteration: 29 })).stop, true);
  assert.equal(r.afterIteration(it({ iteration: 28 })).stop, false);
  assert.equal(r.afterIteration(it({ totalPagesSent: 30_000 })).stop, true);
  assert.equal(r.encoding, 'plain');
});

test('smart stop iterates while sent > dirtied, then stops at the local minimum of dirtied', () => {
  const r = new SmartStop();
  assert.equal(r.afterIteration(it({ pagesSent: 10_000, dirtied: 3000 })).stop, false);
  assert.equal(r.afterIteration(it({ pagesSent: 3000, dirtied: 2000 })).stop, false);
  assert.equal(r.afterIteration(it({ pagesSent: 2000, dirtied: 2100 })).stop, false); // sent <= dirtied: seek the minimum
  assert.equal(r.afterIteration(it({ pagesSent: 2100, dirtied: 1900 })).stop, false); // still falling
  const d = r.afterIteration(it({ pagesSent: 1900, dirtied: 1950 }));
  assert.equal(d.stop, true);
  assert.match(d.reason, /local minimum/);
  assert.equal(r.encoding, 'optimized');
});

test('qemu switches over when the rest fits the downtime limit at the measured bandwidth', () => {
  const r = new QemuStop({ downtimeLimitMs: 300, autoConverge: false });
  // 4109 B/ms: 300 ms carries ~300 pages
  assert.equal(r.afterIteration(it({ dirtied: 299 })).stop, true);
  assert.equal(r.afterIteration(it({ dirtied: 400 })).stop, false);
});

test('qemu auto-converge throttles 20% after two high-dirty iterations, then 10% more each time', () => {
  const r = new QemuStop();
  const high = it({ dirtied: 5000, bytesSent: 4_109_000 });
  assert.equal(r.afterIteration(high).throttle, undefined);
  assert.equal(r.afterIteration(high).throttle, 0.8);
  r.afterIteration(high);
  assert.equal(r.afterIteration(high).throttle, 0.7);
});

function tb(over: Partial<TimeBoundStats>): TimeBoundStats {
  return { now: 0, elapsedMs: 1000, mtxFraction: 0.2, mtxDone: false, remainingPages: 5000, bytesPerPage: 4109, bandwidth: 4109, dirtyRateFullShare: 0, throttle: 1, ...over };
}

test('time-bound throttles after half of RAM is sent, stops when the rest fits, or when the deadline needs it', () => {
  const r = new TimeBound({ deadlineMs: 10_000 });
  assert.deepEqual(r.decide(tb({ mtxFraction: 0.2 })), { stop: false, reason: 'continue' });
  assert.equal(r.decide(tb({ mtxFraction: 0.6 })).throttle, 0.25);
  assert.equal(r.decide(tb({ mtxDone: true, mtxFraction: 1, remainingPages: 200, throttle: 0.25 })).stop, true);
  // 5000 pages take 5 s; at 6 s elapsed only ~3.7 s are left before the bound (less margin)
  assert.match(r.decide(tb({ elapsedMs: 6000 })).reason, /deadline/);
  // no bandwidth measured yet: never stop on a guess
  assert.equal(r.decide(tb({ bandwidth: 0 })).stop, false);
});

test('time-bound lowers the CPU share just enough for the link to carry what is owed plus what gets dirtied', () => {
  const r = new TimeBound({ deadlineMs: 10_000, downtimeTargetMs: 300, margin: 0 });
  // 2000 pages owed (2 s of link), 6.7 s of budget: the link can spare 70% for new dirt.
  // The guest dirties 2 pages/ms at full share = 2x the link: it may keep ~35% of its CPU.
  const d = r.decide(tb({ elapsedMs: 3000, remainingPages: 2000, dirtyRateFullShare: 2, throttle: 1 }));
  assert.equal(d.stop, false);
  const share = d.throttle ?? 1;
  assert.ok(share > 0.25 && share < 0.4, `share ${share}`);
  // a guest that dirties little is left alone
  assert.deepEqual(r.decide(tb({ elapsedMs: 3000, remainingPages: 2000, dirtyRateFullShare: 0.1 })), { stop: false, reason: 'continue' });
  // nothing can be spared: the floor
  assert.equal(r.decide(tb({ elapsedMs: 3000, remainingPages: 6000, dirtyRateFullShare: 2 })).throttle, 0.05);
});
