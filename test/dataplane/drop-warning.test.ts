import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { DropWarning } from '../../src/dataplane/drop-warning.ts';
import { capturingLogger, WARN } from '../helpers/log-capture.ts';

test('dropped frames are reported at warn: the first at once, then one summary line per interval, the tail of a burst included', () => {
  const clock = new ManualClock(0);
  const { logger, records } = capturingLogger();
  const w = new DropWarning({ logger, clock }, { message: 'frames to the VM dropped', intervalMs: 1000, describe: (e) => `E${String(e)}` });
  w.note('refused', 1, 5);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.level, WARN);
  assert.deepEqual(records[0]!.dropped, { refused: 1 });
  assert.equal(records[0]!.lastError, 'E5');
  // A burst of 10,000 drops within the interval: no line per frame.
  for (let i = 0; i < 10_000; i++) w.note(i % 2 === 0 ? 'refused' : 'queue-full');
  assert.equal(records.length, 1);
  clock.advance(999);
  assert.equal(records.length, 1);
  clock.advance(1);
  assert.equal(records.length, 2, 'the burst summed in one line when the interval ends');
  assert.deepEqual(records[1]!.dropped, { refused: 5000, 'queue-full': 5000 });
  assert.equal(records[1]!.lastError, undefined);
  // Quiet for longer than the interval: the next drop is reported at once again.
  clock.advance(5000);
  w.note('too-large', 3);
  assert.equal(records.length, 3);
  assert.deepEqual(records[2]!.dropped, { 'too-large': 3 });
  w.note('runt');
  w.close();
  assert.equal(records.length, 4, 'close reports what is pending');
  assert.equal(w.lines, 4);
  clock.advance(10_000);
  assert.equal(records.length, 4, 'no timer left after close');
});
