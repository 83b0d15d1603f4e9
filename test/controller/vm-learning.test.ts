import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostRecord, VmRecord } from '../../src/controller/store/records.ts';
import { planVmLearning, type VmLearningInput, type VmLookup } from '../../src/controller/vm-learning.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';

const host = (id: string, ports: string[] = []): HostRecord => ({
  id, site: undefined, role: 'spoke', addresses: [], connected: true, firstSeenMs: 0, lastSeenMs: 0,
  facts: { hostId: id, role: 'spoke', site: undefined, listen: undefined, ports: ports.map((mac, i) => ({ name: `p${i}`, kind: 'memory', mac, ip: undefined, mtu: 1500, rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0 })), links: [], rulesVersion: 0, linksVersion: 0 },
});
const vm = (mac: string, h: string | undefined, state: VmRecord['state'] = 'running'): VmRecord => ({ mac, name: 'v', ip: undefined, host: h, state, source: 'deployment', updatedMs: 0 });
/** The registry as lists, read through the lookups VM learning uses; `reads` counts the VM records each lookup handed out. */
function lookup(vms: readonly VmRecord[], hosts: readonly HostRecord[], reads = { vms: 0, hosts: 0 }): VmLookup {
  return {
    vm: (mac) => { const v = vms.find((x) => x.mac === mac); if (v !== undefined) reads.vms++; return v; },
    vmsOn: (h) => { const on = vms.filter((x) => x.host === h); reads.vms += on.length; return on; },
    reportedPorts: (h) => { reads.hosts++; return new Set(hosts.find((x) => x.id === h)?.facts?.ports.map((p) => p.mac) ?? []); },
  };
}
const input = (facts: VmLearningInput['facts'], vms: readonly VmRecord[], hosts: readonly HostRecord[]): VmLearningInput => ({ facts, registry: lookup(vms, hosts) });
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

test('a VM seen for the first time is registered on the reporting host, and placement changed', () => {
  const d = new FakeDaemon('h1', { vms: [{ mac: A, ip: '10.0.0.1' }] });
  const e = planVmLearning(input(d.facts(), [], [host('h1')]), 500);
  assert.deepEqual(e.writes, [{ op: 'upsert-vm', vm: { mac: A, name: 'vm0', ip: '10.0.0.1', host: 'h1', state: 'running', source: 'learned', updatedMs: 500 } }]);
  assert.deepEqual(e.events, [{ kind: 'event', type: 'vm-changed', payload: { vm: { mac: A, ip: '10.0.0.1', host: 'h1', state: 'running', name: 'vm0' } } }]);
  assert.equal(e.reconcile, 'VM location learned');
  assert.deepEqual(e.messages, []);
});

test('a VM seen on another host and no longer reported where it was is re-homed, with a log line', () => {
  const d = new FakeDaemon('h2', { vms: [{ mac: A }] });
  const e = planVmLearning(input(d.facts(), [vm(A, 'h1')], [host('h1'), host('h2')]), 7);
  assert.deepEqual(e.writes.map((w) => w.op === 'upsert-vm' && [w.vm.host, w.vm.state]), [['h2', 'running']]);
  assert.equal(e.reconcile, 'VM location learned');
  assert.deepEqual(e.logs.map((l) => [l.level, l.msg, l.fields]), [['info', 'VM seen on another host: re-homed', { vm: A, from: 'h1', to: 'h2' }]]);
});

test('both ends reporting the VM (around a cutover), or a migrating pin, leave it where the registry has it', () => {
  const d = new FakeDaemon('h2', { vms: [{ mac: A }] });
  assert.deepEqual(planVmLearning(input(d.facts(), [vm(A, 'h1')], [host('h1', [A]), host('h2')]), 7).writes, []);
  assert.deepEqual(planVmLearning(input(d.facts(), [vm(A, 'h1', 'migrating')], [host('h1'), host('h2')]), 7).writes, []);
});

test('a VM back on its host runs again; a running VM whose port is gone is stopped; neither moves placement', () => {
  const d = new FakeDaemon('h1', { vms: [{ mac: A }] });
  const e = planVmLearning(input(d.facts(), [vm(A, 'h1', 'stopped'), vm(B, 'h1')], [host('h1')]), 9);
  assert.deepEqual(e.writes.map((w) => w.op === 'upsert-vm' && [w.vm.mac, w.vm.state]), [[A, 'running'], [B, 'stopped']]);
  assert.deepEqual(e.events.map((x) => x.kind === 'event' && x.type), ['vm-changed', 'vm-changed']);
  assert.equal(e.reconcile, undefined);
  // Nothing to learn: no effects at all.
  const same = planVmLearning(input(d.facts(), [vm(A, 'h1')], [host('h1')]), 9);
  assert.deepEqual([same.writes, same.events, same.logs, same.reconcile], [[], [], [], undefined]);
});

test('a facts report reads the reporting host\'s VMs and its ports\' VMs, not every VM of the registry', () => {
  const others = Array.from({ length: 10_000 }, (_, i) => vm(`02:00:00:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, `h${2 + (i % 50)}`));
  const d = new FakeDaemon('h1', { vms: [{ mac: A }] });
  const reads = { vms: 0, hosts: 0 };
  const e = planVmLearning({ facts: d.facts(), registry: lookup([...others, vm(A, 'h1'), vm(B, 'h1')], [host('h1')], reads) }, 9);
  assert.deepEqual(e.writes.map((w) => w.op === 'upsert-vm' && [w.vm.mac, w.vm.state]), [[B, 'stopped']]);
  // A (its port) once, then A and B (the VMs on h1): three records of 10,002.
  assert.deepEqual(reads, { vms: 3, hosts: 0 });
});
