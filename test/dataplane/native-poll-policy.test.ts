/**
 * Adaptive busy polling's decision (native/tap/poll_policy.h), fed timestamps
 * — no thread, no clock: the windows it grants after request/response
 * traffic, none for one-way streams or slow answers, the cap, the CPU
 * budget that bounds spinning, and no spinning while the CPUs are oversubscribed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

interface PollPolicy {
  forwarded(ingress: number, target: number, nowNs: number, len?: number): void;
  spinUntil(nowNs: number): number;
  spun(ns: number): void;
  scheduling(runDelayNs: number, timeslices: number): void;
  window(ingress: number, target: number): number;
  denied(): number;
  contended(): number;
}
const addon = createRequire(import.meta.url)(new URL('../../build/Release/vnet_tap.node', import.meta.url).pathname) as {
  PollPolicy: new (o: { capUs: number; budgetPercent: number }) => PollPolicy;
};
const policy = (capUs = 200, budgetPercent = 25): PollPolicy => new addon.PollPolicy({ capUs, budgetPercent });

const US = 1000;
const TAP = 0;
const LINK = 1;
const T0 = 1e12; // a monotonic clock well past zero

/** Requests TAP → link every `periodUs`, each answered link → TAP `delaysUs[i]` later; returns the time after the last. */
function exchanges(p: PollPolicy, delaysUs: readonly number[], periodUs = 1000, start = T0): number {
  let t = start;
  for (const d of delaysUs) {
    p.forwarded(TAP, LINK, t);
    p.spinUntil(t);
    p.forwarded(LINK, TAP, t + d * US);
    p.spinUntil(t + d * US);
    t += periodUs * US;
  }
  return t;
}

test('request/response: after 4 answers the request direction gets a window of its answers\' delay plus a quarter; the answer direction (next request 1 ms later) gets none', () => {
  const p = policy();
  const t = exchanges(p, [50, 50, 50]);
  assert.equal(p.window(TAP, LINK), 0, 'three samples are not enough');
  p.forwarded(TAP, LINK, t);
  assert.equal(p.spinUntil(t), 0, 'no spin before the window is learned');
  p.forwarded(LINK, TAP, t + 50 * US);
  assert.equal(p.window(TAP, LINK), 62.5 * US);
  assert.equal(p.window(LINK, TAP), 0, 'the answers\' own "answers" (the next requests) come after the cap: misses');
  const t2 = t + 1000 * US;
  p.forwarded(TAP, LINK, t2);
  assert.equal(p.spinUntil(t2), t2 + 62.5 * US, 'after a request: spin for the window');
  p.forwarded(LINK, TAP, t2 + 40 * US);
  assert.equal(p.spinUntil(t2 + 40 * US), 0, 'after the answer: sleep');
});

test('the window is the 90th percentile of the last 16 delays plus a quarter, measured from the request\'s last frame', () => {
  const p = policy();
  const delays = Array.from({ length: 16 }, (_, i) => (i + 1) * 10); // 10..160 µs
  exchanges(p, delays);
  assert.equal(p.window(TAP, LINK), 150 * US * 1.25, 'ceil(0.9 × 16) = the 15th smallest, 150 µs');
  // A request of three frames: the delay counts from the third.
  const q = policy();
  let t = T0;
  for (let i = 0; i < 4; i++) {
    q.forwarded(TAP, LINK, t);
    q.forwarded(TAP, LINK, t + 5 * US);
    q.forwarded(TAP, LINK, t + 30 * US);
    q.forwarded(LINK, TAP, t + 70 * US);
    t += 1000 * US;
  }
  assert.equal(q.window(TAP, LINK), 40 * US * 1.25);
});

test('the cap: a window never exceeds it, and answers slower than it earn none', () => {
  const p = policy(200);
  exchanges(p, Array(8).fill(180));
  assert.equal(p.window(TAP, LINK), 200 * US, '180 µs + a quarter, capped at 200');
  const slow = policy(200);
  exchanges(slow, Array(16).fill(250));
  assert.equal(slow.window(TAP, LINK), 0, 'every answer later than the cap is a miss');
  const mostlySlow = policy(200);
  exchanges(mostlySlow, [...Array(14).fill(20), 250, 250]);
  assert.equal(mostlySlow.window(TAP, LINK), 0, 'two misses in 16 put the 90th percentile past the cap');
  const mostlyFast = policy(200);
  exchanges(mostlyFast, [...Array(15).fill(20), 250]);
  assert.equal(mostlyFast.window(TAP, LINK), 25 * US, 'one miss in 16 is under the 90th percentile');
});

