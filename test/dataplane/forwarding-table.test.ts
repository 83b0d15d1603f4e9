import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import type { LinkKind } from '../../src/control/daemon-control.ts';
import type { Egress } from '../../src/dataplane/egress.ts';
import { RuleError } from '../../src/dataplane/errors.ts';
import { parseRule, type RuleOrigin } from '../../src/dataplane/forwarding-rule.ts';
import { ForwardingTable } from '../../src/dataplane/forwarding-table.ts';
import { BROADCAST_MAC, parseMac, type Mac } from '../../src/common/mac.ts';

const A = parseMac('02:00:00:00:00:0a');
const B = parseMac('02:00:00:00:00:0b');
const C = parseMac('02:00:00:00:00:0c');
const D = parseMac('02:00:00:00:00:0d');
const MCAST = parseMac('01:00:5e:00:00:01');

function rule(id: string, priority: number, src: string, dst: string, action: unknown, origin: RuleOrigin = 'controller'): ReturnType<typeof parseRule> {
  return parseRule({ id, priority, src, dst, action }, origin);
}

/** A spoke with ports p1..p3, a backbone link to the hub and a fast-path link to hostC. */
function spoke(clock = new ManualClock(), opts: { agingMs?: number; maxLearned?: number } = {}) {
  const t = new ForwardingTable({ role: 'spoke', clock, ...opts });
  const p1 = t.addPort('p1', 'p1');
  const p2 = t.addPort('p2', 'p2');
  const p3 = t.addPort('p3', 'p3');
  const hub = t.addLink('hub', 'backbone', 'hub');
  const fast = t.addLink('hostC', 'fast-path', 'hostC');
  return { t, clock, p1, p2, p3, hub, fast };
}

function targets(eg: Egress): string {
  return [...eg.ports.map((p) => `port:${p}`), ...eg.links.map((l) => `link:${l}`)].sort().join(' ') || (eg.drop ? 'drop' : '');
}

describe('ForwardingTable rules', () => {
  it('higher priority wins; equal priorities go to the lower id, whatever the insertion order', () => {
    const { t, p1 } = spoke();
    t.setRules('controller', [rule('low', 10, 'any', 'any', { port: 'p2' }), rule('high', 20, 'any', 'any', { port: 'p3' })]);
    assert.equal(targets(t.resolve(A, B, p1)), 'port:p3');
    assert.equal(t.resolve(A, B, p1).ruleId, 'high');

    const { t: t2, p1: q1 } = spoke();
    t2.addRule(rule('b', 50, 'any', 'any', { port: 'p3' }));
    t2.addRule(rule('a', 50, 'any', 'any', { port: 'p2' }));
    assert.equal(t2.resolve(A, B, q1).ruleId, 'a');
    assert.deepEqual(t2.rules().map((r) => r.id), ['a', 'b']);
  });

  it('matches any / eq / ne on each side', () => {
    const cases: [string, string, Mac, Mac, boolean][] = [
      ['any', 'any', A, B, true],
      [fmt(A), 'any', A, B, true],
      [fmt(A), 'any', C, B, false],
      [`!${fmt(A)}`, 'any', A, B, false],
      [`!${fmt(A)}`, 'any', C, B, true],
      ['any', fmt(B), A, B, true],
      ['any', fmt(B), A, C, false],
      ['any', `!${fmt(B)}`, A, B, false],
      ['any', `!${fmt(B)}`, A, C, true],
      [fmt(A), `!${fmt(B)}`, A, C, true],
      [fmt(A), `!${fmt(B)}`, A, B, false],
      [`!${fmt(A)}`, fmt(B), C, B, true],
    ];
    for (const [src, dst, s, d, hit] of cases) {
      const { t, p1 } = spoke();
      t.addRule(rule('r', 1, src, dst, 'drop'));
      const eg = t.resolve(s, d, p1);
      assert.equal(eg.reason === 'rule-drop', hit, `src ${src} dst ${dst} on ${fmt(s)}→${fmt(d)}`);
    }
  });

  it('rules beat learning', () => {
    const { t, p1, p2 } = spoke();
    t.forward(B, A, p2); // B learned at p2
    assert.equal(targets(t.resolve(A, B, p1)), 'port:p2');
    t.addRule(rule('to-fast', 100, 'any', fmt(B), { link: 'hostC' }));
    assert.equal(targets(t.resolve(A, B, p1)), 'link:hostC');
    assert.equal(t.resolve(A, B, p1).reason, 'rule');
  });

  it('a rule to a missing link is skipped: lower rules, then learning, decide; it applies again when the link returns', () => {
    const { t, p1, p2 } = spoke();
    t.forward(B, A, p2);
    t.setRules('controller', [rule('fast', 100, 'any', fmt(B), { link: 'hostD' }), rule('missing-port', 50, 'any', fmt(B), { port: 'p9' })]);
    assert.equal(targets(t.resolve(A, B, p1)), 'port:p2', 'falls through to learning');
    t.addLink('hostD', 'fast-path', 'hostD');
    assert.equal(targets(t.resolve(A, B, p1)), 'link:hostD');
    t.removeLink('hostD');
    assert.equal(targets(t.resolve(A, B, p1)), 'port:p2');
    t.addRule(rule('mid', 70, 'any', fmt(B), { link: 'hub' }));
    assert.equal(targets(t.resolve(A, B, p1)), 'link:hub', 'falls through to the next rule that applies');
  });

  it('setRules replaces one origin, reports what changed, and leaves other origins alone', () => {
    const { t } = spoke();
    t.setRules('config', [rule('cfg', 1, 'any', 'any', 'drop', 'config')]);
    let ch = t.setRules('controller', [rule('a', 1, 'any', 'any', 'drop'), rule('b', 2, 'any', 'any', 'flood')]);
    assert.deepEqual(ch, { added: ['a', 'b'], removed: [], changed: [] });
    const inv = t.stats.invalidations;
    ch = t.setRules('controller', [rule('a', 1, 'any', 'any', 'drop'), rule('b', 2, 'any', 'any', 'flood')]);
    assert.deepEqual(ch, { added: [], removed: [], changed: [] });
    assert.equal(t.stats.invalidations, inv, 'an identical push does not drop the cache');
    ch = t.setRules('controller', [rule('b', 3, 'any', 'any', 'flood'), rule('c', 1, 'any', 'any', 'drop')]);
    assert.deepEqual(ch, { added: ['c'], removed: ['a'], changed: ['b'] });
    assert.deepEqual(t.rules().map((r) => r.id).sort(), ['b', 'c', 'cfg']);
    assert.throws(() => t.setRules('controller', [rule('cfg', 1, 'any', 'any', 'drop')]), RuleError, 'id owned by another origin');
    assert.throws(() => t.setRules('controller', [rule('x', 1, 'any', 'any', 'drop', 'admin')]), RuleError, 'wrong origin');
    assert.throws(() => t.setRules('controller', [rule('x', 1, 'any', 'any', 'drop'), rule('x', 2, 'any', 'any', 'drop')]), RuleError);
    assert.deepEqual(t.rules().map((r) => r.id).sort(), ['b', 'c', 'cfg'], 'a rejected push changes nothing');
    assert.throws(() => t.addRule(rule('b', 1, 'any', 'any', 'drop')), RuleError);
    assert.equal(t.removeRule('b'), true);
    assert.equal(t.removeRule('b'), false);
  });

  it('a rule back to the ingress drops (hairpin) instead of looping', () => {
    const { t, hub } = spoke();
    t.addRule(rule('back', 1, 'any', fmt(B), { link: 'hub' }));
    const eg = t.forward(A, B, hub);
    assert.equal(eg.drop, true);
    assert.equal(eg.reason, 'hairpin');
    assert.equal(t.stats.drops.hairpin, 1);
  });
});

