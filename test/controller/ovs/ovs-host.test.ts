import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tunnelPortName } from '../../../src/controller/ovs/bridge-db.ts';
import { cookieVersion, LOCAL_VM_PRIORITY, RULE_PRIORITY_BASE, TABLE_CLASSIFY, TABLE_FROM_TUNNEL, TABLE_FROM_VM, VNET_COOKIE_TAG } from '../../../src/controller/ovs/flow-plan.ts';
import { openStore } from '../../../src/controller/store/store.ts';
import type { FlowStats } from '../../../src/openflow/multipart.ts';
import { waitFor } from '../../helpers/wait.ts';
import { metricValue } from '../fixtures/controller-harness.ts';
import { connectSwitch, flowTo, outputs, settled, start, VM_A, VM_H, VM_O, OVS_DPID } from './ovs-harness.ts';
import { MemoryBridgeDb } from './memory-bridge-db.ts';

test('an OVS bridge is a host: bridge set up through the database, the switch known by datapath id, VM ports become VMs, a removed port removes its VM', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  await waitFor(() => h.db.setups.length > 0, 'bridge set up');
  const setup = h.db.setups[0]!;
  assert.equal(setup.bridge, 'br-vnet');
  assert.equal(setup.datapathType, 'netdev');
  assert.equal(setup.datapathId, OVS_DPID);
  assert.equal(setup.controller, `tcp:127.0.0.1:${h.controller.openflowPort}`);
  await waitFor(() => h.db.calls.includes(`add ${tunnelPortName('hub')} hub 10.9.0.1 key=4242 port=4789`), 'backbone tunnel to the hub');
  assert.equal(store.getHost('ovs1')?.connected, false, 'not connected before the switch is');

  const sw = connectSwitch(t, h);
  await waitFor(() => store.getHost('ovs1')?.connected === true, 'the OVS host connected while its switch is');
  assert.deepEqual(h.controller.loop.connectedHosts(), ['ovs1']);

  h.db.addVmPort('tapO', VM_O, 'vm-o');
  const vm = await waitFor(() => store.getVm(VM_O), 'VM learned from the port');
  assert.equal(vm.host, 'ovs1');
  assert.equal(vm.name, 'vm-o');
  assert.equal(vm.state, 'running');
  assert.ok(h.controller.model.listVms().some((v) => v.mac === VM_O && v.host === 'ovs1'), 'visible to the operator');

  h.db.removeVmPort('tapO');
  await waitFor(() => store.getVm(VM_O) === undefined, 'VM removed with its port');
  const removed = h.controller.events.listEvents({ types: ['vm-removed'] }).events;
  assert.equal(removed.length, 1);

  sw.close();
  await waitFor(() => store.getHost('ovs1')?.connected === false, 'disconnected with its switch');
});

