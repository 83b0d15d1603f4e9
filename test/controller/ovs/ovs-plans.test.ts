import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/common/errors.ts';
import { parseDeployment } from '../../../src/controller/deployment-file.ts';
import { classifyPorts } from '../../../src/controller/ovs/bridge-ports.ts';
import { parseOvsdbTarget } from '../../../src/controller/ovs/ovs-deployment.ts';
import { counterDeltas } from '../../../src/controller/ovs/flow-counters.ts';
import { cookieVersion, desiredFlows, planFlowSync, TABLE_CLASSIFY, COUNTED_PAIR_PRIORITY, VNET_COOKIE_TAG, type OvsForwardingInput } from '../../../src/controller/ovs/flow-plan.ts';
import { planTunnels } from '../../../src/controller/ovs/tunnel-plan.ts';
import { desiredState } from '../../../src/controller/reconcile.ts';
import type { FlowStats } from '../../../src/openflow/multipart.ts';
import { DEPLOYMENT } from './ovs-harness.ts';

const input: OvsForwardingInput = {
  host: 'ovs1',
  vmPorts: [{ mac: '02:00:00:00:00:1e', name: 'vm-o', ofport: 3 }],
  tunnels: new Map([['hub', 1]]),
  hub: 'hub',
  rules: [
    { id: 'vm-a', priority: 100, src: 'any', dst: '02:00:00:00:00:0a', action: { link: 'hub' } },
    { id: 'not', priority: 100, src: '!02:00:00:00:00:01', dst: 'any', action: 'drop' },
    { id: 'far', priority: 200, src: 'any', dst: '02:00:00:00:00:0c', action: { link: 'h9' } },
  ],
  rulesVersion: 7,
  vmMacs: ['02:00:00:00:00:0a', '02:00:00:00:00:1e'],
};

test('the flow set: cookie carries the tag and the rules version; rules without an OpenFlow form or a tunnel are skipped with the reason', () => {
  const d = desiredFlows(input);
  assert.equal(d.cookie & (0xffffn << 48n), VNET_COOKIE_TAG);
  assert.equal(cookieVersion(d.cookie), 7);
  assert.deepEqual(d.skipped.map((s) => s.rule), ['not', 'far']);
  assert.match(d.skipped[0]!.why, /no OpenFlow form/);
  assert.match(d.skipped[1]!.why, /no tunnel port to h9/);
  // Same input, same cookie; another port, another cookie (same version).
  assert.equal(desiredFlows(input).cookie, d.cookie);
  const moved = desiredFlows({ ...input, vmPorts: [{ ...input.vmPorts[0]!, ofport: 4 }] });
  assert.notEqual(moved.cookie, d.cookie);
  assert.equal(cookieVersion(moved.cookie), 7);
});

test('flow sync: flows present with the desired cookie kept, missing ones added (classifiers last), other vnet cookies swept by exact cookie, foreign flows untouched', () => {
  const d = desiredFlows(input);
  const asStats = (f: (typeof d.flows)[number], cookie: bigint): FlowStats => ({ ...f, cookie, durationSec: 0, durationNsec: 0, idleTimeout: 0, hardTimeout: 0, flags: 0, packetCount: 0n, byteCount: 0n });
  const fresh = planFlowSync(d, []);
  assert.equal(fresh.adds.length, d.flows.length);
  const tables = fresh.adds.map((m) => (m.type === 'flow-mod' ? m.tableId : -1));
  assert.deepEqual(tables, [...tables].sort((a, b) => b - a), 'table 2, then 1, then 0');
  const old = VNET_COOKIE_TAG | (6n << 16n);
  const installed = [...d.flows.slice(1).map((f) => asStats(f, d.cookie)), asStats(d.flows[0]!, old), { ...asStats(d.flows[0]!, 0x42n), priority: 3 }];
  const sync = planFlowSync(d, installed);
  assert.equal(sync.adds.length, 1);
  assert.equal(sync.kept, d.flows.length - 1);
  assert.deepEqual(sync.staleCookies, [old]);
  const del = sync.sweep[0]!;
  assert.ok(del.type === 'flow-mod' && del.command === 'delete' && del.cookie === old && del.cookieMask === 0xffffffffffffffffn && del.tableId === 0xff);
});

