import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';

test('advance fires an interval at every period on the way; stall fires it once, at the end, and it runs on from there', () => {
  const clock = new ManualClock();
  const beats: number[] = [];
  clock.setInterval(() => beats.push(clock.now()), 500);
  clock.advance(1000);
  assert.deepEqual(beats, [500, 1000]);
  // A loop busy for four periods: Node runs the interval once when it turns again.
  clock.stall(2000);
  assert.deepEqual(beats, [500, 1000, 3000]);
  clock.advance(499);
  assert.equal(beats.length, 3);
  clock.advance(1);
  assert.deepEqual(beats, [500, 1000, 3000, 3500]);
  // A stall shorter than the time left to the next beat fires nothing.
  clock.stall(200);
  assert.equal(beats.length, 4);
});

test('stall fires the timeouts that fell due in their order, once; a cancelled or later one does not fire', () => {
  const clock = new ManualClock(100);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push(`b@${clock.now()}`), 300);
  clock.setTimeout(() => fired.push(`a@${clock.now()}`), 200);
  clock.setTimeout(() => fired.push('cancelled'), 250).cancel();
  clock.setTimeout(() => fired.push('later'), 2000);
  clock.stall(1000);
  assert.deepEqual(fired, ['a@1100', 'b@1100']);
  clock.stall(1000);
  assert.deepEqual(fired, ['a@1100', 'b@1100', 'later']);
  assert.equal(clock.wallNow(), 2100);
});

test('hold moves time and runs nothing; what fell due runs at the next stall or advance', () => {
  const clock = new ManualClock();
  const fired: number[] = [];
  clock.setInterval(() => fired.push(clock.now()), 100);
  clock.hold(250);
  assert.deepEqual(fired, []);
  assert.equal(clock.now(), 250);
  clock.stall(0);
  assert.deepEqual(fired, [250]);
  clock.advance(100);
  assert.deepEqual(fired, [250, 350]);
});
