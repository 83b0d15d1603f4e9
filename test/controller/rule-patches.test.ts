/**
 * Rule-set patches on the controller's side (rule-patch-journal.ts,
 * reconcile.ts's planPushes): at 1,000 hosts / 10,000 VMs a VM moving
 * between two spokes sends the connected spokes patches of a rule or two,
 * not their ~10,000-rule sets; daemons without the feature, at another
 * base, or that refused a patch get the whole set. Counted, not timed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ControllerMessage } from '../../src/control/control-protocol.ts';
import { encodeControlMessage } from '../../src/control/control-protocol.ts';
import { HeldRuleSet } from '../../src/control/rule-patch.ts';
import { registryView, type planReconcile } from '../../src/controller/reconcile-planner.ts';
import { desiredRulesOf } from '../../src/controller/reconcile.ts';
import { RulePatchJournal } from '../../src/controller/rule-patch-journal.ts';
import { scaleModel, type ScaleModel } from '../helpers/scale-model.ts';

type Pushes = Map<string, ControllerMessage>;

function rulePushes(p: ReturnType<typeof planReconcile>): Pushes {
  const out: Pushes = new Map();
  for (const { host, message } of p.effects.messages) if (message.type === 'set-rules' || message.type === 'patch-rules') out.set(host, message);
  return out;
}

/** What each pushed host holds after applying its push onto the whole set it held (as a daemon would, base and digest checked). */
function applyPushes(model: ScaleModel, pushes: Pushes, held: Map<string, HeldRuleSet>): void {
  for (const [host, m] of pushes) {
    const next = m.type === 'set-rules' ? new HeldRuleSet(m.version, m.rules) : m.type === 'patch-rules' ? held.get(host)!.patched(m) : undefined;
    assert.ok(next !== undefined);
    held.set(host, next);
    const p = model.sessions.get(host)!;
    model.sessions.set(host, { ...p, rulesVersion: next.version, rulesInFlight: undefined });
  }
}

function started(rulePatches: boolean): { model: ScaleModel; held: Map<string, HeldRuleSet> } {
  const model = scaleModel(new RulePatchJournal());
  model.reconcile('start');
  model.connectAll(rulePatches);
  const held = new Map<string, HeldRuleSet>();
  const view = registryView(model);
  for (const host of ['hub', 's0499', 's0500', 's0699', 's0700']) held.set(host, new HeldRuleSet(model.versions.get(host)!.rulesVersion, desiredRulesOf(view, host)));
  return { model, held };
}

const bytes = (pushes: Pushes): number => [...pushes.values()].reduce((n, m) => n + Buffer.byteLength(encodeControlMessage(m)), 0);

test('at 1,000 hosts / 10,000 VMs a VM moving between two spokes sends patches of one rule to the connected hosts whose sets changed, not whole sets, and the sets they give are the desired ones', () => {
  const { model, held } = started(true);
  const vm = model.vms.find((v) => v.host === 's0500')!;
  vm.host = 's0700';
  const builds = model.cache.builds;
  const pushes = rulePushes(model.reconcile('VM moved'));
  assert.deepEqual([...pushes.keys()].sort(), ['hub', 's0499', 's0500', 's0699', 's0700']);
  for (const [host, m] of pushes) {
    assert.equal(m.type, 'patch-rules', `${host} gets a patch`);
    if (m.type !== 'patch-rules') continue;
    assert.equal(m.remove.length + m.upsert.length, 1, `${host}: the moved VM's rule only`);
    assert.equal(m.digest, model.versions.get(host)!.rulesDigest);
  }
  assert.equal(model.cache.builds - builds, 0, 'no spoke set built: a patch does not read the whole set');
  assert.ok(bytes(pushes) < 5 * 1024, `five patches are a few hundred bytes each (${bytes(pushes)} bytes)`);
  applyPushes(model, pushes, held);
  const view = registryView(model);
  for (const host of pushes.keys()) assert.deepEqual(held.get(host)!.rules(), desiredRulesOf(view, host), `${host}'s set after the patch`);

  // Two more moves while the first is acknowledged: patches from the acknowledged version, merged.
  vm.host = 's0499';
  model.vms.find((v) => v.host === 's0699')!.host = 's0500';
  const again = rulePushes(model.reconcile('two more moves'));
  assert.ok(again.size > 0);
  for (const [host, m] of again) assert.equal(m.type, 'patch-rules', `${host} gets a patch`);
  applyPushes(model, again, held);
  const after = registryView(model);
  for (const host of again.keys()) assert.deepEqual(held.get(host)!.rules(), desiredRulesOf(after, host));
});