test('counter deltas: a first reading is a baseline, then per-pair differences; a counter that went down counts from zero', () => {
  const flow = (packets: bigint, bytes: bigint): FlowStats => ({
    tableId: TABLE_CLASSIFY, priority: COUNTED_PAIR_PRIORITY, cookie: VNET_COOKIE_TAG, durationSec: 0, durationNsec: 0, idleTimeout: 0, hardTimeout: 0, flags: 0,
    packetCount: packets, byteCount: bytes, match: { inPort: 3, ethSrc: '02:00:00:00:00:1e', ethDst: '02:00:00:00:00:0a' }, instructions: [],
  });
  const a = counterDeltas(new Map(), [flow(5n, 500n)]);
  assert.deepEqual(a.entries, []);
  const b = counterDeltas(a.next, [flow(8n, 900n)]);
  assert.deepEqual(b.entries, [{ src: '02:00:00:00:00:1e', dst: '02:00:00:00:00:0a', frames: 3, bytes: 400 }]);
  const c = counterDeltas(b.next, [flow(2n, 100n)]);
  assert.deepEqual(c.entries.map((e) => [e.frames, e.bytes]), [[2, 100]]);
  assert.deepEqual(counterDeltas(c.next, [{ ...flow(9n, 9n), cookie: 0x42n }]).entries, [], 'a flow without vnet\'s cookie is not counted');
});

test('ports: VM ports by attached-mac (numbered, unicast, one port a MAC), tunnels by vnet-peer, everything else ignored', () => {
  const port = (name: string, ofport: number | undefined, externalIds: Record<string, string>, options: Record<string, string> = {}) => ({ name, type: '', ofport, macInUse: undefined, externalIds, options });
  const c = classifyPorts([
    port('br', 65534, {}),
    port('tap1', 5, { 'attached-mac': '02:00:00:00:00:01', 'iface-id': 'vm-1' }),
    port('tap2', 6, { 'attached-mac': '02:00:00:00:00:01' }),
    port('tap3', 7, { 'attached-mac': '01:00:5e:00:00:01' }),
    port('tap4', -1, { 'attached-mac': '02:00:00:00:00:04' }),
    port('vnx1', 2, { 'vnet-peer': 'hub' }, { remote_ip: '10.9.0.1' }),
  ]);
  assert.deepEqual(c.vmPorts, [{ mac: '02:00:00:00:00:01', name: 'vm-1', ofport: 5 }]);
  assert.deepEqual(c.tunnels, [{ peer: 'hub', name: 'vnx1', ofport: 2, remoteIp: '10.9.0.1' }]);
});

test('tunnels: missing ones added to the peer\'s vtep, a changed address replaced, unwanted ones removed only once the links are known', () => {
  const vteps = new Map([['hub', '10.9.0.1'], ['h2', '10.9.0.2']]);
  const present = [{ peer: 'hub', name: 'a', ofport: 1, remoteIp: '10.9.0.99' }, { peer: 'h3', name: 'b', ofport: 2, remoteIp: '10.9.0.3' }];
  assert.deepEqual(planTunnels(present, ['hub', 'h2', 'h4'], vteps, false), {
    add: [{ peer: 'h2', remoteIp: '10.9.0.2' }, { peer: 'hub', remoteIp: '10.9.0.1' }], remove: ['a'], missingVtep: ['h4'],
  });
  assert.deepEqual(planTunnels(present, ['hub'], vteps, true).remove, ['a', 'b']);
});