describe('ForwardingTable learning', () => {
  it('learns the source at its ingress and unicasts to it', () => {
    const { t, p1, p2 } = spoke();
    assert.equal(t.forward(A, B, p1).reason, 'unknown-unicast');
    const eg = t.forward(B, A, p2);
    assert.equal(targets(eg), 'port:p1');
    assert.equal(eg.reason, 'learned');
    assert.deepEqual(t.learned().map((l) => [fmt(l.mac), l.location]).sort(), [
      [fmt(A), { kind: 'port', name: 'p1' }],
      [fmt(B), { kind: 'port', name: 'p2' }],
    ]);
  });

  it('re-learning at a new location (the VM moved) takes effect at once', () => {
    const { t, p1, p2, hub } = spoke();
    t.forward(A, BROADCAST_MAC, p1);
    assert.equal(targets(t.forward(B, A, p2)), 'port:p1');
    t.forward(A, BROADCAST_MAC, hub); // A now behind the hub
    assert.equal(targets(t.forward(B, A, p2)), 'link:hub');
    t.forward(A, B, p3Of(t));
    assert.equal(targets(t.forward(B, A, p2)), 'port:p3');
    assert.equal(t.stats.learnedMoves, 2);
  });

  it('does not learn multicast or zero source MACs', () => {
    const { t, p1 } = spoke();
    t.forward(MCAST, B, p1);
    t.forward(0, B, p1);
    assert.equal(t.learned().length, 0);
    assert.equal(t.learn(MCAST, p1), false);
  });

  it('never sends learned unicast back out its ingress', () => {
    const { t, p1 } = spoke();
    t.forward(A, BROADCAST_MAC, p1);
    t.forward(B, BROADCAST_MAC, p1); // both behind p1 (e.g. a bridge in the VM)
    const eg = t.forward(A, B, p1);
    assert.equal(eg.drop, true);
    assert.equal(eg.reason, 'hairpin');
  });

  it('on a spoke, never relays learned unicast from one link to another (split horizon)', () => {
    const { t, hub, fast } = spoke();
    t.forward(B, BROADCAST_MAC, hub);
    const eg = t.forward(A, B, fast);
    assert.equal(eg.reason, 'split-horizon');
    assert.equal(eg.drop, true);
  });

  it('on a spoke, a rule sends a frame from a link on to another link only for a MAC it relays (a VM that migrated away); a hub always', () => {
    const { t, p1, hub } = spoke();
    t.setRules('controller', [rule('vm-d', 200, 'any', fmt(D), { link: 'hostC' })]);
    assert.equal(targets(t.forward(A, D, p1)), 'link:hostC', 'from a port: the rule');
    const flooded = t.forward(B, D, hub); // what a hub flooded here: D's host has it already
    assert.equal(flooded.reason, 'split-horizon');
    assert.equal(flooded.drop, true);
    t.relayTo(D); // D's VM migrated away from here: frames still sent here by older rules go on to it
    assert.equal(targets(t.forward(B, D, hub)), 'link:hostC');
    t.stopRelayTo(D);
    assert.equal(t.forward(B, D, hub).reason, 'split-horizon', 'not once the migration is over');

    const h = new ForwardingTable({ role: 'hub', clock: new ManualClock() });
    const s1 = h.addLink('s1', 'backbone', 's1');
    h.addLink('s2', 'fast-path', 's2');
    h.setRules('controller', [rule('vm-d', 200, 'any', fmt(D), { link: 's2' })]);
    assert.equal(targets(h.forward(B, D, s1)), 'link:s2', 'a hub relays by rule');
  });

  it('ages entries out after agingMs unseen, and traffic keeps them alive', () => {
    const clock = new ManualClock(1000);
    const { t, p1, p2 } = spoke(clock, { agingMs: 10_000 });
    t.forward(A, B, p1); // A learned at t=1000
    t.forward(C, B, p2); // C learned at t=1000
    clock.advance(6000);
    t.forward(A, B, p1); // A seen again at t=7000 (a cache hit: only a flag)
    assert.equal(t.expire(clock.now()), 0); // sweep at 7000: A's last-seen becomes 7000
    clock.advance(3999);
    assert.equal(t.expire(clock.now()), 0, 'C is 9999 ms old: not yet');
    clock.advance(1);
    assert.equal(t.expire(clock.now()), 1, 'C is 10000 ms old: gone');
    assert.deepEqual(t.learned().map((l) => fmt(l.mac)), [fmt(A)]);
    assert.equal(t.resolve(B, C, p1).reason, 'unknown-unicast');
    assert.equal(t.resolve(B, A, p2).reason, 'learned');
    clock.advance(6000);
    assert.equal(t.expire(clock.now()), 1, 'A unseen since 7000: gone at 17000');
    assert.equal(t.resolve(B, A, p2).reason, 'unknown-unicast');
    assert.equal(t.stats.learnedExpired, 2);
  });

  it('reports ages no older than the truth', () => {
    const clock = new ManualClock(0);
    const { t, p1 } = spoke(clock);
    t.forward(A, B, p1);
    clock.advance(500);
    assert.equal(t.learned()[0]!.ageMs, 500);
    t.expire(clock.now());
    t.forward(A, B, p1);
    clock.advance(200);
    assert.ok(t.learned()[0]!.ageMs <= 200);
  });

  it('bounds the table at maxLearned, evicting the least recently seen', () => {
    const clock = new ManualClock(0);
    const { t, p1, p2 } = spoke(clock, { maxLearned: 3 });
    t.forward(A, BROADCAST_MAC, p1);
    t.forward(B, BROADCAST_MAC, p1);
    t.forward(C, BROADCAST_MAC, p1);
    clock.advance(10);
    t.forward(A, BROADCAST_MAC, p1); // A seen again
    t.expire(clock.now()); // the sweep moves A to the young end
    t.forward(D, BROADCAST_MAC, p2); // full: evicts B, the oldest
    assert.deepEqual(t.learned().map((l) => fmt(l.mac)).sort(), [A, C, D].map(fmt).sort());
    assert.equal(t.stats.learnedEvictions, 1);
    assert.equal(t.resolve(C, B, p2).reason, 'unknown-unicast');
  });

  it('removing a port or link forgets what was learned there', () => {
    const { t, p1, p2, hub } = spoke();
    t.forward(A, B, p1);
    t.forward(C, B, hub);
    t.removePort('p1');
    t.removeLink('hub');
    assert.equal(t.learned().length, 0);
    assert.equal(t.resolve(B, A, p2).reason, 'unknown-unicast');
  });
});