test('one-way streams never get a window: a steady stream, a sparse one, and a request/response pair that turns one-way stops spinning', () => {
  const steady = policy();
  for (let i = 0; i < 10_000; i++) {
    steady.forwarded(TAP, LINK, T0 + i * 10 * US);
    assert.equal(steady.spinUntil(T0 + i * 10 * US), 0);
  }
  assert.equal(steady.window(TAP, LINK), 0);
  const sparse = policy();
  for (let i = 0; i < 100; i++) {
    sparse.forwarded(LINK, TAP, T0 + i * 1000 * US);
    assert.equal(sparse.spinUntil(T0 + i * 1000 * US), 0);
  }
  const turned = policy();
  let t = exchanges(turned, Array(16).fill(30));
  assert.equal(turned.window(TAP, LINK), 37.5 * US);
  // Now frames only go TAP → link, 100 µs apart: every 200 µs an unanswered turn is a miss.
  for (let i = 0; i < 400; i++, t += 100 * US) turned.forwarded(TAP, LINK, t);
  assert.equal(turned.window(TAP, LINK), 0, 'sixteen misses in a row');
  assert.equal(turned.spinUntil(t), 0);
});

test('the budget: spinning averages at most budgetPercent of one core (plus the 100 ms worth of credit it starts with); refused spins are counted', () => {
  const p = policy(200, 10);
  let t = exchanges(p, Array(16).fill(50), 100); // window 62.5 µs; a request every 100 µs
  let granted = 0;
  const seconds = 2;
  const end = t + seconds * 1e9;
  while (t < end) {
    p.forwarded(TAP, LINK, t);
    const until = p.spinUntil(t);
    if (until > 0) {
      granted += until - t;
      p.spun(until - t); // spun to the deadline: the answer comes later than the window here
    }
    p.forwarded(LINK, TAP, t + 50 * US);
    p.spinUntil(t + 50 * US);
    t += 100 * US;
  }
  const credit = 0.1 * 100e6;
  assert.ok(granted <= 0.1 * seconds * 1e9 + credit, `granted ${granted} ns of spinning in ${seconds} s at a 10% budget`);
  assert.ok(granted >= 0.1 * seconds * 1e9 * 0.95, `the budget is used, not wasted: ${granted} ns`);
  assert.ok(p.denied() > 0, 'spins refused once the credit ran out');
  const idle = policy(200, 10);
  exchanges(idle, Array(16).fill(50), 100);
  assert.equal(idle.denied(), 0, 'never refused while within the budget');
});

test('contention: while the thread waited over 50 µs per time slice for a CPU in the last report\'s interval, no spin (counted); spins again once it does not', () => {
  const p = policy();
  let t = exchanges(p, Array(8).fill(50));
  const spinAfterRequest = (): number => {
    p.forwarded(TAP, LINK, t);
    const until = p.spinUntil(t);
    p.forwarded(LINK, TAP, t + 50 * US);
    p.spinUntil(t + 50 * US);
    t += 1000 * US;
    return until;
  };
  p.scheduling(1_000_000, 100); // the first report only sets the mark
  assert.notEqual(spinAfterRequest(), 0);
  p.scheduling(1_000_000 + 100 * 20 * US, 200); // 20 µs per slice: a CPU free when wanted
  assert.notEqual(spinAfterRequest(), 0);
  p.scheduling(3_000_000 + 100 * 300 * US, 300); // 300+ µs per slice: oversubscribed
  for (let i = 0; i < 5; i++) assert.equal(spinAfterRequest(), 0, 'no spin while contended');
  assert.equal(p.contended(), 5);
  p.scheduling(3_000_000 + 100 * 300 * US, 300); // no new slices: no verdict either way
  assert.equal(spinAfterRequest(), 0);
  p.scheduling(3_000_000 + 100 * 300 * US + 50 * 10 * US, 350); // 10 µs per slice
  assert.notEqual(spinAfterRequest(), 0, 'spinning again');
  assert.equal(p.contended(), 6);
  assert.equal(p.denied(), 0, 'the budget was never the reason');
});

test('bulk: a GSO super-frame (over 4 KiB) takes both directions of its pair off spinning for 10 ms, however quick the ACKs', () => {
  const p = policy();
  let t = T0;
  // A bulk transfer TAP → link in 64 KiB super-frames, each ACKed 20 µs later.
  for (let i = 0; i < 100; i++, t += 50 * US) {
    p.forwarded(TAP, LINK, t, 65_000);
    assert.equal(p.spinUntil(t), 0, 'no spin after a super-frame');
    p.forwarded(LINK, TAP, t + 20 * US, 66);
    assert.equal(p.spinUntil(t + 20 * US), 0, 'no spin after its ACK');
  }
  assert.equal(p.window(TAP, LINK), 25 * US, 'the delays are learned all the same');
  // 10 ms after the last super-frame, small request/response frames spin again.
  t += 10_000 * US;
  p.forwarded(TAP, LINK, t, 100);
  assert.equal(p.spinUntil(t), t + 25 * US);
  assert.equal(p.denied() + p.contended(), 0);
});