test('reconcile: a fast path with an OVS host is a link on the OVS side only (both sides for two OVS hosts), and rules on both sides', () => {
  const hosts = [
    { id: 'hub', role: 'hub' as const, addresses: [{ transport: 'tls' as const, host: '10.0.0.1', port: 7000 }] },
    { id: 'h2', role: 'spoke' as const, addresses: [{ transport: 'tls' as const, host: '10.0.0.2', port: 7000 }] },
    { id: 'ovs1', role: 'spoke' as const, addresses: [] },
  ];
  const desired = desiredState({
    hubId: 'hub', hosts, vxlanHosts: new Set(['ovs1']),
    vms: [{ mac: '02:00:00:00:00:0a', host: 'h2' }, { mac: '02:00:00:00:00:1e', host: 'ovs1' }],
    links: [{ a: 'h2', b: 'ovs1', kind: 'fast-path', requestedBy: 'adaptation', reason: 'r', createdMs: 0 }],
  });
  assert.deepEqual(desired.get('ovs1')!.links.map((l) => l.peer), ['h2']);
  assert.deepEqual(desired.get('h2')!.links, [], 'the daemon reaches ovs1 over its configured VTEP');
  assert.deepEqual(desired.get('h2')!.rules.map((r) => [r.dst, r.action]), [['02:00:00:00:00:1e', { link: 'ovs1' }]]);
  assert.deepEqual(desired.get('ovs1')!.rules.map((r) => [r.dst, r.action]), [['02:00:00:00:00:0a', { link: 'h2' }]]);

  // Two OVS hosts: each lists the other (a tunnel port on both sides).
  const two = desiredState({
    hubId: 'hub', hosts: [...hosts, { id: 'ovs2', role: 'spoke', addresses: [] }], vxlanHosts: new Set(['ovs1', 'ovs2']),
    vms: [{ mac: '02:00:00:00:00:1e', host: 'ovs1' }, { mac: '02:00:00:00:00:2e', host: 'ovs2' }],
    links: [{ a: 'ovs1', b: 'ovs2', kind: 'fast-path', requestedBy: 'adaptation', reason: 'r', createdMs: 0 }],
  });
  assert.deepEqual(two.get('ovs1')!.links.map((l) => l.peer), ['ovs2']);
  assert.deepEqual(two.get('ovs2')!.links.map((l) => l.peer), ['ovs1']);
  assert.deepEqual(two.get('ovs2')!.rules.map((r) => [r.dst, r.action]), [['02:00:00:00:00:1e', { link: 'ovs1' }]]);
});

test('deployment file: OVS hosts checked (vtep, no listen, not a hub, vxlan present, the hub with a vtep, one host a bridge)', () => {
  const ok = parseDeployment(DEPLOYMENT, 'x.yaml');
  assert.equal(ok.hosts.find((h) => h.id === 'ovs1')?.ovs?.datapathType, 'netdev');
  const refuse = (from: string, to: string, pattern: RegExp): void => {
    assert.throws(() => parseDeployment(DEPLOYMENT.replace(from, to), 'x.yaml'), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
  };
  refuse('vxlan: { vni: 4242 }', '', /needs vxlan: \{vni\}/);
  refuse('{ id: hub, site: s, hub: true, vtep: 10.9.0.1 }', '{ id: hub, site: s, hub: true }', /hub hub needs a vtep/);
  refuse('vtep: 10.9.0.7, ovs:', 'ovs:', /ovs1 needs a vtep/);
  refuse('vtep: 10.9.0.7, ovs:', 'vtep: 10.9.0.7, listen: { host: 1.2.3.4, port: 1 }, ovs:', /no vnet listen address/);
  refuse('ovsdb: "unix:/run/vnet-test/db.sock"', 'ovsdb: "http://x"', /not unix:\/PATH, ssl:IP:PORT or tcp:IP:PORT/);
  refuse('ovsdb: "unix:/run/vnet-test/db.sock"', 'ovsdb: "ssl:ovs.example:6640"', /not unix:\/PATH, ssl:IP:PORT or tcp:IP:PORT/);
  const ssl = parseDeployment(DEPLOYMENT.replace('ovsdb: "unix:/run/vnet-test/db.sock"', 'ovsdb: "ssl:10.0.0.7:6640"'), 'x.yaml');
  assert.deepEqual(parseOvsdbTarget(ssl.hosts.find((h) => h.id === 'ovs1')!.ovs!.ovsdb), { host: '10.0.0.7', port: 6640, ssl: true });
  refuse('bridge: br-vnet', 'bridge: br-vnet-far-too-long', /bridge name/);
  refuse('vtep: 10.9.0.7', 'vtep: ovs.example', /not an IPv4 or IPv6 address/);
  refuse('{ id: h2, site: s, vtep: 10.9.0.2 }', '{ id: h2, site: s, vtep: 10.9.0.2, ovs: { ovsdb: "unix:/run/vnet-test/db.sock", bridge: br-vnet } }', /name the same bridge/);
});