describe('ForwardingTable cache', () => {
  /** Prime the cache for (A→B from p1) and check that the next lookup is a hit. */
  function primed(setup?: (s: ReturnType<typeof spoke>) => void) {
    const s = spoke();
    setup?.(s);
    const first = s.t.forward(A, B, s.p1);
    const hits = s.t.stats.hits;
    assert.equal(s.t.forward(A, B, s.p1), first, 'same frame again: same interned egress');
    assert.equal(s.t.stats.hits, hits + 1, 'served from the cache');
    return { ...s, first };
  }

  it('one lookup per frame: hits after the first frame of a flow, with the learned source refreshed', () => {
    const { t, p1, p2 } = spoke();
    t.forward(A, B, p1);
    t.forward(C, B, p2);
    const before = t.stats;
    for (let i = 0; i < 100; i++) {
      t.forward(A, B, p1);
      t.forward(C, B, p2);
    }
    assert.equal(t.stats.hits - before.hits, 200);
    assert.equal(t.stats.misses, before.misses);
  });

  it('interns egress decisions: equal decisions are the same object', () => {
    const { t, p1 } = spoke();
    assert.equal(t.resolve(A, B, p1), t.resolve(A, C, p1));
    assert.ok(Object.isFrozen(t.resolve(A, B, p1).ports));
  });

  const changes: [string, (s: ReturnType<typeof spoke>) => void, (s: ReturnType<typeof spoke>) => void, string][] = [
    ['addRule', () => {}, (s) => s.t.addRule(rule('r', 1, 'any', fmt(B), 'drop')), 'drop'],
    ['removeRule', (s) => s.t.addRule(rule('r', 1, 'any', fmt(B), 'drop')), (s) => s.t.removeRule('r'), 'link:hub port:p2 port:p3'],
    ['setRules', () => {}, (s) => s.t.setRules('controller', [rule('r', 1, 'any', fmt(B), { port: 'p3' })]), 'port:p3'],
    ['addPort', () => {}, (s) => s.t.addPort('p4', 'p4'), 'link:hub port:p2 port:p3 port:p4'],
    ['removePort', () => {}, (s) => s.t.removePort('p3'), 'link:hub port:p2'],
    ['addLink', () => {}, (s) => s.t.addLink('hub2', 'backbone', 'hub2'), 'link:hub link:hub2 port:p2 port:p3'],
    // The last backbone link gone: floods from a port take the fast-path links instead (the hub lost).
    ['removeLink', () => {}, (s) => s.t.removeLink('hub'), 'link:hostC port:p2 port:p3'],
    ['addLink changing kind', () => {}, (s) => s.t.addLink('hostC', 'backbone', 'hostC'), 'link:hostC link:hub port:p2 port:p3'],
    ['learn destination', () => {}, (s) => s.t.forward(B, A, s.p3), 'port:p3'],
    ['move destination', (s) => s.t.forward(B, A, s.p2), (s) => s.t.forward(B, A, s.hub), 'link:hub'],
    ['expire destination', (s) => s.t.forward(B, A, s.p2), (s) => { s.clock.advance(400_000); s.t.forward(A, B, s.p1); s.t.expire(s.clock.now()); }, 'link:hub port:p2 port:p3'],
    ['forget destination', (s) => s.t.forward(B, A, s.p2), (s) => s.t.forget(B), 'link:hub port:p2 port:p3'],
    ['evict destination', (s) => s.t.forward(B, A, s.p2), (s) => { for (let i = 1; i <= 16_384; i++) s.t.learn(0x0200_0000_1000 + i, s.p3); }, 'link:hub port:p2 port:p3'],
  ];
  for (const [name, setup, change, expected] of changes) {
    it(`is invalidated by ${name}`, () => {
      const s = primed(setup);
      change(s);
      assert.equal(targets(s.t.forward(A, B, s.p1)), expected, 'forward (last-hit path) sees the change');
      assert.equal(targets(s.t.resolve(A, B, s.p1)), expected, 'resolve (map path) sees the change');
      s.t.forward(C, D, s.p2); // move the last-hit slot elsewhere
      assert.equal(targets(s.t.forward(A, B, s.p1)), expected, 'forward (map path) sees the change');
    });
  }

  it('a learning change drops only the decisions for that destination', () => {
    const { t, p1, p2 } = spoke();
    t.forward(A, C, p1);
    t.forward(A, D, p1);
    const { invalidations } = t.stats;
    t.forward(B, A, p2); // B is new: only decisions towards B are dropped
    const misses = t.stats.misses;
    t.forward(A, C, p1);
    t.forward(A, D, p1);
    assert.equal(t.stats.misses, misses, 'decisions towards C and D survived');
    assert.equal(t.stats.invalidations, invalidations);
  });

  it('bounds the cache at maxCacheEntries', () => {
    const t = new ForwardingTable({ role: 'spoke', clock: new ManualClock(), maxCacheEntries: 8 });
    const p1 = t.addPort('p1', 'p1');
    t.addPort('p2', 'p2');
    const inv = t.stats.invalidations;
    for (let i = 0; i < 20; i++) t.resolve(A, MCAST + i * 2, p1);
    assert.ok(t.stats.invalidations >= inv + 2);
  });

  it('drops frames from an unknown ingress', () => {
    const { t } = spoke();
    assert.equal(t.forward(A, B, 99).reason, 'unknown-ingress');
    assert.equal(t.learned().length, 0);
  });
});

