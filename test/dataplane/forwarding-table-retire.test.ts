/**
 * A link being closed is retired in the forwarding table: still an ingress
 * (what its peer had in flight is forwarded), no longer a destination.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import type { Egress } from '../../src/dataplane/egress.ts';
import { parseRule } from '../../src/dataplane/forwarding-rule.ts';
import { ForwardingTable } from '../../src/dataplane/forwarding-table.ts';
import { parseMac } from '../../src/common/mac.ts';

const A = parseMac('02:00:00:00:00:0a');
const C = parseMac('02:00:00:00:00:0c');

function targets(eg: Egress): string {
  return [...eg.ports.map((p) => `port:${p}`), ...eg.links.map((l) => `link:${l}`)].sort().join(' ') || (eg.drop ? 'drop' : '');
}

describe('ForwardingTable retired links', () => {
  it('a retired link is an ingress but no destination; releasing it frees its id', () => {
    const t = new ForwardingTable({ role: 'spoke', clock: new ManualClock() });
    const p1 = t.addPort('p1', 'p1');
    t.addLink('hub', 'backbone', 'hub');
    const fast = t.addLink('hostC', 'fast-path', 'hostC-1');
    t.setRules('controller', [
      parseRule({ id: 'vmC', priority: 200, src: 'any', dst: '02:00:00:00:00:0c', action: { link: 'hostC' } }, 'controller'),
    ]);
    assert.equal(targets(t.forward(C, A, fast)), 'port:p1', 'C is learned behind the fast-path link (A unknown: flooded to ports)');
    assert.equal(targets(t.forward(A, C, p1)), 'link:hostC-1', 'the rule names the fast-path link');

    assert.equal(t.retireLink('hostC'), fast);
    assert.equal(t.linkIngress('hostC'), undefined);
    assert.equal(targets(t.forward(A, C, p1)), 'link:hub', 'the rule falls through; C was forgotten: flooded along the backbone');
    assert.equal(targets(t.forward(C, A, fast)), 'port:p1', 'a frame still arriving on the retired link is delivered');
    assert.equal(targets(t.forward(A, C, p1)), 'link:hub', 'and its source is not learned behind it');
    assert.equal(t.learned().length, 1, 'only A, at p1');

    const fresh = t.addLink('hostC', 'fast-path', 'hostC-2');
    assert.notEqual(fresh, fast, 'a new link to the same peer gets a new id while the old one drains');
    assert.equal(targets(t.forward(A, C, p1)), 'link:hostC-2');
    assert.equal(t.releaseLink(fast), true);
    assert.equal(t.releaseLink(fast), false);
    assert.equal(t.releaseLink(fresh), false, 'a live link is not released');
    assert.equal(targets(t.forward(C, A, fast)), 'drop', 'the released id is no ingress');
  });
});