test('a daemon without the rule-patches feature gets the whole set, as before', () => {
  const { model } = started(false);
  model.vms.find((v) => v.host === 's0500')!.host = 's0700';
  const pushes = rulePushes(model.reconcile('VM moved'));
  assert.equal(pushes.size, 5);
  for (const [host, m] of pushes) assert.equal(m.type, 'set-rules', `${host} gets the whole set`);
  assert.ok(bytes(pushes) > 4 * 500_000, `whole sets are ~1 MB a spoke (${bytes(pushes)} bytes)`);
});

test('a daemon at a version the journal does not hold, or that refused a patch, gets the whole set', () => {
  const { model } = started(true);
  // s0500's daemon reports an older version (a database restored, a set lost): no journal from there.
  const p = model.sessions.get('s0500')!;
  model.sessions.set('s0500', { ...p, rulesVersion: p.rulesVersion - 1 });
  model.vms.find((v) => v.host === 's0500')!.host = 's0700';
  const pushes = rulePushes(model.reconcile('VM moved'));
  assert.equal(pushes.get('s0500')?.type, 'set-rules');
  assert.equal(pushes.get('s0700')?.type, 'patch-rules');

  // s0700 refuses its patch (VNET_ERR_RULES_PATCH_BASE): the control loop marks it (SessionTable.patchRefused), and the next reconcile sends the whole set.
  const q = model.sessions.get('s0700')!;
  model.sessions.set('s0700', { ...q, rulesInFlight: undefined, wholeRules: true });
  const whole = rulePushes(model.reconcile('patch refused'));
  assert.equal(whole.get('s0700')?.type, 'set-rules');
  assert.equal(model.sessions.get('s0700')!.wholeRules, undefined, 'whole once, patches again after');
});

test('a new controller (journal empty: a restart, a leader change) converges daemons at an older version with whole sets', () => {
  const model = scaleModel(new RulePatchJournal());
  model.reconcile('start');
  model.connectAll(true);
  for (const h of ['hub', 's0001', 's0500']) {
    const p = model.sessions.get(h)!;
    model.sessions.set(h, { ...p, rulesVersion: p.rulesVersion - 1 });
  }
  const pushes = rulePushes(model.reconcile('daemons behind'));
  assert.deepEqual([...pushes.keys()].sort(), ['hub', 's0001', 's0500']);
  for (const m of pushes.values()) assert.equal(m.type, 'set-rules');
});

test('the journal is bounded: past its size, or with a gap in versions, no patch', () => {
  const j = new RulePatchJournal(3);
  const rule = (id: string) => ({ id, priority: 100, src: 'any', dst: '02:00:00:00:00:01', action: { link: 'hub' } }) as const;
  j.record('a', 1, 2, new Map([['r1', rule('r1')]]));
  j.record('a', 2, 3, new Map([['r2', null]]));
  assert.deepEqual(j.patch('a', 1, 3), { remove: ['r2'], upsert: [rule('r1')] });
  j.record('a', 3, 4, new Map([['r3', rule('r3')], ['r4', rule('r4')]]));
  assert.equal(j.patch('a', 1, 4), undefined, 'the oldest entry went');
  assert.deepEqual(j.patch('a', 2, 4)?.upsert.length, 2);
  j.record('a', 7, 8, new Map([['r5', null]]));
  assert.equal(j.patch('a', 3, 8), undefined, 'a gap: the journal started again');
  j.record('a', 8, 9, undefined);
  assert.equal(j.patch('a', 8, 9), undefined, 'changes unknown: forgotten');
});

test('the journal drops what a connected daemon acknowledged: a patch starts at the version it holds', () => {
  const j = new RulePatchJournal();
  const rule = { id: 'r1', priority: 100, src: 'any', dst: '02:00:00:00:00:01', action: { link: 'hub' } } as const;
  j.record('a', 1, 2, new Map([['r1', rule]]));
  j.record('a', 2, 3, new Map([['r2', null]]));
  j.prune('a', 2);
  assert.equal(j.patch('a', 1, 3), undefined, 'acknowledged: gone');
  assert.deepEqual(j.patch('a', 2, 3), { remove: ['r2'], upsert: [] });
  j.prune('a', 3);
  assert.equal(j.patch('a', 2, 3), undefined);
});

test('a fast path added between two spokes sends each a patch of the other\'s VMs\' rules, not its whole set', () => {
  const { model, held } = started(true);
  model.links.push({ a: 's0500', b: 's0700', kind: 'fast-path', requestedBy: 'adaptation', reason: 'test', createdMs: 0 });
  const pushes = rulePushes(model.reconcile('fast path'));
  assert.deepEqual([...pushes.keys()].sort(), ['s0500', 's0700']);
  for (const [host, m] of pushes) {
    assert.ok(m.type === 'patch-rules', `${host} gets a patch`);
    assert.equal(m.upsert.length + m.remove.length, 10, `${host}: the peer's 10 VMs' rules`);
  }
  applyPushes(model, pushes, held);
  const view = registryView(model);
  for (const host of pushes.keys()) assert.deepEqual(held.get(host)!.rules(), desiredRulesOf(view, host));
});
