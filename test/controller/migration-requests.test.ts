import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY } from '../../src/controller/deployment-file.ts';
import { checkCancel, planAutoMigrations, resolveMigrationRequest, type RequestWorld } from '../../src/controller/migration-requests.ts';
import type { MigrationRun } from '../../src/controller/migration-run.ts';
import type { HostRecord, VmRecord } from '../../src/controller/store/records.ts';
import { statusForCode } from '../../src/controller/api/errors.ts';

const V1 = '02:00:00:00:00:01';

function host(id: string, ports: Array<{ mac: string; name: string }> = []): HostRecord {
  return {
    id, site: 's', role: id === 'hub' ? 'hub' : 'spoke', addresses: [], connected: true, firstSeenMs: 0, lastSeenMs: 0,
    facts: { hostId: id, role: 'spoke', site: undefined, listen: undefined, links: [], rulesVersion: 0, linksVersion: 0, ports: ports.map((p) => ({ name: p.name, kind: 'memory', mac: p.mac, ip: undefined, mtu: 1500, rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0 })) },
  };
}

function world(over: Partial<RequestWorld> = {}): RequestWorld {
  const vms: VmRecord[] = [{ mac: V1, name: 'v1', ip: '10.0.0.1', host: 'h1', state: 'running', source: 'deployment', updatedMs: 0 }];
  return { vms, hosts: [host('hub'), host('h1', [{ mac: V1, name: 'tap-v1' }]), host('h2')], connected: new Set(['hub', 'h1', 'h2']), runs: new Map(), ...over };
}

function refusal(fn: () => unknown): { code: string; status: number; message: string } {
  try {
    fn();
  } catch (err) {
    const e = err as { code: string; message: string };
    return { code: e.code, status: statusForCode(e.code), message: e.message };
  }
  assert.fail('expected a refusal');
}

test('a request names the VM by MAC (any spelling) or by name; the port comes from the source\'s facts', () => {
  for (const vm of ['v1', V1, '02-00-00-00-00-01', '02:00:00:00:00:01'.toUpperCase()]) {
    const m = resolveMigrationRequest({ vm, to: 'h2', requestedBy: 'operator:a' }, world(), 'm1');
    assert.deepEqual(m, { id: 'm1', vm: { mac: V1, port: 'tap-v1', ip: '10.0.0.1', name: 'v1' }, from: 'h1', to: 'h2', rule: 'smart-stop', deadlineMs: null, requestedBy: 'operator:a' });
  }
  assert.equal(resolveMigrationRequest({ vm: 'v1', to: 'h2', rule: 'time-bound', deadlineS: 2.5, requestedBy: 'x' }, world(), 'm1').deadlineMs, 2500);
});

