import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredState, nextVersions, planPushes, ruleChanges, vmRuleId, type RegistryView } from '../../src/controller/reconcile.ts';
import type { DesiredVersions } from '../../src/controller/store/records.ts';

const addr = (port: number) => ({ transport: 'tcp' as const, host: '127.0.0.1', port });
const VIEW: RegistryView = {
  hubId: 'hub',
  hosts: [
    { id: 'hub', role: 'hub', addresses: [addr(1)] },
    { id: 'a', role: 'spoke', addresses: [addr(2)] },
    { id: 'b', role: 'spoke', addresses: [addr(3)] },
    { id: 'c', role: 'spoke', addresses: [] },
  ],
  vms: [
    { mac: '02:00:00:00:00:0a', host: 'a' },
    { mac: '02:00:00:00:00:0b', host: 'b' },
    { mac: '02:00:00:00:00:0c', host: 'c' },
    { mac: '02:00:00:00:00:99', host: undefined },
  ],
  links: [
    { a: 'a', b: 'hub', kind: 'backbone', requestedBy: 'deployment', reason: 'star', createdMs: 0 },
    { a: 'a', b: 'b', kind: 'fast-path', requestedBy: 'operator:x', reason: 'hot pair', createdMs: 0 },
    { a: 'a', b: 'c', kind: 'fast-path', requestedBy: 'adaptation', reason: 'no address yet', createdMs: 0 },
  ],
};
const V0: DesiredVersions = { host: 'a', linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 };

test('fast-path links appear on both ends; the lower id dials the other one\'s address', () => {
  const d = desiredState(VIEW);
  assert.deepEqual(d.get('a')!.links, [{ peer: 'b', address: addr(3), reason: 'hot pair', dial: true }]);
  assert.deepEqual(d.get('b')!.links, [{ peer: 'a', address: addr(2), reason: 'hot pair', dial: false }]);
  // a–c: c has no listen address yet, so the link waits.
  assert.deepEqual(d.get('c')!.links, []);
  assert.deepEqual(d.get('hub')!.links, []);
});

test('rules: fast path where there is one, else the hub knows every VM\'s host and spokes go through the hub', () => {
  const d = desiredState(VIEW);
  const rule = (host: string, mac: string) => d.get(host)!.rules.find((r) => r.dst === mac);
  assert.deepEqual(rule('a', '02:00:00:00:00:0b'), { id: vmRuleId('02:00:00:00:00:0b'), priority: 200, src: 'any', dst: '02:00:00:00:00:0b', action: { link: 'b' } });
  assert.deepEqual(rule('a', '02:00:00:00:00:0c')?.action, { link: 'hub' }); // a–c not usable yet
  assert.deepEqual(rule('hub', '02:00:00:00:00:0c')?.action, { link: 'c' });
  assert.equal(rule('hub', '02:00:00:00:00:0c')?.priority, 100);
  assert.equal(rule('a', '02:00:00:00:00:0a'), undefined); // its own VM
  assert.equal(d.get('a')!.rules.some((r) => r.dst === '02:00:00:00:00:99'), false); // unplaced VM
});

test('moving a VM re-points every host\'s rule for it', () => {
  const moved = { ...VIEW, vms: VIEW.vms.map((v) => (v.mac === '02:00:00:00:00:0b' ? { ...v, host: 'c' } : v)) };
  const before = desiredState(VIEW);
  const after = desiredState(moved);
  assert.deepEqual(after.get('hub')!.rules.find((r) => r.dst === '02:00:00:00:00:0b')?.action, { link: 'c' });
  assert.deepEqual(after.get('a')!.rules.find((r) => r.dst === '02:00:00:00:00:0b')?.action, { link: 'hub' });
  assert.deepEqual(ruleChanges(before.get('a')!.rules, after.get('a')!.rules), { added: [], removed: [], changed: [vmRuleId('02:00:00:00:00:0b')] });
});

test('versions grow only when a set changes, and always past what the daemon reports', () => {
  const d = desiredState(VIEW).get('a')!;
  const p1 = nextVersions(V0, d);
  assert.deepEqual([p1.linksChanged, p1.rulesChanged, p1.versions.linksVersion, p1.versions.rulesVersion], [true, true, 1, 1]);
  const p2 = nextVersions(p1.versions, d);
  assert.deepEqual([p2.linksChanged, p2.rulesChanged], [false, false]);
  assert.deepEqual(p2.versions, p1.versions);
  // A controller that lost its database meets a daemon at version 9: the next version is 10.
  const p3 = nextVersions(V0, d, { linksVersion: 9, rulesVersion: 4 });
  assert.deepEqual([p3.versions.linksVersion, p3.versions.rulesVersion], [10, 5]);
  // A daemon ahead of an unchanged set also gets a fresh, higher version.
  const p4 = nextVersions(p1.versions, d, { linksVersion: 7, rulesVersion: 1 });
  assert.deepEqual([p4.linksChanged, p4.rulesChanged, p4.versions.linksVersion], [true, false, 8]);
});

test('pushes: only what differs from the daemon, not repeated while in flight, resent after the timeout', () => {
  const d = desiredState(VIEW).get('a')!;
  const v = nextVersions(V0, d).versions;
  const fresh = { linksVersion: 0, rulesVersion: v.rulesVersion, linksInFlight: undefined, rulesInFlight: undefined };
  const p1 = planPushes(v, d, fresh, 1000, 500);
  assert.deepEqual(p1.messages.map((m) => m.type), ['set-links']);
  assert.deepEqual(p1.progress.linksInFlight, { version: 1, atMs: 1000 });
  assert.deepEqual(planPushes(v, d, p1.progress, 1200, 500).messages, []);
  assert.deepEqual(planPushes(v, d, p1.progress, 1500, 500).messages.map((m) => m.type), ['set-links']);
  const acked = { ...p1.progress, linksVersion: 1, linksInFlight: undefined };
  assert.deepEqual(planPushes(v, d, acked, 1600, 500).messages, []);
  const m = p1.messages[0]!;
  assert.equal(m.type, 'set-links');
  if (m.type === 'set-links') assert.equal(m.version, 1);
});
