import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MacLearning, NOWHERE } from '../../src/dataplane/mac-learning.ts';

function table(init: { agingMs?: number; maxLearned?: number } = {}) {
  const changes: number[] = [];
  const t = new MacLearning({ agingMs: init.agingMs ?? 1000, maxLearned: init.maxLearned ?? 100, onChange: (m) => changes.push(m) });
  return { t, changes };
}

describe('MacLearning', () => {
  it('reports new and moved MACs through onChange, not refreshes', () => {
    const { t, changes } = table();
    assert.equal(t.learn(1, 0, 0), 'new');
    assert.equal(t.learn(1, 0, 5), 'refreshed');
    assert.equal(t.learn(1, 3, 6), 'moved');
    assert.deepEqual(changes, [1, 1]);
    assert.equal(t.get(1)!.location, 3);
    assert.equal(t.counters.moves, 1);
  });

  it('a moved or removed entry object is marked NOWHERE (holders of the old object see the change)', () => {
    const { t } = table();
    t.learn(1, 0, 0);
    const old = t.get(1)!;
    t.learn(1, 2, 1);
    assert.equal(old.location, NOWHERE);
    const cur = t.get(1)!;
    t.forget(1);
    assert.equal(cur.location, NOWHERE);
  });

  it('a refresh costs only a flag; the sweep turns it into a last-seen time', () => {
    const { t } = table({ agingMs: 100 });
    t.learn(1, 0, 0);
    t.learn(1, 0, 90); // flag only
    assert.equal(t.get(1)!.lastSeenMs, 0);
    assert.equal(t.sweep(95), 0);
    assert.equal(t.get(1)!.lastSeenMs, 95);
    assert.equal(t.sweep(194), 0);
    assert.equal(t.sweep(195), 1);
    assert.equal(t.size, 0);
  });

  it('evicts the least recently seen (as of the last sweep) when full', () => {
    const { t, changes } = table({ maxLearned: 3 });
    t.learn(1, 0, 0);
    t.learn(2, 0, 0);
    t.learn(3, 0, 0);
    t.learn(1, 0, 1);
    t.sweep(2); // 1 was seen: it becomes the youngest
    t.learn(4, 0, 3);
    assert.deepEqual([...t.entries()].map((e) => e.mac), [3, 1, 4]);
    assert.equal(t.counters.evictions, 1);
    assert.ok(changes.includes(2));
  });

  it('removeLocation forgets every MAC at that location only', () => {
    const { t } = table();
    t.learn(1, 0, 0);
    t.learn(2, 1, 0);
    t.learn(3, 0, 0);
    assert.equal(t.removeLocation(0), 2);
    assert.deepEqual([...t.entries()].map((e) => e.mac), [2]);
  });

  it('ageOf is an upper bound at sweep resolution', () => {
    const { t } = table();
    t.learn(1, 0, 100);
    assert.equal(t.ageOf(t.get(1)!, 150), 50);
    t.sweep(200);
    t.learn(1, 0, 250); // seen at 250; known only as "after the sweep at 200"
    assert.equal(t.ageOf(t.get(1)!, 300), 100);
  });

  it('rejects nonsense limits', () => {
    assert.throws(() => new MacLearning({ agingMs: 0, maxLearned: 1, onChange: () => {} }), RangeError);
    assert.throws(() => new MacLearning({ agingMs: 1, maxLearned: 0, onChange: () => {} }), RangeError);
  });
});
