/**
 * Rule-set patches on the wire and as a daemon applies them
 * (control/rule-patch.ts): the codec takes a well-formed patch-rules and
 * refuses a malformed one with a typed error naming what is wrong; a patch
 * applied onto its base gives exactly the set the whole set would (random
 * histories, rules and digests compared), and nothing onto another base.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControllerMessage, encodeControlMessage } from '../../src/control/control-protocol.ts';
import { HeldRuleSet, MAX_PATCH_RULES, RulesPatchBaseError, RulesPatchDigestError } from '../../src/control/rule-patch.ts';
import { rulesDigestOf } from '../../src/control/rule-set-digest.ts';
import type { RuleSpec } from '../../src/control/rule-spec.ts';

const rule = (n: number, link = 'hub', priority = 100): RuleSpec => ({ id: `vm-${String(n).padStart(6, '0')}`, priority, src: 'any', dst: `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`, action: { link } });
const digest = (rules: readonly RuleSpec[]): string => rulesDigestOf(rules);

test('patch-rules round-trips through the codec', () => {
  const m = { type: 'patch-rules' as const, from: 4, version: 6, digest: digest([rule(1)]), remove: ['vm-000002'], upsert: [rule(1)] };
  const d = decodeControllerMessage(encodeControlMessage(m));
  assert.ok(d.ok);
  assert.deepEqual(d.message, m);
});

test('a malformed patch-rules is refused with VNET_ERR_CONTROL_MESSAGE naming what is wrong', () => {
  const ok = { type: 'patch-rules', from: 4, version: 5, digest: digest([]), remove: [], upsert: [] };
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['version not after its base', { ...ok, version: 4 }, /not after base 4/],
    ['an id removed and upserted', { ...ok, remove: ['vm-000001'], upsert: [rule(1)] }, /vm-000001.*twice/],
    ['an id upserted twice', { ...ok, upsert: [rule(1), rule(1, 's2')] }, /twice/],
    ['an id removed twice', { ...ok, remove: ['a', 'a'] }, /twice/],
    ['too many changes', { ...ok, remove: Array.from({ length: MAX_PATCH_RULES + 1 }, (_, i) => `r${i}`) }, /remove|exceed|16384/],
    ['a digest that is not one', { ...ok, digest: 'abc' }, /digest/],
    ['a bad rule', { ...ok, upsert: [{ ...rule(1), dst: 'nope' }] }, /upsert/],
    ['an unknown key', { ...ok, extra: 1 }, /extra/],
  ];
  for (const [what, m, pattern] of cases) {
    const d = decodeControllerMessage(JSON.stringify(m));
    assert.ok(!d.ok, `${what}: refused`);
    assert.equal(d.error.code, 'VNET_ERR_CONTROL_MESSAGE', what);
    assert.match(d.error.message, pattern, what);
  }
});

test('a patch onto another base, or whose result has another digest, throws a typed error and changes nothing', () => {
  const held = new HeldRuleSet(3, [rule(1), rule(2)]);
  assert.throws(() => held.patched({ from: 2, version: 4, digest: digest([rule(1)]), remove: [rule(2).id], upsert: [] }),
    (e: unknown) => e instanceof RulesPatchBaseError && e.code === 'VNET_ERR_RULES_PATCH_BASE' && /from version 2.*holds version 3/.test(e.message));
  assert.throws(() => held.patched({ from: 3, version: 4, digest: digest([rule(1), rule(2), rule(3)]), remove: [rule(2).id], upsert: [] }),
    (e: unknown) => e instanceof RulesPatchDigestError && e.code === 'VNET_ERR_RULES_PATCH_DIGEST');
  assert.equal(held.version, 3);
  assert.deepEqual(held.rules(), [rule(1), rule(2)]);
  assert.equal(held.digest(), digest([rule(1), rule(2)]));
});

/** A small deterministic generator (mulberry32): histories are reproducible. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('over random histories, patches applied give exactly the whole sets: same rules, same digest', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rnd = random(seed);
    const pick = (n: number): number => Math.floor(rnd() * n);
    let whole = new Map<string, RuleSpec>();
    let held = new HeldRuleSet();
    for (let version = 1; version <= 40; version++) {
      const next = new Map(whole);
      const remove: string[] = [];
      const upsert: RuleSpec[] = [];
      const touched = new Set<string>();
      for (let k = pick(8); k >= 0; k--) {
        const r = rule(pick(60), ['hub', 's1', 's2'][pick(3)]!, [100, 200][pick(2)]!);
        if (touched.has(r.id)) continue;
        touched.add(r.id);
        if (next.has(r.id) && rnd() < 0.4) {
          next.delete(r.id);
          remove.push(r.id);
        } else {
          next.set(r.id, r);
          upsert.push(r);
        }
      }
      // Now and then an id removed that the set does not hold: no change.
      if (rnd() < 0.2 && !touched.has('vm-999999')) remove.push('vm-999999');
      const sorted = [...next.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
      held = held.patched({ from: version - 1, version, digest: digest(sorted), remove, upsert });
      whole = next;
      assert.deepEqual(held.rules(), sorted, `seed ${seed}, version ${version}: rules`);
      assert.equal(held.digest(), digest(sorted), `seed ${seed}, version ${version}: digest`);
      assert.equal(held.digest(), new HeldRuleSet(version, sorted).digest());
    }
  }
});