test('rules become flows: local VM to its port, remote VM to the tunnel of its rule, floods to VM ports and the hub, one cookie with the rules version, acknowledged after the barrier', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  const portO = h.db.addVmPort('tapO', VM_O, 'vm-o');
  await waitFor(() => store.getVm(VM_O), 'VM learned');
  const version = await settled(h, sw);
  const hubTunnel = h.db.ofport(tunnelPortName('hub'))!;

  const cookies = new Set([...sw.flows.values()].map((f) => f.cookie));
  assert.equal(cookies.size, 1, 'one cookie for the whole set');
  const [cookie] = [...cookies];
  assert.equal(cookie! & (0xffffn << 48n), VNET_COOKIE_TAG);
  assert.equal(cookieVersion(cookie!), version);

  // Remote VMs (on h2 and on the hub) go to the hub's tunnel: the OVS host is a spoke with no fast path.
  for (const mac of [VM_A, VM_H]) {
    const f = flowTo(sw, TABLE_FROM_VM, mac);
    assert.ok(f !== undefined && f.priority > RULE_PRIORITY_BASE, `rule flow for ${mac}`);
    assert.deepEqual(outputs(f), [hubTunnel]);
  }
  assert.deepEqual(outputs(flowTo(sw, TABLE_FROM_VM, VM_O)), [portO]);
  assert.equal(flowTo(sw, TABLE_FROM_VM, VM_O)?.priority, LOCAL_VM_PRIORITY);
  assert.deepEqual(outputs(flowTo(sw, TABLE_FROM_TUNNEL, VM_O)), [portO]);
  const floodVm = sw.table(TABLE_FROM_VM).find((f) => Object.keys(f.match).filter((k) => k !== 'other').length === 0);
  assert.deepEqual(outputs(floodVm), [portO, hubTunnel], 'a VM floods to the VM ports and the hub');
  const floodTunnel = sw.table(TABLE_FROM_TUNNEL).find((f) => Object.keys(f.match).filter((k) => k !== 'other').length === 0);
  assert.deepEqual(outputs(floodTunnel), [portO], 'a tunnel floods to VM ports only (split horizon)');
  // Classifier: counted pairs from the VM's port with its own source, tunnel frames to table 2.
  const pairs = sw.table(TABLE_CLASSIFY).filter((f) => f.match.ethDst !== undefined).map((f) => `${f.match.inPort} ${f.match.ethSrc}>${f.match.ethDst}`).sort();
  assert.deepEqual(pairs, [`${portO} ${VM_O}>${VM_A}`, `${portO} ${VM_O}>${VM_H}`]);
  assert.ok(sw.table(TABLE_CLASSIFY).some((f) => f.match.inPort === hubTunnel && f.instructions.some((i) => i.type === 'goto-table' && i.tableId === TABLE_FROM_TUNNEL)));

  // The ack came after the barrier: every flow-mod of this version precedes the barrier the switch answered.
  const barrierAt = sw.sw.received.findLastIndex((m) => m.type === 'barrier-request');
  const lastAdd = sw.sw.received.findLastIndex((m) => m.type === 'flow-mod' && cookieVersion(m.cookie) === version);
  assert.ok(lastAdd < barrierAt);
  assert.equal(store.getVersions('ovs1').rulesVersion, version);
});

test('a switch that refuses the flows gets a nack (the version stays unapplied) and the controller keeps running', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  sw.rejectFlowMods = true;
  await waitFor(async () => (await metricValue(h.registry, 'vnet_control_nacks_total', { kind: 'rules' })) >= 1, 'the refusal nacked');
  assert.ok(sw.mods.length > 0);
  assert.ok(store.getVersions('ovs1').rulesVersion > 0);
  assert.notEqual(h.controller.loop.appliedVersions('ovs1')?.rulesVersion, store.getVersions('ovs1').rulesVersion, 'not reported applied');
  assert.equal(store.getHost('ovs1')?.connected, true, 'the switch stays connected');
  sw.rejectFlowMods = false;
  h.db.addVmPort('tapO', VM_O);
  await settled(h, sw);
});

test('after a controller restart the flows of the desired version are kept, stale cookies swept, nothing re-added', async (t) => {
  const store = openStore({ path: ':memory:' });
  const db = new MemoryBridgeDb();
  const first = await start(t, store, db, false);
  const sw1 = connectSwitch(t, first);
  db.addVmPort('tapO', VM_O);
  await waitFor(() => store.getVm(VM_O), 'VM learned');
  await settled(first, sw1);
  const kept = [...sw1.flows.values()].map((f) => ({ ...f }));
  await first.controller.close();
  await waitFor(() => sw1.closed, 'switch connection closed with the controller');

  // The switch kept forwarding (fail_mode secure) with its flows; one stale set of an older version is left over too.
  const stale: FlowStats = { ...kept[0]!, priority: 7, match: { ethDst: '02:00:00:00:00:99' }, cookie: VNET_COOKIE_TAG | (1n << 16n) | 0x1234n };
  const foreign: FlowStats = { ...kept[0]!, priority: 9, match: { ethDst: '02:00:00:00:00:98' }, cookie: 0x42n };
  const second = await start(t, store, db);
  const sw2 = connectSwitch(t, second, [...kept, stale, foreign]);
  await waitFor(() => sw2.mods.some((m) => m.command === 'delete'), 'stale flows swept');
  await settled(second, sw2);
  assert.deepEqual(sw2.mods.filter((m) => m.command === 'add'), [], 'flows already in place are not re-added');
  const deletes = sw2.mods.filter((m) => m.command === 'delete');
  assert.deepEqual(deletes.map((m) => [m.cookie, m.cookieMask]), [[stale.cookie, 0xffffffffffffffffn]]);
  assert.ok(![...sw2.flows.values()].some((f) => f.cookie === stale.cookie));
  assert.ok([...sw2.flows.values()].some((f) => f.cookie === 0x42n), 'a flow without vnet\'s tag is left alone');
});

