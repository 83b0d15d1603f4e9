import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RuleError } from '../../src/dataplane/errors.ts';
import {
  compareRules,
  formatMacMatch,
  macMatches,
  MAX_RULES,
  parseMacMatch,
  parseRule,
  parseRules,
  ruleMatches,
  ruleToSpec,
  sameRule,
} from '../../src/dataplane/forwarding-rule.ts';
import { parseMac } from '../../src/common/mac.ts';

const A = parseMac('02:00:00:00:00:01');
const B = parseMac('02:00:00:00:00:02');

function spec(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: 'r1', priority: 100, src: 'any', dst: '02:00:00:00:00:02', action: { link: 'hostB' }, ...over };
}

function rejects(json: unknown, fragment: string): void {
  assert.throws(
    () => parseRule(json, 'controller'),
    (err: unknown) => err instanceof RuleError && err.code === 'VNET_ERR_RULE' && err.message.includes(fragment),
    `expected a RuleError mentioning ${JSON.stringify(fragment)}`,
  );
}

describe('parseRule', () => {
  it('parses the documented JSON form', () => {
    const r = parseRule(spec(), 'config');
    assert.equal(r.id, 'r1');
    assert.equal(r.priority, 100);
    assert.deepEqual(r.src, { kind: 'any' });
    assert.deepEqual(r.dst, { kind: 'eq', mac: B });
    assert.deepEqual(r.action, { kind: 'link', link: 'hostB' });
    assert.equal(r.origin, 'config');
    assert.ok(Object.isFrozen(r));
  });

  it('reads "!MAC" as not-equal, on either side', () => {
    const r = parseRule(spec({ src: '!02:00:00:00:00:01', dst: '!02-00-00-00-00-02' }), 'admin');
    assert.deepEqual(r.src, { kind: 'ne', mac: A });
    assert.deepEqual(r.dst, { kind: 'ne', mac: B });
  });

  it('accepts any id of 1-128 characters without control characters (as the config schema does)', () => {
    assert.equal(parseRule(spec({ id: 'fast path A→B' }), 'config').id, 'fast path A→B');
    assert.equal(parseRule(spec({ id: 'x'.repeat(128) }), 'config').id.length, 128);
  });

  it('accepts every action form', () => {
    assert.deepEqual(parseRule(spec({ action: 'flood' }), 'admin').action, { kind: 'flood' });
    assert.deepEqual(parseRule(spec({ action: 'drop' }), 'admin').action, { kind: 'drop' });
    assert.deepEqual(parseRule(spec({ action: { port: 'vm-1' } }), 'admin').action, { kind: 'port', port: 'vm-1' });
    assert.deepEqual(parseRule(spec({ action: { link: 'host.b' } }), 'admin').action, { kind: 'link', link: 'host.b' });
  });

  it('rejects malformed rules with a RuleError naming the field', () => {
    rejects(null, 'expected an object');
    rejects([], 'expected an object');
    rejects('rule', 'expected an object');
    rejects(spec({ extra: 1 }), 'unknown key "extra"');
    rejects(spec({ id: '' }), '.id');
    rejects(spec({ id: 'line\nbreak' }), '.id');
    rejects(spec({ id: 'x'.repeat(129) }), '.id');
    rejects(spec({ id: undefined }), '.id');
    rejects(spec({ priority: -1 }), '.priority');
    rejects(spec({ priority: 65536 }), '.priority');
    rejects(spec({ priority: 1.5 }), '.priority');
    rejects(spec({ priority: '100' }), '.priority');
    rejects(spec({ priority: Number.NaN }), '.priority');
    rejects(spec({ src: '02:00:00:00:00' }), '.src');
    rejects(spec({ src: '!!02:00:00:00:00:01' }), '.src');
    rejects(spec({ src: 'ANY' }), '.src');
    rejects(spec({ dst: 5 }), '.dst');
    rejects(spec({ dst: undefined }), '.dst');
    rejects(spec({ action: 'forward' }), '.action');
    rejects(spec({ action: { port: 'p', link: 'h' } }), 'exactly one key');
    rejects(spec({ action: { host: 'h' } }), 'exactly one key');
    rejects(spec({ action: { port: '' } }), '.action.port');
    rejects(spec({ action: { port: 'much-too-long-port-name' } }), '.action.port');
    rejects(spec({ action: { link: '-bad' } }), '.action.link');
    rejects(spec({ action: { link: 7 } }), '.action.link');
    rejects(spec({ action: null }), '.action');
  });

  it('is total: random JSON either parses or throws a RuleError, nothing else', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
    const values: unknown[] = [null, undefined, 0, -1, 1e300, 'any', '!', '!any', '02:00:00:00:00:01', 'flood', 'drop', {}, [], { port: 'p' }, { link: 'h' }, true, 'x'.repeat(300)];
    let parsed = 0;
    for (let i = 0; i < 2000; i++) {
      const obj: Record<string, unknown> = {};
      for (const key of ['id', 'priority', 'src', 'dst', 'action', 'other']) if (rnd(6) > 0) obj[key] = rnd(3) === 0 ? pick(values) : spec()[key];
      try {
        parseRule(obj, 'controller');
        parsed++;
      } catch (err) {
        assert.ok(err instanceof RuleError, `unexpected ${String(err)}`);
      }
    }
    assert.ok(parsed > 0, 'some random rules are valid');
  });
});

