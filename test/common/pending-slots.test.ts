import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { PendingSlots, type PendingDropReason } from '../../src/common/pending-slots.ts';

function slots(init: { maxPerSource: number; maxTotal: number }, random = (): number => 0): { s: PendingSlots; clock: ManualClock; drops: Array<[string, PendingDropReason]> } {
  const clock = new ManualClock();
  const drops: Array<[string, PendingDropReason]> = [];
  return { s: new PendingSlots({ clock, random }, { deadlineMs: 1000, ...init }), clock, drops };
}

test('a pending connection not settled by its deadline is dropped; a settled or released one is not', () => {
  const { s, clock, drops } = slots({ maxPerSource: 10, maxTotal: 10 });
  s.admit('a', (r) => drops.push(['late', r]));
  const ok = s.admit('a', (r) => drops.push(['settled', r]));
  const gone = s.admit('b', (r) => drops.push(['released', r]));
  clock.advance(500);
  ok.settle();
  gone.release();
  assert.equal(s.size, 1);
  clock.advance(500);
  assert.deepEqual(drops, [['late', 'deadline']]);
  assert.equal(s.size, 0);
  assert.deepEqual(s.stats, { admitted: 3, settled: 1, released: 1, dropped: { deadline: 1, 'evicted-source': 0, 'evicted-total': 0, closing: 0 } });
  // Settling after the drop changes nothing.
  ok.settle();
  assert.equal(s.stats.settled, 1);
});

test('over the per-source cap the newcomer evicts its own source\'s oldest; other sources are untouched', () => {
  const { s, drops } = slots({ maxPerSource: 2, maxTotal: 100 });
  s.admit('x', () => drops.push(['x1', 'evicted-source']));
  s.admit('y', () => drops.push(['y1', 'evicted-source']));
  s.admit('x', () => drops.push(['x2', 'evicted-source']));
  const x3 = s.admit('x', () => drops.push(['x3', 'evicted-source']));
  assert.deepEqual(drops.map((d) => d[0]), ['x1']);
  assert.equal(s.sizeOf('x'), 2);
  assert.equal(s.sizeOf('y'), 1);
  assert.ok(x3.pending);
});

test('over the total cap the newcomer evicts the pending connection the random draw picks', () => {
  let draw = 0.99;
  const { s, drops } = slots({ maxPerSource: 10, maxTotal: 3 }, () => draw);
  for (const name of ['a', 'b', 'c']) s.admit(name, (r) => drops.push([name, r]));
  s.admit('d', (r) => drops.push(['d', r]));
  draw = 0;
  s.admit('e', (r) => drops.push(['e', r]));
  // The draw indexes the pending set as it is (c was last, then a first).
  assert.deepEqual(drops, [['c', 'evicted-total'], ['a', 'evicted-total']]);
  assert.equal(s.size, 3);
  assert.equal(s.stats.dropped['evicted-total'], 2);
});

test('onDrop replaces what dropping does; closeAll drops every pending connection as closing', () => {
  const { s, drops } = slots({ maxPerSource: 10, maxTotal: 10 });
  const slot = s.admit('a', () => drops.push(['raw', 'closing']));
  slot.onDrop((r) => drops.push(['ws', r]));
  s.closeAll();
  assert.deepEqual(drops, [['ws', 'closing']]);
  assert.equal(s.size, 0);
});

test('an IPv4-mapped IPv6 source and its IPv4 address, or two spellings of one IPv6 address, share one per-source cap', () => {
  const { s, drops } = slots({ maxPerSource: 2, maxTotal: 100 });
  s.admit('10.0.0.7', () => drops.push(['v4', 'evicted-source']));
  s.admit('::ffff:10.0.0.7', () => drops.push(['mapped', 'evicted-source']));
  s.admit('::FFFF:0a00:0007', () => drops.push(['mapped-hex', 'evicted-source']));
  assert.deepEqual(drops.map((d) => d[0]), ['v4']);
  assert.equal(s.sizeOf('10.0.0.7'), 2);
  s.admit('fd00:0:0::1', () => drops.push(['long', 'evicted-source']));
  s.admit('FD00::1', () => drops.push(['short', 'evicted-source']));
  s.admit('fd00::1', () => drops.push(['third', 'evicted-source']));
  assert.deepEqual(drops.map((d) => d[0]), ['v4', 'long']);
  assert.equal(s.sizeOf('fd00::0:1'), 2);
  assert.equal(s.sizeOf('fd00::2'), 0);
});
