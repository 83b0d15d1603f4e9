/**
 * Spokes' rule sets are built only when they are sent (desired-state-cache.ts):
 * at 1,000 hosts and 10,000 VMs, counted as sets built (`builds`), not timed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DesiredStateCache } from '../../src/controller/desired-state-cache.ts';
import { planReconcile, registryView, type ReconcileInput } from '../../src/controller/reconcile-planner.ts';
import { desiredRulesOf, type SessionProgress } from '../../src/controller/reconcile.ts';
import type { DesiredVersions, HostRecord, LinkRecord } from '../../src/controller/store/records.ts';

const HOSTS = 1000;
const VMS_PER_HOST = 10;

const hostId = (i: number): string => (i === 0 ? 'hub' : `s${String(i).padStart(4, '0')}`);
const mac = (i: number): string => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

test('at 1,000 hosts / 10,000 VMs a spoke\'s rule set is built only to be sent: none for hosts away or already at their version; for a VM moved, those of the connected spokes whose rules changed', () => {
  const hosts: HostRecord[] = Array.from({ length: HOSTS }, (_, i) => ({
    id: hostId(i), site: undefined, role: i === 0 ? 'hub' : 'spoke', addresses: [{ transport: 'tcp', host: '127.0.0.1', port: 7000 + i }],
    connected: false, firstSeenMs: undefined, lastSeenMs: undefined, facts: undefined,
  }));
  const vms = hosts.flatMap((h, i) => Array.from({ length: VMS_PER_HOST }, (_, k) => ({ mac: mac(i * VMS_PER_HOST + k), host: h.id as string | undefined })));
  // Fast paths in pairs of spokes (s0001–s0002, s0003–s0004, ...), as adaptation makes them.
  const links: LinkRecord[] = [];
  for (let i = 1; i + 1 < HOSTS; i += 2) links.push({ a: hostId(i), b: hostId(i + 1), kind: 'fast-path', requestedBy: 'adaptation', reason: 'pair', createdMs: 0 });

  const cache = new DesiredStateCache();
  const versions = new Map<string, DesiredVersions>();
  const sessions = new Map<string, SessionProgress>();
  const reconcile = (why: string): ReturnType<typeof planReconcile> => {
    const input: ReconcileInput = {
      hosts, vms, links, sessions,
      versionsOf: (h) => versions.get(h) ?? { host: h, linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 },
      desiredOf: (view) => cache.update(view), ruleChangesOf: (h) => cache.ruleChanges(h),
    };
    const planned = planReconcile(input, why, 0, 3000);
    for (const w of planned.effects.writes) if (w.op === 'versions') versions.set(w.versions.host, w.versions);
    for (const [h, p] of planned.state) sessions.set(h, p);
    return planned;
  };
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
  for (const h of hosts) {
    const v = versions.get(h.id)!;
    sessions.set(h.id, { linksVersion: v.linksVersion, rulesVersion: v.rulesVersion, linksInFlight: undefined, rulesInFlight: undefined });
  }
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
