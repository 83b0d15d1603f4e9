import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ITERATION_END, PrecopyPlan, SKIPPED } from '../../../src/migration/engine/precopy-plan.ts';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';

function drain(plan: PrecopyPlan): number[] {
  const out: number[] = [];
  for (let p = plan.next(); p !== ITERATION_END; p = plan.next()) out.push(p);
  return out;
}

test('iteration 0 visits every page; the next one only the pages dirtied meanwhile', () => {
  const g = new ModelGuest({ name: 'p', pageCount: 6, representation: 'synthetic' });
  g.memory.setDirtyLogging(true);
  const plan = new PrecopyPlan(g.memory, false, 0);
  assert.deepEqual(drain(plan), [0, 1, 2, 3, 4, 5]);
  g.memory.writePage(4, { base: 1, ver: 0 });
  g.memory.writePage(1, { base: 1, ver: 0 });
  assert.equal(plan.nextIteration(10), 2);
  assert.equal(plan.iteration, 1);
  assert.deepEqual(drain(plan), [1, 4]);
});

test("with Xen's peek, a page dirtied again before its turn is skipped and counted", () => {
  const g = new ModelGuest({ name: 'p', pageCount: 4, representation: 'synthetic' });
  g.memory.setDirtyLogging(true);
  const plan = new PrecopyPlan(g.memory, true, 0);
  assert.equal(plan.next(), 0);
  g.memory.writePage(2, { base: 1, ver: 0 });
  assert.equal(plan.next(), 1);
  assert.equal(plan.next(), SKIPPED);
  assert.equal(plan.next(), 3);
  assert.equal(plan.next(), ITERATION_END);
  assert.equal(plan.redirtiedSkips, 1);
  assert.equal(plan.nextIteration(1), 1);
  assert.deepEqual(drain(plan), [2]);
});