describe('ForwardingTable flooding (one table)', () => {
  it('a spoke floods from a port to its other ports and the hub, never to fast-path links', () => {
    const { t, p1 } = spoke();
    assert.equal(targets(t.forward(A, BROADCAST_MAC, p1)), 'link:hub port:p2 port:p3');
    assert.equal(t.forward(A, MCAST, p1).reason, 'multicast');
  });

  it('IPv6 multicast (33:33:…: neighbour discovery, DAD, all-nodes) floods exactly like broadcast, from a port, a link and at the hub', () => {
    const ND = [parseMac('33:33:ff:00:00:0b'), parseMac('33:33:00:00:00:01'), parseMac('33:33:00:00:00:16')];
    const { t, p1, hub, fast } = spoke();
    for (const dst of ND) {
      assert.equal(targets(t.forward(A, dst, p1)), targets(t.forward(A, BROADCAST_MAC, p1)), 'from a port');
      assert.equal(t.forward(A, dst, p1).reason, 'multicast');
      assert.equal(targets(t.forward(B, dst, hub)), 'port:p1 port:p2 port:p3', 'from the backbone');
      assert.equal(targets(t.forward(B, dst, fast)), 'port:p1 port:p2 port:p3', 'from a fast-path link');
    }
    // A VM's address once learned (after DAD) is still reached by unicast; the group MAC is never learned.
    t.forward(B, ND[0]!, hub);
    assert.equal(targets(t.forward(A, B, p1)), 'link:hub');
    const h = new ForwardingTable({ role: 'hub', clock: new ManualClock() });
    h.addPort('h1', 'h1');
    const s1 = h.addLink('s1', 'backbone', 's1');
    h.addLink('s2', 'backbone', 's2');
    for (const dst of ND) assert.equal(targets(h.forward(A, dst, s1)), targets(h.forward(A, BROADCAST_MAC, s1)), 'at the hub');
  });

  it('a spoke floods a frame from a link to its ports only', () => {
    const { t, hub, fast } = spoke();
    assert.equal(targets(t.forward(A, BROADCAST_MAC, hub)), 'port:p1 port:p2 port:p3');
    assert.equal(targets(t.forward(B, BROADCAST_MAC, fast)), 'port:p1 port:p2 port:p3');
  });

  it('the hub floods from a backbone link to its ports and the other backbone links only', () => {
    const t = new ForwardingTable({ role: 'hub', clock: new ManualClock() });
    t.addPort('h1', 'h1');
    const s1 = t.addLink('s1', 'backbone', 's1');
    t.addLink('s2', 'backbone', 's2');
    t.addLink('s3', 'backbone', 's3');
    const f = t.addLink('f', 'fast-path', 'f');
    assert.equal(targets(t.forward(A, BROADCAST_MAC, s1)), 'link:s2 link:s3 port:h1');
    assert.equal(targets(t.forward(B, BROADCAST_MAC, f)), 'port:h1', 'from a fast-path link: local ports only');
    t.addRule(rule('fl', 1, 'any', fmt(C), 'flood'));
    assert.equal(targets(t.forward(A, C, s1)), 'link:s2 link:s3 port:h1');
    assert.equal(t.forward(A, C, s1).reason, 'rule-flood');
  });
});

