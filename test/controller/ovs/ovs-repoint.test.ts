import { test } from 'node:test';
import assert from 'node:assert/strict';
import { datapathIdOf, tunnelPortName } from '../../../src/controller/ovs/bridge-db.ts';
import { FAST_PATH_RULE_PRIORITY } from '../../../src/controller/reconcile.ts';
import { RULE_PRIORITY_BASE, TABLE_CLASSIFY, TABLE_FROM_TUNNEL, TABLE_FROM_VM } from '../../../src/controller/ovs/flow-plan.ts';
import { openStore } from '../../../src/controller/store/store.ts';
import { waitFor } from '../../helpers/wait.ts';
import { FlowTableSwitch } from './flow-table-switch.ts';
import { MemoryBridgeDb } from './memory-bridge-db.ts';
import { connectSwitch, DEPLOYMENT, flowTo, outputs, settled, start, VM_A, VM_O } from './ovs-harness.ts';

/** Steps 4 and 5 of docs/openflow.md's OVS hosts: fast paths as tunnel ports, and flows re-pointed when a VM moves. */

test('a fast path between an OVS host and a daemon is a VXLAN tunnel port: created, flows re-pointed, links acknowledged; removed with the fast path', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  h.db.addVmPort('tapO', VM_O);
  await waitFor(() => store.getVm(VM_O), 'VM learned');
  await settled(h, sw);
  const hubTunnel = h.db.ofport(tunnelPortName('hub'))!;
  assert.deepEqual(outputs(flowTo(sw, TABLE_FROM_VM, VM_A)), [hubTunnel], 'before: through the hub');

  await h.controller.model.addFastPathLink('ovs1', 'h2', 'test', 'operator');
  await waitFor(() => h.db.calls.includes(`add ${tunnelPortName('h2')} h2 10.9.0.2 key=4242 port=4789`), 'tunnel port to h2\'s vtep');
  const h2Tunnel = h.db.ofport(tunnelPortName('h2'))!;
  await waitFor(() => outputs(flowTo(sw, TABLE_FROM_VM, VM_A))[0] === h2Tunnel ? true : undefined, 'VM A re-pointed to the fast path');
  assert.equal(flowTo(sw, TABLE_FROM_VM, VM_A)?.priority, RULE_PRIORITY_BASE + FAST_PATH_RULE_PRIORITY);
  await waitFor(() => {
    const v = store.getVersions('ovs1').linksVersion;
    return v > 0 && h.controller.loop.appliedVersions('ovs1')?.linksVersion === v ? true : undefined;
  }, 'links acknowledged');
  // The daemon end: a rule over its own VTEP link to ovs1, and no link to dial.
  const h2Rule = h.controller.loop.desiredRules('h2').find((r) => r.dst === VM_O);
  assert.deepEqual(h2Rule?.action, { link: 'ovs1' });
  assert.equal(h2Rule?.priority, FAST_PATH_RULE_PRIORITY);

  await h.controller.model.removeFastPathLink('ovs1', 'h2', 'operator');
  await waitFor(() => h.db.calls.includes(`remove ${tunnelPortName('h2')}`), 'tunnel port removed');
  await waitFor(() => outputs(flowTo(sw, TABLE_FROM_VM, VM_A))[0] === hubTunnel ? true : undefined, 'back through the hub');
  assert.equal(h.db.ofport(tunnelPortName('h2')), undefined);
  assert.ok(h.db.ofport(tunnelPortName('hub')) !== undefined, 'the backbone tunnel stays');
});

test('adaptation on the OVS host\'s counters adds the fast path to the daemon host its VM talks to, as a tunnel port', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  h.db.addVmPort('tapO', VM_O);
  await waitFor(() => store.getVm(VM_O), 'VM learned');
  await settled(h, sw);
  const pair = (f: { tableId: number; match: { ethSrc?: unknown; ethDst?: unknown } }): boolean => f.tableId === TABLE_CLASSIFY && f.match.ethSrc === VM_O && f.match.ethDst === VM_A;
  // vmO sends to vmA on h2 at about 1 MB/s of update periods: VTTIF smooths it, adaptation wants a fast path ovs1 — h2.
  const link = await waitFor(() => {
    sw.count(pair, 100, 100_000);
    h.clock.advance(100);
    return store.listLinks('fast-path').find((l) => [l.a, l.b].sort().join() === 'h2,ovs1');
  }, 'a fast path chosen by adaptation', 20_000);
  assert.equal(link.requestedBy, 'adaptation');
  await waitFor(() => h.db.ofport(tunnelPortName('h2')), 'its tunnel port');
  const h2Tunnel = h.db.ofport(tunnelPortName('h2'))!;
  await waitFor(() => outputs(flowTo(sw, TABLE_FROM_VM, VM_A))[0] === h2Tunnel ? true : undefined, 'vmA re-pointed to the fast path');
});

