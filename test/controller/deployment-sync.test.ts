import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { syncDeployment } from '../../src/controller/deployment-sync.ts';
import { openStore } from '../../src/controller/store/store.ts';

const YAML = `name: t
sites: [{ id: s }]
hosts:
  - { id: hub, site: s, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 7001 } }
  - { id: a, site: s }
  - { id: b, site: s }
vms:
  - { name: v1, mac: "02:00:00:00:00:01", ip: 10.0.0.1, host: a }
`;

test('the registry follows the deployment as a diff: hosts, backbone, VMs', (t) => {
  const store = openStore({ path: ':memory:' });
  t.after(() => store.close());
  const first = syncDeployment(store, parseDeployment(YAML, 'x.yaml'), 1);
  assert.deepEqual(first.hostsAdded, ['hub', 'a', 'b']);
  assert.deepEqual(store.listLinks('backbone').map((l) => `${l.a}-${l.b}`), ['a-hub', 'b-hub']);
  assert.deepEqual(store.getHost('hub')?.addresses, [{ transport: 'tls', host: '127.0.0.1', port: 7001 }]);
  assert.equal(store.getVm('02:00:00:00:00:01')?.host, 'a');

  // Unchanged file: nothing changes.
  const again = syncDeployment(store, parseDeployment(YAML, 'x.yaml'), 2);
  assert.deepEqual([again.hostsAdded, again.hostsRemoved, again.vmsAdded, again.backboneChanged], [[], [], [], false]);

  // The VM migrated to b while the controller ran; an operator link a-b exists.
  store.upsertVm({ ...store.getVm('02:00:00:00:00:01')!, host: 'b', state: 'running' });
  store.putLink({ a: 'a', b: 'b', kind: 'fast-path', requestedBy: 'operator:x', reason: 'r' }, 3);
  // New file: b is gone, c is new and is the hub now, v1 renamed.
  const next = YAML.replace('hub: true, ', '').replace('  - { id: b, site: s }\n', '  - { id: c, site: s, hub: true }\n').replace('name: v1', 'name: web');
  const r = syncDeployment(store, parseDeployment(next, 'x.yaml'), 4);
  assert.deepEqual([r.hostsAdded, r.hostsRemoved, r.backboneChanged], [['c'], ['b'], true]);
  assert.deepEqual(store.listLinks('backbone').map((l) => `${l.a}-${l.b}`), ['a-c', 'c-hub']);
  assert.deepEqual(store.listLinks('fast-path'), [], 'the link to the removed host went with it');
  assert.equal(store.getHost('c')?.role, 'hub');
  assert.equal(store.getHost('hub')?.role, 'spoke');
  const vm = store.getVm('02:00:00:00:00:01')!;
  assert.equal(vm.name, 'web');
  assert.equal(vm.host, 'a', 'its host b left the deployment: back to the file\'s host');

  // A VM whose host is still there stays where the database has it, whatever the file says.
  store.upsertVm({ ...vm, host: 'c', state: 'running' });
  syncDeployment(store, parseDeployment(next, 'x.yaml'), 5);
  assert.equal(store.getVm('02:00:00:00:00:01')!.host, 'c');
});

test('a standby hub: every spoke has a backbone link to each hub, and the two hubs a trunk', (t) => {
  const store = openStore({ path: ':memory:' });
  t.after(() => store.close());
  syncDeployment(store, parseDeployment(YAML.replace('  - { id: b, site: s }\n', '  - { id: b, site: s }\n  - { id: hub2, site: s, standbyHub: true }\n'), 'x.yaml'), 1);
  assert.equal(store.getHost('hub2')?.role, 'hub');
  assert.deepEqual(store.listLinks('backbone').map((l) => `${l.a}-${l.b} ${l.reason}`), [
    'a-hub star backbone to hub hub',
    'a-hub2 standby backbone to hub hub2',
    'b-hub star backbone to hub hub',
    'b-hub2 standby backbone to hub hub2',
    'hub-hub2 trunk between hubs hub and hub2',
  ]);
  // The standby goes from the file: its links go with it.
  const r = syncDeployment(store, parseDeployment(YAML, 'x.yaml'), 2);
  assert.deepEqual(r.hostsRemoved, ['hub2']);
  assert.deepEqual(store.listLinks('backbone').map((l) => `${l.a}-${l.b}`), ['a-hub', 'b-hub']);
});
