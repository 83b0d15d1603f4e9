import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RuleError } from '../../src/dataplane/errors.ts';
import { parseRule, ruleMatches, type ForwardingRule } from '../../src/dataplane/forwarding-rule.ts';
import { formatMac } from '../../src/common/mac.ts';
import { RuleSet } from '../../src/dataplane/rule-set.ts';

const MACS = [0x0200_0000_0001, 0x0200_0000_0002, 0x0200_0000_0003, 0xffff_ffff_ffff, 0x0a0b_0c0d_0e0f];

describe('RuleSet', () => {
  it('the compiled scan finds exactly what a plain walk over the sorted rules finds', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return (seed >>> 8) % n;
    };
    const match = (): string => {
      const k = rnd(3);
      const m = formatMac(MACS[rnd(MACS.length)]!);
      return k === 0 ? 'any' : k === 1 ? m : `!${m}`;
    };
    for (let round = 0; round < 50; round++) {
      const set = new RuleSet();
      const rules: ForwardingRule[] = [];
      for (let i = 0; i < 1 + rnd(12); i++) rules.push(parseRule({ id: `r${i}`, priority: rnd(4), src: match(), dst: match(), action: 'drop' }, 'controller'));
      set.replace('controller', rules);
      for (const src of MACS) {
        for (const dst of MACS) {
          const want: string[] = set.sorted.filter((r) => ruleMatches(r, src, dst)).map((r) => r.id);
          const got: string[] = [];
          for (let i = set.firstMatch(src, dst, 0); i >= 0; i = set.firstMatch(src, dst, i + 1)) got.push(set.sorted[i]!.id);
          assert.deepEqual(got, want);
        }
      }
    }
  });

  it('keeps rules sorted by priority, then id, across origins', () => {
    const set = new RuleSet();
    set.replace('config', [parseRule({ id: 'c', priority: 5, src: 'any', dst: 'any', action: 'drop' }, 'config')]);
    set.add(parseRule({ id: 'a', priority: 5, src: 'any', dst: 'any', action: 'drop' }, 'admin'));
    set.replace('controller', [parseRule({ id: 'z', priority: 9, src: 'any', dst: 'any', action: 'drop' }, 'controller')]);
    assert.deepEqual(set.sorted.map((r) => r.id), ['z', 'a', 'c']);
    assert.ok(Object.isFrozen(set.sorted));
  });

  it('a rejected replace leaves the set as it was', () => {
    const set = new RuleSet();
    const r = (id: string): ForwardingRule => parseRule({ id, priority: 1, src: 'any', dst: 'any', action: 'drop' }, 'controller');
    set.replace('controller', [r('a'), r('b')]);
    assert.throws(() => set.replace('controller', [r('c'), r('c')]), RuleError);
    assert.deepEqual(set.sorted.map((x) => x.id), ['a', 'b']);
    assert.equal(set.size, 2);
  });
});