function fmt(mac: Mac): string {
  return mac.toString(16).padStart(12, '0').match(/../g)!.join(':');
}

function p3Of(t: ForwardingTable): number {
  return t.portIngress('p3')!;
}

// ---- a hub and four spokes wired together -----------------------------------

interface Sent {
  id: number;
  src: Mac;
  dst: Mac;
}

/**
 * Five daemons' forwarding tables joined by an in-test wire: an egress to a
 * link is delivered to the peer table with that peer's link as ingress.
 */
class Overlay {
  readonly clock = new ManualClock();
  readonly tables = new Map<string, ForwardingTable>();
  /** host → VM port → frames delivered */
  readonly delivered: { host: string; port: string; frame: Sent }[] = [];
  readonly hops: { from: string; to: string; kind: LinkKind; frame: Sent }[] = [];
  #next = 1;

  constructor() {
    const hub = this.#table('hub', 'hub', ['hv']);
    for (const s of ['s1', 's2', 's3', 's4']) {
      const t = this.#table(s, 'spoke', [`${s}a`, `${s}b`]);
      t.addLink('hub', 'backbone', 'hub');
      hub.addLink(s, 'backbone', s);
    }
    this.fastPath('s1', 's3');
  }

  fastPath(a: string, b: string): void {
    this.tables.get(a)!.addLink(b, 'fast-path', b);
    this.tables.get(b)!.addLink(a, 'fast-path', a);
  }

