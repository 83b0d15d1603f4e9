import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PageCache } from '../../../src/migration/engine/page-cache.ts';
import { Rng } from '../../../src/migration/guests/workload.ts';

test('a holder is found, and forgotten when its page is overwritten', () => {
  const c = new PageCache(8);
  c.record(3, 1, 2, true);
  assert.equal(c.holder(1, 2), 3);
  assert.ok(c.holdsAt(3, 1, 2));
  c.record(3, 9, 9, true);
  assert.equal(c.holder(1, 2), -1);
  assert.equal(c.holder(9, 9), 3);
});

test('zero pages are known but never indexed for references', () => {
  const c = new PageCache(4);
  c.record(0, 5, 5, false);
  assert.ok(c.known(0));
  assert.equal(c.holder(5, 5), -1);
});

test('capacity bounds the index, oldest first', () => {
  const c = new PageCache(100, 3);
  for (let i = 0; i < 5; i++) c.record(i, 100 + i, i, true);
  assert.equal(c.holder(100, 0), -1);
  assert.equal(c.holder(101, 1), -1);
  assert.equal(c.holder(104, 4), 4);
  assert.ok(c.indexed() <= 3);
});

test('two caches fed the same updates answer every lookup alike (lock-step)', () => {
  const rng = new Rng(7);
  const a = new PageCache(500, 200);
  const b = new PageCache(500, 200);
  const at = new Map<number, string>();
  for (let n = 0; n < 20_000; n++) {
    const idx = rng.below(500);
    const content = rng.below(300);
    const hi = content * 7;
    const lo = content ^ 0x5555;
    const indexable = content !== 0;
    a.record(idx, hi, lo, indexable);
    b.record(idx, hi, lo, indexable);
    at.set(idx, `${hi}:${lo}`);
    const q = rng.below(300);
    const h1 = a.holder(q * 7, q ^ 0x5555);
    assert.equal(h1, b.holder(q * 7, q ^ 0x5555));
    // whatever the bounded cache claims must be true of the destination
    if (h1 >= 0) assert.equal(at.get(h1), `${q * 7}:${q ^ 0x5555}`);
  }
});
