import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FlowCache } from '../../src/dataplane/flow-cache.ts';

describe('FlowCache', () => {
  it('keeps every key distinct, 48-bit MACs and ingress included', () => {
    const c = new FlowCache<string>(4096);
    const macs = [0, 1, 2, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001, 0x0200_0000_0001, 0xffff_ffff_ffff, 0xffff_ffff_fffe];
    for (const s of macs) for (const d of macs) for (const i of [0, 1, 7]) c.set(s, d, i, `${s}/${d}/${i}`);
    assert.equal(c.size, macs.length * macs.length * 3);
    for (const s of macs) for (const d of macs) for (const i of [0, 1, 7]) assert.equal(c.get(s, d, i), `${s}/${d}/${i}`);
    assert.equal(c.get(3, 3, 0), undefined);
    assert.equal(c.get(1, 2, 2), undefined);
  });

  it('set on an existing key replaces in place; clear empties', () => {
    const c = new FlowCache<number>(16);
    c.set(5, 6, 1, 1);
    c.set(5, 6, 1, 2);
    assert.equal(c.size, 1);
    assert.equal(c.get(5, 6, 1), 2);
    c.clear();
    assert.equal(c.size, 0);
    assert.equal(c.get(5, 6, 1), undefined);
  });

  it('holds maxEntries, then reports full and refuses new keys (replacing still works)', () => {
    const c = new FlowCache<number>(100);
    for (let i = 0; i < 100; i++) c.set(0x0200_0000_0000 + i, 0x0200_0000_0000 + 3 * i, i % 4, i);
    assert.equal(c.full, true);
    for (let i = 0; i < 100; i++) assert.equal(c.get(0x0200_0000_0000 + i, 0x0200_0000_0000 + 3 * i, i % 4), i);
    c.set(0x0200_0000_0000, 0x0200_0000_0000, 0, -1);
    assert.equal(c.get(0x0200_0000_0000, 0x0200_0000_0000, 0), -1);
    assert.throws(() => c.set(1, 1, 1, 0), RangeError);
    assert.throws(() => new FlowCache(0), RangeError);
  });
});