  #table(host: string, role: 'hub' | 'spoke', ports: string[]): ForwardingTable {
    const t = new ForwardingTable({ role, clock: this.clock });
    for (const p of ports) t.addPort(p, p);
    this.tables.set(host, t);
    return t;
  }

  kindOf(from: string, to: string): LinkKind {
    return from === 'hub' || to === 'hub' ? 'backbone' : 'fast-path';
  }

  /** VM `port` on `host` sends a frame; run the overlay until it is quiet (bounded). */
  send(host: string, port: string, src: Mac, dst: Mac): Sent {
    const frame: Sent = { id: this.#next++, src, dst };
    const queue: { host: string; ingress: number; ingressName: string; ingressKind: 'port' | 'link' }[] = [];
    const t0 = this.tables.get(host)!;
    queue.push({ host, ingress: t0.portIngress(port)!, ingressName: port, ingressKind: 'port' });
    let steps = 0;
    while (queue.length > 0) {
      assert.ok(++steps <= 100, `frame ${frame.id} still circulating after 100 steps`);
      const at = queue.shift()!;
      const t = this.tables.get(at.host)!;
      const eg = t.forward(src, dst, at.ingress);
      if (at.ingressKind === 'port') assert.ok(!eg.ports.includes(at.ingressName), `${at.host} sent frame ${frame.id} back to port ${at.ingressName}`);
      else assert.ok(!eg.links.includes(at.ingressName), `${at.host} sent frame ${frame.id} back over the link it came from (${at.ingressName})`);
      for (const p of eg.ports) this.delivered.push({ host: at.host, port: p, frame });
      for (const peer of eg.links) {
        this.hops.push({ from: at.host, to: peer, kind: this.kindOf(at.host, peer), frame });
        const pt = this.tables.get(peer)!;
        queue.push({ host: peer, ingress: pt.linkIngress(at.host)!, ingressName: at.host, ingressKind: 'link' });
      }
    }
    return frame;
  }

  receivers(frame: Sent): string[] {
    return this.delivered.filter((d) => d.frame === frame).map((d) => d.port).sort();
  }

  path(frame: Sent): string[] {
    return this.hops.filter((h) => h.frame === frame).map((h) => `${h.from}>${h.to}`);
  }
}

const ALL_VMS = ['hv', 's1a', 's1b', 's2a', 's2b', 's3a', 's3b', 's4a', 's4b'];
const mac = (vm: string): Mac => 0x0200_0000_0000 + ALL_VMS.indexOf(vm) + 1;

describe('ForwardingTable flooding across a hub and four spokes', () => {
  it('a broadcast from a spoke VM reaches every other VM exactly once, over the backbone only', () => {
    const net = new Overlay();
    const f = net.send('s2', 's2a', mac('s2a'), BROADCAST_MAC);
    assert.deepEqual(net.receivers(f), ALL_VMS.filter((v) => v !== 's2a'));
    assert.deepEqual(net.path(f).sort(), ['hub>s1', 'hub>s3', 'hub>s4', 's2>hub']);
    assert.ok(net.hops.every((h) => h.kind === 'backbone'), 'no flood over a fast-path link');
  });

  it('a broadcast from a spoke with a fast-path link, and from the hub, also reach everyone once', () => {
    const net = new Overlay();
    for (const [host, vm] of [['s1', 's1b'], ['s3', 's3a'], ['hub', 'hv']] as const) {
      const f = net.send(host, vm, mac(vm), BROADCAST_MAC);
      assert.deepEqual(net.receivers(f), ALL_VMS.filter((v) => v !== vm), `broadcast from ${vm}`);
    }
    assert.ok(net.hops.every((h) => h.kind === 'backbone'));
  });

  it('unknown unicast is flooded once to everyone; the reply then follows learned locations only', () => {
    const net = new Overlay();
    const q = net.send('s1', 's1a', mac('s1a'), mac('s4b'));
    assert.deepEqual(net.receivers(q), ALL_VMS.filter((v) => v !== 's1a'));
    const r = net.send('s4', 's4b', mac('s4b'), mac('s1a'));
    assert.deepEqual(net.receivers(r), ['s1a']);
    assert.deepEqual(net.path(r), ['s4>hub', 'hub>s1']);
    const again = net.send('s1', 's1a', mac('s1a'), mac('s4b'));
    assert.deepEqual(net.receivers(again), ['s4b']);
    assert.deepEqual(net.path(again), ['s1>hub', 'hub>s4']);
    const local = net.send('s1', 's1b', mac('s1b'), mac('s1a'));
    assert.deepEqual(net.receivers(local), ['s1a']);
    assert.deepEqual(net.path(local), [], 'same-host traffic never leaves the host');
  });

  it('controller rules steer unicast over a fast-path link; floods still take the backbone; removing the link falls back', () => {
    const net = new Overlay();
    net.send('s1', 's1a', mac('s1a'), BROADCAST_MAC);
    net.send('s3', 's3b', mac('s3b'), BROADCAST_MAC);
    net.tables.get('s1')!.setRules('controller', [rule('fp', 100, 'any', fmt(mac('s3b')), { link: 's3' })]);
    net.tables.get('s3')!.setRules('controller', [rule('fp', 100, 'any', fmt(mac('s1a')), { link: 's1' })]);
    const f = net.send('s1', 's1a', mac('s1a'), mac('s3b'));
    assert.deepEqual(net.receivers(f), ['s3b']);
    assert.deepEqual(net.path(f), ['s1>s3']);
    const b = net.send('s1', 's1a', mac('s1a'), BROADCAST_MAC);
    assert.deepEqual(net.receivers(b), ALL_VMS.filter((v) => v !== 's1a'));
    assert.ok(!net.path(b).some((h) => h === 's1>s3' || h === 's3>s1'), 'broadcast avoided the fast path');
    // the fast path goes down on both sides: traffic falls back to the backbone at once
    net.tables.get('s1')!.removeLink('s3');
    net.tables.get('s3')!.removeLink('s1');
    const back = net.send('s3', 's3b', mac('s3b'), mac('s1a'));
    assert.deepEqual(net.receivers(back), ['s1a']);
    assert.deepEqual(net.path(back), ['s3>hub', 'hub>s1']);
  });

  it('a VM that moves to another spoke is reached there once it speaks', () => {
    const net = new Overlay();
    net.send('s2', 's2a', mac('s2a'), BROADCAST_MAC);
    net.send('s4', 's4a', mac('s4a'), mac('s2a'));
    // s2a migrates to s3: its port leaves s2, a port with its MAC appears on s3, it announces itself
    net.tables.get('s2')!.removePort('s2a');
    net.tables.get('s3')!.addPort('s2a', 's2a');
    net.send('s3', 's2a', mac('s2a'), BROADCAST_MAC);
    const f = net.send('s4', 's4a', mac('s4a'), mac('s2a'));
    assert.deepEqual(net.delivered.filter((d) => d.frame === f).map((d) => `${d.host}/${d.port}`), ['s3/s2a']);
    assert.deepEqual(net.path(f), ['s4>hub', 'hub>s3']);
  });
});

