import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { ConnectionSlots, type SlotDropReason } from '../../src/dataplane/connection-slots.ts';

describe('connection slots', () => {
  const setup = (limits = { maxTotal: 4, maxPerSource: 2, deadlineMs: 1000 }) => {
    const clock = new ManualClock();
    const slots = new ConnectionSlots(clock, limits);
    const drops: Array<[string, SlotDropReason]> = [];
    const admit = (name: string, source: string) => slots.admit(source, (why) => drops.push([name, why]));
    return { clock, slots, drops, admit };
  };

  it('drops a connection still pending at the deadline, and not one released before it', () => {
    const { clock, slots, drops, admit } = setup();
    admit('idle', 'a');
    const fast = admit('fast', 'b');
    clock.advance(10);
    fast.release();
    clock.advance(989);
    assert.deepEqual(drops, []);
    clock.advance(1);
    assert.deepEqual(drops, [['idle', 'deadline']]);
    assert.equal(slots.pending, 0);
  });

  it('evicts the oldest of a source over its cap, leaving other sources alone', () => {
    const { slots, drops, admit } = setup();
    admit('a1', 'a');
    admit('b1', 'b');
    admit('a2', 'a');
    const a3 = admit('a3', 'a');
    assert.deepEqual(drops, [['a1', 'evicted-source']]);
    assert.equal(slots.pendingFrom('a'), 2);
    assert.equal(slots.pendingFrom('b'), 1);
    assert.equal(a3.dropped, undefined);
  });

  it('evicts the oldest of all when full, so the newcomer always gets a slot', () => {
    const { slots, drops, admit } = setup({ maxTotal: 3, maxPerSource: 3, deadlineMs: 1000 });
    const first = admit('x', 'a');
    admit('y', 'b');
    admit('z', 'c');
    const honest = admit('honest', 'd');
    assert.deepEqual(drops, [['x', 'evicted-total']]);
    assert.equal(first.dropped, 'evicted-total');
    assert.equal(honest.dropped, undefined);
    assert.equal(slots.pending, 3);
    first.release(); // releasing a dropped slot is harmless
    assert.equal(slots.pending, 3);
  });

  it('when full, takes the slot back from the source holding the most, never from a host that dialled once', () => {
    const { drops, admit } = setup({ maxTotal: 4, maxPerSource: 4, deadlineMs: 1000 });
    const honest = admit('honest', 'h');
    admit('m1', 'm');
    admit('m2', 'm');
    admit('m3', 'm');
    for (let i = 4; i < 50; i++) admit(`m${i}`, 'm');
    admit('other', 'o');
    assert.equal(honest.dropped, undefined, 'the oldest of all, but its source holds one');
    assert.ok(drops.every(([, why]) => why === 'evicted-total' || why === 'evicted-source'));
    assert.ok(!drops.some(([name]) => name === 'honest' || name === 'other'));
  });

  it('a flood renewing its connections cannot starve a newcomer that finishes quickly', () => {
    const { slots, drops, admit } = setup({ maxTotal: 8, maxPerSource: 4, deadlineMs: 1000 });
    for (let i = 0; i < 100; i++) admit(`flood${i}`, `10.0.0.${i % 3}`);
    const honest = admit('honest', '10.0.0.1');
    assert.equal(honest.dropped, undefined, 'admitted');
    honest.release();
    assert.ok(drops.every(([name]) => name !== 'honest'));
    assert.ok(slots.pending <= 8);
  });

  it('clear drops everything and rejects nonsense limits', () => {
    const { slots, drops, admit } = setup();
    admit('a', 'a');
    admit('b', 'b');
    slots.clear();
    assert.equal(drops.length, 2);
    assert.equal(slots.pending, 0);
    assert.throws(() => new ConnectionSlots(new ManualClock(), { maxTotal: 0, maxPerSource: 1, deadlineMs: 1 }), RangeError);
  });
});