test('refused requests carry a stable code and the API status: unknown VM or host 404, same host, migrating or a host down 409, bad deadline 400', () => {
  const running = { id: 'm0', vm: { mac: V1, port: 'p' }, step: 'transfer' } as unknown as MigrationRun;
  const cases: Array<[string, () => unknown, string, number, RegExp]> = [
    ['unknown VM', () => resolveMigrationRequest({ vm: 'nope', to: 'h2', requestedBy: 'x' }, world(), 'm1'), 'VNET_ERR_MIGRATION_UNKNOWN_VM', 404, /"nope" not found/],
    ['unknown host', () => resolveMigrationRequest({ vm: 'v1', to: 'h9', requestedBy: 'x' }, world(), 'm1'), 'VNET_ERR_MIGRATION_UNKNOWN_HOST', 404, /"h9" not found/],
    ['same host', () => resolveMigrationRequest({ vm: 'v1', to: 'h1', requestedBy: 'x' }, world(), 'm1'), 'VNET_ERR_MIGRATION_SAME_HOST', 409, /already runs on h1/],
    ['migrating', () => resolveMigrationRequest({ vm: 'v1', to: 'h2', requestedBy: 'x' }, world({ runs: new Map([['m0', running]]) }), 'm1'), 'VNET_ERR_MIGRATION_IN_PROGRESS', 409, /already migrating \(migration m0\)/],
    ['destination down', () => resolveMigrationRequest({ vm: 'v1', to: 'h2', requestedBy: 'x' }, world({ connected: new Set(['h1']) }), 'm1'), 'VNET_ERR_MIGRATION_HOST_DOWN', 409, /destination h2 is down/],
    ['source down', () => resolveMigrationRequest({ vm: 'v1', to: 'h2', requestedBy: 'x' }, world({ connected: new Set(['h2']) }), 'm1'), 'VNET_ERR_MIGRATION_HOST_DOWN', 409, /source h1 is down/],
    ['no port', () => resolveMigrationRequest({ vm: 'v1', to: 'h2', requestedBy: 'x' }, world({ hosts: [host('h1'), host('h2')] }), 'm1'), 'VNET_ERR_MIGRATION_HOST_DOWN', 409, /does not report a port/],
    ['time-bound without deadline', () => resolveMigrationRequest({ vm: 'v1', to: 'h2', rule: 'time-bound', requestedBy: 'x' }, world(), 'm1'), 'VNET_ERR_MIGRATION_REQUEST', 400, /needs a deadline/],
  ];
  for (const [what, fn, code, status, message] of cases) {
    const r = refusal(fn);
    assert.deepEqual([r.code, r.status], [code, status], what);
    assert.match(r.message, message, what);
  }
});

test('cancel: before the commit point only', () => {
  const run = (step: string) => new Map([['m1', { id: 'm1', step } as unknown as MigrationRun]]);
  checkCancel(run('transfer'), undefined, 'm1');
  assert.deepEqual([refusal(() => checkCancel(run('cutover'), undefined, 'm1')).code, refusal(() => checkCancel(run('cutover'), undefined, 'm1')).status], ['VNET_ERR_MIGRATION_COMMITTED', 409]);
  assert.equal(refusal(() => checkCancel(run('aborting'), undefined, 'm1')).code, 'VNET_ERR_MIGRATION_FINISHED');
  assert.equal(refusal(() => checkCancel(new Map(), undefined, 'm9')).status, 404);
  assert.equal(refusal(() => checkCancel(new Map(), { step: 'done' }, 'm9')).code, 'VNET_ERR_MIGRATION_FINISHED');
});

test('auto-migrate: off does nothing; on, at most autoMigrateMaxConcurrent at once and a cool-down per VM', () => {
  const moves = [1, 2, 3].map((n) => ({ vm: `02:00:00:00:00:0${n}`, from: 'h1', to: 'h2', gain: 1, reason: '' }));
  assert.deepEqual(planAutoMigrations(moves, new Map(), new Map(), DEFAULT_POLICY, 0), { start: [], skipped: [] });
  const policy = { ...DEFAULT_POLICY, autoMigrate: true, autoMigrateMaxConcurrent: 2, autoMigrateCooldownMs: 600_000 };
  const fresh = planAutoMigrations(moves, new Map(), new Map(), policy, 1_000_000);
  assert.deepEqual(fresh.start.map((m) => m.vm), [moves[0]!.vm, moves[1]!.vm]);
  assert.match(fresh.skipped[0]!.reason, /2 migration\(s\) running \(autoMigrateMaxConcurrent 2\)/);
  const running = new Map([['m1', { id: 'm1', vm: { mac: moves[0]!.vm }, step: 'transfer' } as unknown as MigrationRun]]);
  const cooled = planAutoMigrations(moves, running, new Map([[moves[1]!.vm, 1_000_000 - 60_000]]), policy, 1_000_000);
  assert.deepEqual(cooled.start.map((m) => m.vm), [moves[2]!.vm]);
  assert.deepEqual(cooled.skipped.map((s) => s.reason.split(':')[0]), ['already migrating', 'cool-down']);
  const later = planAutoMigrations(moves.slice(1, 2), new Map(), new Map([[moves[1]!.vm, 1_000_000 - 600_000]]), policy, 1_000_000);
  assert.equal(later.start.length, 1, 'the cool-down is over');
});