// ---- differential test: the cached table against an uncached model ---------------

/** The forwarding rules written out plainly, with no cache: the oracle. */
class Model {
  readonly ports = new Set<string>();
  readonly links = new Map<string, LinkKind>();
  readonly learned = new Map<Mac, string>(); // mac → "port:x" | "link:y"
  /** MACs a spoke relays link to link by rule (its VM migrated away). */
  readonly relayed = new Set<Mac>();
  rules: ReturnType<typeof parseRule>[] = [];

  constructor(readonly role: 'hub' | 'spoke') {}

  decide(src: Mac, dst: Mac, at: string): string {
    const sorted = [...this.rules].sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1));
    if (src !== 0 && !isGroup(src)) {
      if (this.awayFromHome(sorted, src, at)) {
        if (this.learned.get(src) === at) this.learned.delete(src);
      } else this.learned.set(src, at);
    }
    const m = (x: ReturnType<typeof parseRule>['src'], v: Mac): boolean => x.kind === 'any' || (x.kind === 'eq') === (x.mac === v);
    for (const r of sorted) {
      if (!m(r.src, src) || !m(r.dst, dst)) continue;
      const a = r.action;
      if (a.kind === 'drop') return 'drop';
      if (a.kind === 'flood') return this.flood(at);
      const target = a.kind === 'port' ? `port:${a.port}` : `link:${a.link}`;
      if (a.kind === 'port' ? !this.ports.has(a.port) : !this.links.has(a.link)) continue;
      if (target === at) return 'drop';
      if (this.role === 'spoke' && at.startsWith('link:') && target.startsWith('link:') && !this.relayed.has(dst)) return 'drop';
      return target;
    }
    if (isGroup(dst)) return this.flood(at);
    const loc = this.learned.get(dst);
    if (loc === undefined) return this.flood(at);
    if (loc === at) return 'drop';
    if (at.startsWith('link:') && loc.startsWith('link:') && !this.relays(at, loc)) return 'drop';
    return loc;
  }

  /** A controller rule (src any, dst = MAC, to a port or link) is the MAC's home: learned there only (or, on a spoke placed behind a link, over the backbone too). */
  awayFromHome(sorted: readonly ReturnType<typeof parseRule>[], src: Mac, at: string): boolean {
    const home = sorted.find((r) => r.origin === 'controller' && r.src.kind === 'any' && r.dst.kind === 'eq' && r.dst.mac === src && (r.action.kind === 'port' || r.action.kind === 'link'));
    if (home === undefined) return false;
    const a = home.action;
    const target = a.kind === 'port' ? `port:${a.port}` : a.kind === 'link' ? `link:${a.link}` : '';
    if (target === at) return false;
    const viaBackbone = this.role === 'spoke' && a.kind === 'link' && at.startsWith('link:') && this.links.get(at.slice(5)) === 'backbone';
    return !viaBackbone;
  }

  relays(from: string, to: string): boolean {
    return this.role === 'hub' && this.links.get(from.slice(5)) === 'backbone' && this.links.get(to.slice(5)) === 'backbone' && from !== to;
  }

  flood(at: string): string {
    const out: string[] = [];
    for (const p of this.ports) if (`port:${p}` !== at) out.push(`port:${p}`);
    const noBackbone = ![...this.links.values()].includes('backbone');
    for (const [l, kind] of this.links) {
      const to = `link:${l}`;
      if (to !== at && kind === 'backbone' && (at.startsWith('port:') || this.relays(at, to))) out.push(to);
      // Without any backbone link, a flood from a port goes over the fast-path links.
      if (kind === 'fast-path' && noBackbone && at.startsWith('port:')) out.push(to);
    }
    return out.sort().join(' ') || 'drop';
  }

  forgetAt(loc: string): void {
    for (const [mac, l] of this.learned) if (l === loc) this.learned.delete(mac);
  }
}

