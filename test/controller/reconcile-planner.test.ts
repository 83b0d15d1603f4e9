import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planReconcile, type ReconcileInput } from '../../src/controller/reconcile-planner.ts';
import type { DesiredVersions, HostRecord, VmRecord } from '../../src/controller/store/records.ts';

const addr = (port: number) => ({ transport: 'tcp' as const, host: '127.0.0.1', port });
const host = (id: string, port: number): HostRecord => ({ id, site: undefined, role: id === 'hub' ? 'hub' : 'spoke', addresses: [addr(port)], connected: true, firstSeenMs: 0, lastSeenMs: 0, facts: undefined });
const HOSTS = [host('hub', 1), host('h1', 2), host('h2', 3)];
const VMS: Pick<VmRecord, 'mac' | 'host'>[] = [{ mac: '02:00:00:00:00:01', host: 'h1' }, { mac: '02:00:00:00:00:02', host: 'h2' }];
const zero = (h: string): DesiredVersions => ({ host: h, linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 });
const fresh = { linksVersion: 0, rulesVersion: 0, linksInFlight: undefined, rulesInFlight: undefined };

function input(sessions: ReconcileInput['sessions'], versionsOf = zero): ReconcileInput {
  return { hosts: HOSTS, vms: VMS, links: [], versionsOf, sessions };
}

test('first pass: every host gets versions and digests stored, not its rules (derived), one decision each; pushes only to the connected', () => {
  const { state, effects } = planReconcile(input(new Map([['h1', fresh]])), 'test', 1000, 300);
  const ops = effects.writes.map((w) => `${w.op}:${'host' in w ? w.host : w.op === 'versions' ? w.versions.host : ''}`);
  assert.deepEqual(ops, ['versions:hub', 'versions:h1', 'versions:h2']);
  assert.deepEqual(effects.events.filter((e) => e.kind === 'decision').map((e) => e.kind === 'decision' && e.detail.host), ['hub', 'h1', 'h2']);
  assert.deepEqual(effects.messages.map((m) => [m.host, m.message.type]), [['h1', 'set-links'], ['h1', 'set-rules']]);
  const rules = effects.messages[1]!.message;
  assert.ok(rules.type === 'set-rules');
  assert.deepEqual(rules.rules.map((r) => [r.dst, r.action]), [['02:00:00:00:00:02', { link: 'hub' }]]);
  assert.deepEqual(state.get('h1')?.rulesInFlight, { version: 1, atMs: 1000 });
});

test('nothing changed and the daemon is at the desired versions: no writes, no messages', () => {
  const first = planReconcile(input(new Map([['h1', fresh]])), 'test', 1000, 300);
  const stored = new Map(first.effects.writes.flatMap((w) => (w.op === 'versions' ? [[w.versions.host, w.versions] as const] : [])));
  const at = { linksVersion: 1, rulesVersion: 1, linksInFlight: undefined, rulesInFlight: undefined };
  const again = planReconcile(input(new Map([['h1', at]]), (h) => stored.get(h)!), 'test', 2000, 300);
  assert.deepEqual([again.effects.writes, again.effects.events, again.effects.messages], [[], [], []]);
  // Still in flight and not yet due again: not repeated; after resendAfterMs: resent.
  const inFlight = first.state.get('h1')!;
  assert.deepEqual(planReconcile(input(new Map([['h1', inFlight]]), (h) => stored.get(h)!), 'test', 1200, 300).effects.messages, []);
  assert.equal(planReconcile(input(new Map([['h1', inFlight]]), (h) => stored.get(h)!), 'test', 1300, 300).effects.messages.length, 2);
});
