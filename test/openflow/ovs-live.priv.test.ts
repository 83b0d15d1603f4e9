import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createCa, issueHostCertificate } from '../../src/pki/certs.ts';
import { SwitchRejectedError, type SwitchConnectionError } from '../../src/openflow/errors.ts';
import { OFPP, flowMod } from '../../src/openflow/messages.ts';
import { SwitchListener, dpidText } from '../../src/openflow/switch-listener.ts';
import type { SwitchConnection } from '../../src/openflow/switch-connection.ts';
import type { OfMessage } from '../../src/openflow/messages.ts';
import { decodeMessage, encodeMessage } from '../../src/openflow/message-codec.ts';
import { OFPFF, OFP_NO_BUFFER } from '../../src/openflow/messages.ts';
import { startOvs, type OvsHarness } from '../helpers/ovs.ts';
import { RecordingProxy } from './recording-proxy.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Against the real Open vSwitch: ovsdb-server and ovs-vswitchd (userspace
 * datapath) in a directory the test owns, one netdev bridge in fail_mode
 * secure whose controller is this test's listener on loopback.
 */

interface Rig {
  ovs: OvsHarness;
  bridge: string;
  listener: SwitchListener;
  errors: SwitchConnectionError[];
  unsolicited: OfMessage[];
  conn: () => Promise<SwitchConnection>;
}

async function rig(t: { after(fn: () => Promise<void> | void): void }, opts: { recording?: RecordingProxy } = {}): Promise<Rig> {
  const ovs = await startOvs(t);
  const listener = new SwitchListener({ port: 0, echoIntervalMs: 200, livenessTimeoutMs: 5000 });
  const errors: SwitchConnectionError[] = [];
  const unsolicited: OfMessage[] = [];
  listener.on('connection-error', (e) => errors.push(e));
  listener.on('switch', (c) => c.on('message', (m) => unsolicited.push(m)));
  const { port: listening } = await listener.listen();
  t.after(() => listener.close());
  let port = listening;
  if (opts.recording !== undefined) {
    port = await opts.recording.listen(listening);
    t.after(() => opts.recording!.close());
  }
  const bridge = ovs.bridgeName();
  await ovs.addBridge(bridge, [`tcp:127.0.0.1:${port}`]);
  const dpid = BigInt(`0x${JSON.parse(await ovs.vsctl('get', 'bridge', bridge, 'datapath_id')) as string}`);
  const conn = (): Promise<SwitchConnection> => waitFor(() => (listener.switches.get(dpid)?.state === 'ready' ? listener.switches.get(dpid) : undefined), `bridge ${bridge} (${dpidText(dpid)}) connected`, 20_000);
  return { ovs, bridge, listener, errors, unsolicited, conn };
}