function isGroup(mac: Mac): boolean {
  return Math.floor(mac / 0x10000_0000_00) % 2 === 1;
}

describe('ForwardingTable against an uncached model', () => {
  for (const role of ['spoke', 'hub'] as const) {
    it(`agrees on every frame through random changes (${role})`, () => {
      let seed = role === 'hub' ? 99 : 7;
      const rnd = (n: number): number => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return (seed >>> 8) % n;
      };
      const macs = [A, B, C, D, BROADCAST_MAC, MCAST, 0x0200_0000_0020];
      const portNames = ['p1', 'p2', 'p3'];
      const linkNames = ['h1', 'h2', 'f1'];
      const t = new ForwardingTable({ role, clock: new ManualClock(), maxCacheEntries: 256 });
      const model = new Model(role);
      let ruleSeq = 0;
      for (let step = 0; step < 8000; step++) {
        const op = rnd(500); // 6% of steps change the table (2% forget a MAC, under 1% relay one or stop), the rest send frames
        if (op < 4) {
          const p = portNames[rnd(3)]!;
          if (model.ports.has(p)) {
            t.removePort(p);
            model.ports.delete(p);
            model.forgetAt(`port:${p}`);
          } else {
            t.addPort(p, p);
            model.ports.add(p);
          }
        } else if (op < 8) {
          const l = linkNames[rnd(3)]!;
          if (model.links.has(l) && rnd(2) === 0) {
            t.removeLink(l);
            model.links.delete(l);
            model.forgetAt(`link:${l}`);
          } else {
            const kind: LinkKind = l.startsWith('f') ? 'fast-path' : 'backbone';
            t.addLink(l, kind, l);
            model.links.set(l, kind);
          }
        } else if (op < 12) {
          const pick = (): string => {
            const k = rnd(3);
            const m = fmt(macs[rnd(macs.length)]!);
            return k === 0 ? 'any' : k === 1 ? m : `!${m}`;
          };
          const actions: unknown[] = ['drop', 'flood', { port: portNames[rnd(3)] }, { link: linkNames[rnd(3)] }, { link: 'absent' }];
          const r = rule(`r${ruleSeq++}`, rnd(3), pick(), pick(), actions[rnd(actions.length)]);
          t.addRule(r);
          model.rules.push(r);
        } else if (op < 14 && model.rules.length > 0) {
          const victim = model.rules[rnd(model.rules.length)]!;
          t.removeRule(victim.id);
          model.rules = model.rules.filter((r) => r !== victim);
        } else if (op < 25) {
          const mac = macs[rnd(macs.length)]!;
          t.forget(mac);
          model.learned.delete(mac);
        } else if (op < 29) {
          const mac = macs[rnd(macs.length)]!;
          if (model.relayed.has(mac)) {
            t.stopRelayTo(mac);
            model.relayed.delete(mac);
          } else {
            t.relayTo(mac);
            model.relayed.add(mac);
          }
        } else {
          const at = rnd(2) === 0 ? [...model.ports].map((p) => `port:${p}`) : [...model.links.keys()].map((l) => `link:${l}`);
          if (at.length === 0) continue;
          const loc = at[rnd(at.length)]!;
          const ingress = loc.startsWith('port:') ? t.portIngress(loc.slice(5))! : t.linkIngress(loc.slice(5))!;
          const src = macs[rnd(macs.length)]!;
          const dst = macs[rnd(macs.length)]!;
          for (let repeat = 1 + rnd(3); repeat > 0; repeat--) {
            const want = model.decide(src, dst, loc);
            const got = targets(t.forward(src, dst, ingress));
            assert.equal(got, want, `step ${step}: ${fmt(src)} → ${fmt(dst)} from ${loc}`);
          }
        }
      }
      assert.ok(t.stats.hits > 1000, `the cache was exercised: ${JSON.stringify({ hits: t.stats.hits, misses: t.stats.misses })}`);
    });
  }
});