test('traffic matrix from the counting flows: deltas per update period reach the controller as the host\'s traffic report', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  h.db.addVmPort('tapO', VM_O);
  await waitFor(() => store.getVm(VM_O), 'VM learned');
  await settled(h, sw);
  const pairFlow = (f: FlowStats): boolean => f.tableId === TABLE_CLASSIFY && f.match.ethSrc === VM_O && f.match.ethDst === VM_A;
  const requests = (): number => sw.sw.received.filter((m) => m.type === 'multipart-request' && m.body.kind === 'flow' && m.body.tableId === TABLE_CLASSIFY).length;
  sw.count(pairFlow, 5, 7000); // before the baseline: not counted
  h.clock.advance(100);
  await waitFor(() => requests() >= 1, 'baseline read');
  sw.count(pairFlow, 10, 15_000);
  // A period whose read is still in flight is skipped: advance until one report carries the pair.
  const samples = await waitFor(() => {
    const s = store.trafficSince(0).filter((x) => x.host === 'ovs1' && x.src === VM_O && x.dst === VM_A);
    if (s.length === 0) h.clock.advance(100);
    return s.length > 0 ? s : undefined;
  }, 'traffic sample stored');
  assert.deepEqual(samples.map((s) => [s.frames, s.bytes]), [[10, 15_000]]);

  // The ports' statistics go into the host's facts, as a daemon's counters: the VM port's and the hub tunnel's.
  const zero = { durationSec: 0, durationNsec: 0, rxPackets: 0n, txPackets: 0n, rxBytes: 0n, txBytes: 0n, rxDropped: 0n, txDropped: 0n, rxErrors: 0n, txErrors: 0n, rxFrameErr: 0n, rxOverErr: 0n, rxCrcErr: 0n, collisions: 0n };
  sw.portStats = [
    { ...zero, portNo: h.db.ofport('tapO')!, rxPackets: 15n, rxBytes: 22_000n },
    { ...zero, portNo: h.db.ofport(tunnelPortName('hub'))!, txPackets: 15n, txBytes: 22_600n, rxPackets: 4n, rxBytes: 400n },
  ];
  const facts = await waitFor(() => {
    const f = store.getHost('ovs1')?.facts;
    if (f?.links.find((l) => l.peer === 'hub')?.txBytes !== 22_600) { h.clock.advance(100); return undefined; }
    return f;
  }, 'port counters in the host\'s facts');
  assert.deepEqual(facts.ports.map((p) => [p.mac, p.rxFrames, p.rxBytes]), [[VM_O, 15, 22_000]]);
  assert.deepEqual(facts.links.filter((l) => l.peer === 'hub').map((l) => [l.peer, l.kind, l.state, l.txFrames, l.rxFrames]), [['hub', 'backbone', 'up', 15, 4]]);
});

test('a VM whose port went while the controller was away is removed at its next start', async (t) => {
  const store = openStore({ path: ':memory:' });
  const db = new MemoryBridgeDb();
  const first = await start(t, store, db, false);
  connectSwitch(t, first);
  db.addVmPort('tapO', VM_O);
  await waitFor(() => store.getVm(VM_O), 'VM learned');
  await first.controller.close();
  db.removeVmPort('tapO');
  await start(t, store, db);
  await waitFor(() => store.getVm(VM_O) === undefined ? true : undefined, 'the VM removed at the first read of the bridge');
  assert.equal(store.getVm(VM_A)?.host, 'h2', 'VMs of other hosts untouched');
});