describe('OpenFlow 1.3 against a live Open vSwitch', () => {
  it('handshakes, reads back flows added with ovs-ofctl, installs flows ovs-ofctl dumps, behind barriers', async (t) => {
    const { ovs, bridge, conn } = await rig(t);
    const sw = await conn();
    await waitFor(async () => (await ovs.vsctl('--bare', '--columns=is_connected', 'list', 'controller')) === 'true', 'OVS reporting its controller connected');

    await ovs.ofctl('add-flow', bridge, 'cookie=0x77,table=0,priority=100,idle_timeout=60,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:00/ff:ff:ff:00:00:00,actions=output:2');
    await ovs.ofctl('add-flow', bridge, 'cookie=0x78,priority=90,ip,nw_src=10.1.0.0/16,tcp,tp_dst=443,tun_id=0x5000,actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:3');
    const flows = await sw.flowStats({ cookie: 0x77n, cookieMask: 0xffffffffffffffffn });
    assert.equal(flows.length, 1);
    const f = flows[0]!;
    assert.deepEqual(
      { cookie: f.cookie, priority: f.priority, idle: f.idleTimeout, match: f.match, instructions: f.instructions },
      {
        cookie: 0x77n,
        priority: 100,
        idle: 60,
        match: { inPort: 1, ethSrc: '02:00:00:00:00:01', ethDst: { value: '02:00:00:00:00:00', mask: 'ff:ff:ff:00:00:00' } },
        instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 2, maxLen: 0 }] }],
      },
    );
    const [g] = await sw.flowStats({ cookie: 0x78n, cookieMask: 0xffffffffffffffffn });
    assert.deepEqual(g?.match, { ethType: 0x0800, ipProto: 6, ipv4Src: { value: '10.1.0.0', mask: '255.255.0.0' }, tcpDst: 443, tunnelId: 0x5000n });
    assert.deepEqual(g?.instructions, [
      { type: 'apply-actions', actions: [{ type: 'push-vlan', ethertype: 0x8100 }, { type: 'set-field', field: { vlanVid: 0x1000 | 10 } }, { type: 'output', port: 3, maxLen: 0 }] },
    ]);

    await sw.apply([
      flowMod({
        cookie: 0x5a01n,
        priority: 200,
        hardTimeout: 600,
        match: { ethType: 0x0800, ethDst: '02:00:00:00:00:02', ipv4Dst: '10.0.0.2' },
        instructions: [{ type: 'apply-actions', actions: [{ type: 'set-field', field: { ethSrc: '02:00:00:00:00:aa' } }, { type: 'output', port: 2, maxLen: 0 }] }, { type: 'goto-table', tableId: 1 }],
      }),
      flowMod({ cookie: 0x5a02n, tableId: 1, priority: 10, match: { inPort: 5 }, instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: OFPP.controller, maxLen: 128 }] }] }),
    ]);
    // the barrier has come back: the flows are in place without waiting
    const dumped = await ovs.ofctl('dump-flows', bridge);
    assert.match(dumped, /cookie=0x5a01, .*hard_timeout=600, .*priority=200,ip,dl_dst=02:00:00:00:00:02,nw_dst=10\.0\.0\.2 actions=set_field:02:00:00:00:00:aa->eth_src,output:2,goto_table:1/);
    assert.match(dumped, /cookie=0x5a02, .*table=1, .*priority=10,in_port=5 actions=CONTROLLER:128/);

    await sw.apply([flowMod({ command: 'delete', tableId: 0xff, cookie: 0x5a00n, cookieMask: 0xff00n })]);
    const after = await ovs.ofctl('dump-flows', bridge);
    assert.doesNotMatch(after, /cookie=0x5a0/, 'cookie-masked delete removed both');
    assert.match(after, /cookie=0x77/, 'and nothing else');

    await assert.rejects(
      sw.apply([flowMod({ tableId: 1, match: {}, instructions: [{ type: 'goto-table', tableId: 0 }] })]),
      (e: unknown) => e instanceof SwitchRejectedError && /OFPET_BAD_INSTRUCTION\/BAD_TABLE_ID/.test(e.message),
    );
  });

  it('reads port descriptions, port stats, table features and the role from OVS, and sees PORT_STATUS', async (t) => {
    const { ovs, bridge, conn, unsolicited } = await rig(t);
    const sw = await conn();
    const port = ovs.bridgeName();
    await ovs.vsctl('add-port', bridge, port, '--', 'set', 'interface', port, 'type=internal', 'ofport_request=7');
    await waitFor(() => unsolicited.some((m) => m.type === 'port-status' && m.reason === 'add' && m.port.name === port), 'PORT_STATUS add');
    const ports = await sw.portDescriptions();
    assert.deepEqual(ports.map((p) => [p.portNo, p.name]).sort(), [[7, port], [OFPP.local, bridge]].sort());
    const stats = await sw.portStats();
    assert.deepEqual(stats.map((s) => s.portNo).sort(), [7, OFPP.local].sort());
    const tables = await sw.tableFeatures();
    assert.ok(tables.length >= 254, `${tables.length} tables`);
    assert.equal(tables[0]!.tableId, 0);
    assert.ok(tables[0]!.properties.length >= 8, 'with their properties');
    assert.deepEqual(await sw.setRole('master', 1n), { role: 'master', generationId: 1n });
    assert.ok(sw.nTables >= 254);
  });

  it('keeps OVS alive with echoes, sees it disconnect and reconnect, and drops a garbage client without touching OVS', async (t) => {
    const { ovs, listener, conn, errors } = await rig(t);
    const first = await conn();
    await waitFor(() => first.echoes.repliesReceived >= 2, 'echo replies from OVS');
    const gone: bigint[] = [];
    listener.on('switch-gone', (d) => gone.push(d));
    await ovs.restartSwitch();
    await waitFor(() => gone.includes(first.datapathId), 'the old connection gone');
    const second = await conn();
    assert.notEqual(second, first);
    assert.equal(first.state, 'closed');

    const garbage = connect(listener.address!.port, '127.0.0.1');
    garbage.on('error', () => undefined);
    let told: Buffer = Buffer.alloc(0);
    let closed = false;
    garbage.on('data', (c: Buffer) => (told = Buffer.concat([told, c])));
    garbage.on('close', () => (closed = true));
    garbage.write(Buffer.from('\x04\x00\x00\x03junk'));
    await waitFor(() => errors.some((e) => e.code === 'VNET_ERR_OF_BAD_LENGTH'), 'the garbage client refused');
    await waitFor(() => closed, 'its socket closed by the listener');
    assert.match(told.toString('latin1'), /OpenFlow message length 3 is under the 8-byte minimum/, 'told why in an OFPT_ERROR');
    await second.barrier();
    assert.equal(listener.switches.get(second.datapathId), second, 'OVS stays connected');
  });

  it('decodes every message OVS sends and re-encodes each byte for byte', async (t) => {
    const recording = new RecordingProxy();
    const { ovs, bridge, conn, unsolicited } = await rig(t, { recording });
    const sw = await conn();
    await ovs.ofctl('add-flow', bridge, 'cookie=0x77,priority=100,idle_timeout=60,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:00/ff:ff:ff:00:00:00,actions=output:2');
    await ovs.ofctl('add-flow', bridge, 'cookie=0x78,priority=90,ip,nw_src=10.1.0.0/16,tcp,tp_dst=443,tun_id=0x5000,actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:3');
    await ovs.ofctl('add-flow', bridge, 'cookie=0x79,priority=80,dl_vlan=10,arp,arp_tpa=10.0.0.1,actions=pop_vlan,CONTROLLER:64');
    await sw.apply([flowMod({ cookie: 0x7an, priority: 70, flags: OFPFF.sendFlowRem, match: { ethType: 0x86dd, ipv6Dst: { value: 'fd00::', mask: 'ffff::' } } })]);
    await sw.flowStats();
    await sw.portDescriptions();
    await sw.portStats();
    await sw.tableFeatures();
    await sw.setRole('equal', 0n);
    const frame = Buffer.from('ffffffffffff020000000001080600010800060400010200000000010a000001000000000000' + '0a000002', 'hex');
    sw.send({ type: 'packet-out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: OFPP.controller, actions: [{ type: 'output', port: OFPP.controller, maxLen: 0xffff }], data: frame });
    await sw.apply([flowMod({ command: 'delete', tableId: 0xff, cookie: 0x7an, cookieMask: 0xffn })]);
    const port = ovs.bridgeName();
    await ovs.vsctl('add-port', bridge, port, '--', 'set', 'interface', port, 'type=internal');
    await waitFor(() => ['packet-in', 'flow-removed', 'port-status'].every((type) => unsolicited.some((m) => m.type === type)), 'PACKET_IN, FLOW_REMOVED and PORT_STATUS from OVS');
    const pin = unsolicited.find((m) => m.type === 'packet-in');
    assert.ok(pin?.type === 'packet-in' && pin.data.equals(frame) && pin.match.inPort === OFPP.controller, 'the frame came back as sent');

    const seen = new Set<string>();
    for (const raw of recording.fromSwitch) {
      const m = decodeMessage(raw);
      assert.ok(!(m instanceof Error), `OVS sent ${raw.subarray(0, 64).toString('hex')}…, which does not decode: ${m instanceof Error ? m.message : ''}`);
      assert.ok(encodeMessage(m).equals(raw), `${m.type} re-encodes to OVS's bytes:\n${raw.toString('hex')}\n${encodeMessage(m).toString('hex')}`);
      seen.add(m.type === 'multipart-reply' ? `multipart-reply ${m.body.kind}` : m.type);
    }
    for (const type of ['hello', 'features-reply', 'multipart-reply flow', 'multipart-reply port-desc', 'multipart-reply port-stats', 'multipart-reply table-features', 'role-reply', 'packet-in', 'flow-removed', 'port-status', 'barrier-reply']) {
      assert.ok(seen.has(type), `OVS sent a ${type} (seen: ${[...seen].join(', ')})`);
    }
  });

  it('over TLS with the deployment CA: OVS with a certificate from it connects, one from another CA is refused', async (t) => {
    const ovs = await startOvs(t);
    const ca = await createCa();
    const controller = await issueHostCertificate(ca, 'controller', { ips: ['127.0.0.1'] });
    const listener = new SwitchListener({ port: 0, tls: { ca: ca.cert, cert: controller.cert, key: controller.key } });
    const errors: SwitchConnectionError[] = [];
    listener.on('connection-error', (e) => errors.push(e));
    const { port } = await listener.listen();
    t.after(() => listener.close());
    const useCertificate = async (issuer: { cert: string; key: string }, name: string): Promise<void> => {
      const own = await issueHostCertificate(issuer, name);
      const files = { key: join(ovs.dir, `${name}.key`), cert: join(ovs.dir, `${name}.crt`), ca: join(ovs.dir, `${name}-ca.crt`) };
      writeFileSync(files.key, own.key, { mode: 0o600 });
      writeFileSync(files.cert, own.cert);
      writeFileSync(files.ca, ca.cert);
      await ovs.vsctl('set-ssl', files.key, files.cert, files.ca);
    };

    await useCertificate(await createCa(), 'stranger');
    const bridge = ovs.bridgeName();
    await ovs.addBridge(bridge, [`ssl:127.0.0.1:${port}`]);
    await waitFor(() => errors.some((e) => e.code === 'VNET_ERR_OF_TLS'), 'the stranger refused at the TLS handshake', 20_000);
    assert.equal(listener.switches.size, 0);

    await useCertificate(ca, 'switch-1');
    const sw = await waitFor(() => [...listener.switches.values()].find((c) => c.state === 'ready'), 'OVS connected over TLS', 30_000);
    await sw.apply([flowMod({ cookie: 0x7e1n, priority: 9, match: { ethDst: '02:00:00:00:00:07' }, instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 1, maxLen: 0 }] }] })]);
    assert.match(await ovs.ofctl('dump-flows', bridge), /cookie=0x7e1, .*priority=9,dl_dst=02:00:00:00:00:07 actions=output:1/);
  });
});