test('a VM moved (the migration cutover\'s setVmLocation) re-points the OVS host\'s flow to its new host and is acknowledged', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  await h.controller.model.addFastPathLink('ovs1', 'h2', 'test', 'operator');
  await waitFor(() => h.db.ofport(tunnelPortName('h2')), 'fast-path tunnel');
  const h2Tunnel = h.db.ofport(tunnelPortName('h2'))!;
  const hubTunnel = h.db.ofport(tunnelPortName('hub'))!;
  await waitFor(() => outputs(flowTo(sw, TABLE_FROM_VM, VM_A))[0] === h2Tunnel ? true : undefined, 'VM A over the fast path to h2');
  const before = await settled(h, sw);

  h.controller.loop.setVmLocation(VM_A, 'hub', 'running', 'cutover');
  const after = await waitFor(() => {
    const v = store.getVersions('ovs1').rulesVersion;
    return v > before && h.controller.loop.appliedVersions('ovs1')?.rulesVersion === v ? v : undefined;
  }, 'the new rules version acknowledged by the OVS host');
  assert.deepEqual(outputs(flowTo(sw, TABLE_FROM_VM, VM_A)), [hubTunnel], 'VM A now behind the hub\'s tunnel');
  assert.ok(after > before);
  // The flow was re-pointed before the ack: the barrier the switch answered follows the flow-mod that moved it.
  const moved = sw.sw.received.findLastIndex((m) => m.type === 'flow-mod' && m.match.ethDst === VM_A && m.tableId === TABLE_FROM_VM);
  const barrier = sw.sw.received.findIndex((m, i) => i > moved && m.type === 'barrier-request');
  assert.ok(moved >= 0 && barrier > moved);
});

test('a fast path between two OVS hosts: a tunnel port on each bridge to the other\'s vtep, and each VM\'s flow over it', async (t) => {
  const yaml = DEPLOYMENT.replace('vxlan:', '  - { id: ovs2, site: s, vtep: 10.9.0.8, ovs: { ovsdb: "unix:/run/vnet-test/db2.sock", bridge: br-two } }\nvxlan:');
  const db2 = new MemoryBridgeDb();
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store, new MemoryBridgeDb(), true, { yaml, dbs: new Map([['br-two', db2]]) });
  const sw1 = connectSwitch(t, h);
  const sw2 = new FlowTableSwitch(h.controller.openflowPort!, datapathIdOf('ovs2'));
  t.after(() => sw2.close());
  const VM_P = '02:00:00:00:00:2e';
  h.db.addVmPort('tapO', VM_O);
  db2.addVmPort('tapP', VM_P);
  await waitFor(() => store.getVm(VM_O) && store.getVm(VM_P), 'both VMs learned');

  await h.controller.model.addFastPathLink('ovs1', 'ovs2', 'test', 'operator');
  await waitFor(() => h.db.calls.includes(`add ${tunnelPortName('ovs2')} ovs2 10.9.0.8 key=4242 port=4789`), 'ovs1\'s tunnel to ovs2');
  await waitFor(() => db2.calls.includes(`add ${tunnelPortName('ovs1')} ovs1 10.9.0.7 key=4242 port=4789`), 'ovs2\'s tunnel to ovs1');
  const on1 = h.db.ofport(tunnelPortName('ovs2'))!;
  const on2 = db2.ofport(tunnelPortName('ovs1'))!;
  await waitFor(() => outputs(flowTo(sw1, TABLE_FROM_VM, VM_P))[0] === on1 ? true : undefined, 'ovs1 sends vmP over the fast path');
  await waitFor(() => outputs(flowTo(sw2, TABLE_FROM_VM, VM_O))[0] === on2 ? true : undefined, 'ovs2 sends vmO over the fast path');
  // Frames from the fast-path tunnel reach the local VM (table 0 sends them to table 2).
  assert.ok(sw2.table(TABLE_CLASSIFY).some((f) => f.match.inPort === on2 && f.instructions.some((i) => i.type === 'goto-table' && i.tableId === TABLE_FROM_TUNNEL)));
});
