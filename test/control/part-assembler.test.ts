import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PartAssembler, WHOLE, type PartLimits } from '../../src/control/part-assembler.ts';
import type { ControlPartError } from '../../src/control/errors.ts';

const LIMITS: PartLimits = { maxParts: 4, maxBytes: 100, timeoutMs: 1000 };

function assembler(): { a: PartAssembler<string>; dropped: ControlPartError[] } {
  const dropped: ControlPartError[] = [];
  return { a: new PartAssembler<string>('rule set', LIMITS, (e) => dropped.push(e)), dropped };
}

function refusal(r: ReturnType<PartAssembler<string>['accept']>): string {
  assert.equal(r.state, 'refused');
  assert.equal(r.error.code, 'VNET_ERR_CONTROL_PARTS');
  return r.error.reason;
}

test('parts in order make the whole, in order; a message sent whole is complete at once', () => {
  const { a } = assembler();
  assert.deepEqual(a.accept(7, WHOLE, 10, 'x', 0), { state: 'complete', parts: ['x'] });
  assert.equal(a.accept(8, { index: 0, count: 3 }, 10, 'a', 0).state, 'incomplete');
  assert.equal(a.accept(8, { index: 1, count: 3 }, 10, 'b', 0).state, 'incomplete');
  assert.equal(a.pendingBytes, 20);
  assert.deepEqual(a.accept(8, { index: 2, count: 3 }, 10, 'c', 0), { state: 'complete', parts: ['a', 'b', 'c'] });
  assert.equal(a.openGroup, undefined);
  // The same group again (a resend of one version) is accepted anew.
  assert.deepEqual(a.accept(8, WHOLE, 10, 'again', 0), { state: 'complete', parts: ['again'] });
});

test('an overlapping part (a duplicate index) is refused and the whole sequence dropped', () => {
  const { a } = assembler();
  a.accept(1, { index: 0, count: 3 }, 10, 'a', 0);
  a.accept(1, { index: 1, count: 3 }, 10, 'b', 0);
  assert.equal(refusal(a.accept(1, { index: 1, count: 3 }, 10, 'b2', 0)), 'overlap');
  assert.equal(a.openGroup, undefined);
  // The last part on its own completes nothing.
  assert.equal(refusal(a.accept(1, { index: 2, count: 3 }, 10, 'c', 0)), 'out-of-order');
});

test('a gap, a changed count, an index out of range and a sequence that does not start at part 1 are refused', () => {
  const { a } = assembler();
  assert.equal(refusal(a.accept(1, { index: 1, count: 2 }, 10, 'b', 0)), 'out-of-order');
  a.accept(2, { index: 0, count: 3 }, 10, 'a', 0);
  assert.equal(refusal(a.accept(2, { index: 2, count: 3 }, 10, 'c', 0)), 'out-of-order');
  a.accept(3, { index: 0, count: 3 }, 10, 'a', 0);
  assert.equal(refusal(a.accept(3, { index: 1, count: 2 }, 10, 'b', 0)), 'mismatch');
  assert.equal(refusal(a.accept(4, { index: 3, count: 3 }, 10, 'x', 0)), 'index');
  assert.equal(refusal(a.accept(4, { index: 0, count: 0 }, 10, 'x', 0)), 'count');
  assert.equal(a.stats.completed, 0);
});

test('bounds: more parts than allowed, more bytes than allowed', () => {
  const { a } = assembler();
  assert.equal(refusal(a.accept(1, { index: 0, count: 5 }, 10, 'a', 0)), 'too-many-parts');
  a.accept(2, { index: 0, count: 3 }, 60, 'a', 0);
  assert.equal(refusal(a.accept(2, { index: 1, count: 3 }, 41, 'b', 0)), 'too-large');
  assert.equal(a.openGroup, undefined);
  assert.equal(a.pendingBytes, 0);
});

test('a newer group supersedes an incomplete one; an older group is stale', () => {
  const { a, dropped } = assembler();
  a.accept(5, { index: 0, count: 2 }, 10, 'v5a', 0);
  assert.equal(a.accept(6, { index: 0, count: 2 }, 10, 'v6a', 0).state, 'incomplete');
  assert.equal(dropped.length, 1);
  assert.equal(dropped[0]!.reason, 'superseded');
  assert.equal(a.stats.superseded, 1);
  // The rest of version 5 is late: refused, version 6 unharmed.
  assert.equal(refusal(a.accept(5, { index: 1, count: 2 }, 10, 'v5b', 0)), 'stale');
  assert.deepEqual(a.accept(6, { index: 1, count: 2 }, 10, 'v6b', 0), { state: 'complete', parts: ['v6a', 'v6b'] });
  assert.equal(refusal(a.accept(4, WHOLE, 10, 'v4', 0)), 'stale');
});

test('a sequence not complete within the timeout is dropped (by the next part or by expire)', () => {
  const { a, dropped } = assembler();
  a.accept(1, { index: 0, count: 2 }, 10, 'a', 0);
  assert.equal(a.expire(1000), false);
  assert.equal(a.expire(1001), true);
  assert.equal(a.pendingBytes, 0);
  assert.equal(dropped[0]!.reason, 'timeout');
  a.accept(2, { index: 0, count: 2 }, 10, 'a', 2000);
  // Its second part comes too late: the sequence is gone, so the part has no start.
  assert.equal(refusal(a.accept(2, { index: 1, count: 2 }, 10, 'b', 3001)), 'out-of-order');
  assert.equal(a.stats.timedOut, 2);
});