describe('parseRules', () => {
  it('parses a set and rejects duplicate ids, non-arrays and oversize sets', () => {
    const rules = parseRules([spec(), spec({ id: 'r2', action: 'drop' })], 'controller');
    assert.deepEqual(rules.map((r) => r.id), ['r1', 'r2']);
    assert.throws(() => parseRules([spec(), spec()], 'controller'), (e: unknown) => e instanceof RuleError && e.message.includes('duplicate rule id "r1"'));
    assert.throws(() => parseRules({}, 'controller'), RuleError);
    assert.throws(() => parseRules([spec(), { bad: 1 }], 'controller'), (e: unknown) => e instanceof RuleError && e.message.startsWith('rules[1]'));
    assert.throws(() => parseRules(new Array(MAX_RULES + 1).fill(0), 'controller'), (e: unknown) => e instanceof RuleError && e.message.includes('maximum'));
  });
});

describe('matching and ordering', () => {
  it('macMatches: any, eq, ne', () => {
    assert.equal(macMatches(parseMacMatch('any', 'f'), A), true);
    assert.equal(macMatches(parseMacMatch('02:00:00:00:00:01', 'f'), A), true);
    assert.equal(macMatches(parseMacMatch('02:00:00:00:00:01', 'f'), B), false);
    assert.equal(macMatches(parseMacMatch('!02:00:00:00:00:01', 'f'), A), false);
    assert.equal(macMatches(parseMacMatch('!02:00:00:00:00:01', 'f'), B), true);
  });

  it('ruleMatches needs both sides', () => {
    const r = parseRule(spec({ src: '02:00:00:00:00:01', dst: '!02:00:00:00:00:01' }), 'admin');
    assert.equal(ruleMatches(r, A, B), true);
    assert.equal(ruleMatches(r, B, B), false);
    assert.equal(ruleMatches(r, A, A), false);
  });

  it('compareRules: higher priority first, then id in code-unit order', () => {
    const rs = [
      parseRule(spec({ id: 'b', priority: 5 }), 'admin'),
      parseRule(spec({ id: 'a', priority: 5 }), 'admin'),
      parseRule(spec({ id: 'Z', priority: 5 }), 'admin'),
      parseRule(spec({ id: 'c', priority: 9 }), 'admin'),
    ];
    assert.deepEqual([...rs].sort(compareRules).map((r) => r.id), ['c', 'Z', 'a', 'b']);
  });

  it('round-trips through ruleToSpec and compares with sameRule', () => {
    for (const s of [spec(), spec({ src: '!02:00:00:00:00:01', action: 'flood' }), spec({ action: { port: 'tap0' } }), spec({ action: 'drop' })]) {
      const r = parseRule(s, 'controller');
      const back = parseRule(ruleToSpec(r), 'controller');
      assert.ok(sameRule(r, back));
      assert.equal(formatMacMatch(back.dst), String(s.dst));
    }
    assert.equal(sameRule(parseRule(spec(), 'controller'), parseRule(spec({ priority: 101 }), 'controller')), false);
    assert.equal(sameRule(parseRule(spec(), 'controller'), parseRule(spec(), 'config')), false);
    assert.equal(sameRule(parseRule(spec(), 'controller'), parseRule(spec({ action: { link: 'hostC' } }), 'controller')), false);
  });
});
