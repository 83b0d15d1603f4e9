/**
 * Spokes' rule sets are built only when they are sent (desired-state-cache.ts):
 * at 1,000 hosts and 10,000 VMs, counted as sets built (`builds`), not timed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { registryView, type planReconcile } from '../../src/controller/reconcile-planner.ts';
import { desiredRulesOf } from '../../src/controller/reconcile.ts';
import { SCALE_HOSTS as HOSTS, SCALE_VMS_PER_HOST as VMS_PER_HOST, scaleModel } from '../helpers/scale-model.ts';

test('at 1,000 hosts / 10,000 VMs a spoke\'s rule set is built only to be sent: none for hosts away or already at their version; for a VM moved, those of the connected spokes whose rules changed', () => {
  const { hosts, vms, links, cache, versions, sessions, reconcile, connectAll } = scaleModel();
  const rulePushes = (p: ReturnType<typeof planReconcile>): string[] => p.effects.messages.filter((m) => m.message.type === 'set-rules').map((m) => m.host).sort();

  // No daemon connected: every host's set is new (versions and digests stored, a decision each), and none but the hub's is built.
  let builds = cache.builds;
  const first = reconcile('start');
  assert.equal(cache.builds - builds, 1, 'the hub\'s set only (hubs\' sets are kept built)');
  assert.equal(versions.size, HOSTS);
  const decisions = first.effects.events.filter((e) => e.kind === 'decision');
  assert.equal(decisions.length, HOSTS);
  const spokeDecision = decisions.find((e) => e.kind === 'decision' && e.detail !== undefined && (e.detail as { host: string }).host === 's0500');
  assert.ok(spokeDecision !== undefined && spokeDecision.kind === 'decision');
  assert.deepEqual((spokeDecision.detail as { counts: unknown }).counts, { added: HOSTS * VMS_PER_HOST - VMS_PER_HOST, changed: 0, removed: 0 }, 'the log counts the whole set');
  assert.equal((spokeDecision.detail as { added: string[] }).added.length, 20);

  // Every daemon connects holding its version (a controller restarted, a new leader): nothing to send, nothing built.
  connectAll(false);
  builds = cache.builds;
  assert.deepEqual(rulePushes(reconcile('daemons connected')), []);
  assert.equal(cache.builds - builds, 0);

  // A VM of s0500 (no fast path to s0700's pair) moves to s0700: the hub, both spokes and their fast-path peers have new rules.
  const vm = vms.find((v) => v.host === 's0500')!;
  vm.host = 's0700';
  builds = cache.builds;
  const moved = reconcile('VM moved');
  assert.deepEqual(rulePushes(moved), ['hub', 's0499', 's0500', 's0699', 's0700']);
  assert.equal(cache.builds - builds, 4, 'the four spokes pushed; the hub\'s set is patched, not built');
  assert.equal(cache.last.patched, 5);
  const view = registryView({ hosts, vms, links });
  for (const m of moved.effects.messages) {
    if (m.message.type === 'set-rules') assert.deepEqual(m.message.rules, desiredRulesOf(view, m.host), `the rules sent to ${m.host}`);
  }

  // The same move back while s0500's and s0700's daemons are away: their sets change but are not built.
  sessions.delete('s0500');
  sessions.delete('s0700');
  vm.host = 's0500';
  builds = cache.builds;
  const back = reconcile('VM moved back');
  assert.deepEqual(rulePushes(back), ['hub', 's0499', 's0699'], 'the connected hosts whose rules changed');
  assert.equal(cache.builds - builds, 2, 's0499 and s0699, connected, are sent theirs; s0500 and s0700 are away');
  assert.equal(cache.last.patched, 5);
});
