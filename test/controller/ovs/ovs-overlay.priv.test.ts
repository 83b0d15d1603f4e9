/**
 * Privileged (root): an Open vSwitch bridge as a host of a vnet deployment,
 * driven by the real `vnet controller` over OVSDB and OpenFlow 1.3 (both
 * mutual TLS with the deployment's CA), sharing one VXLAN overlay with a vnet
 * daemon. Everything is created here — namespaces, veths, ovsdb-server and
 * ovs-vswitchd in a temporary directory — and removed afterwards.
 *
 *   vmD ── TAP ── vnet daemon hD (hub, VTEP 10.203.0.1) ═══ underlay ═══ brPhy (10.203.0.2)
 *                                                                         ╎ userspace tunnel
 *          vmO ── veth ── brInt (made by the controller: flows, tunnel ports) ── vnet controller
 *
 * ovs-vswitchd and the controller run in hostO (the controller reaches
 * ovsdb-server's socket, the switch dials the controller's OpenFlow port on
 * hostO's loopback); the test reads the controller through `vnet ctl` run
 * there. h3 is a host with a VTEP and a VM on paper only: the fast path to it
 * is checked in OVS's database and flow table.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { caFiles, hostFiles, initCa, issueHostCert } from '../../../src/pki/certs.ts';
import { NetnsHarness, requireTools, waitFor } from '../../helpers/netns.ts';
import { startOvs, type OvsHarness } from '../../helpers/ovs.ts';
import { ovsUnderlay } from '../../helpers/ovs-underlay.ts';
import { startVxlanDaemon } from '../../helpers/vxlan-daemon.ts';

const VNET = resolve(import.meta.dirname, '../../../bin/vnet.js');
const VNI = 4242;
const VM_O_MAC = '02:00:00:00:0e:01';
const VM_D_MAC = '02:00:00:00:0d:02';
const VM_3_MAC = '02:00:00:00:0d:03';
const VM_D_IP = '10.9.9.1';
const VM_O_IP = '10.9.9.2';
const OPENFLOW_PORT = 6653;
const OVSDB_PORT = 6640;
const API = 'http://127.0.0.1:7401';

describe('an OVS bridge as a host of the deployment, with a vnet daemon on one VXLAN overlay', { timeout: 300_000 }, () => {
  const h = new NetnsHarness('vov-');
  const dir = mkdtempSync(join(tmpdir(), 'vnet-ovs-host-'));
  const tlsDir = join(dir, 'tls');
  const tokenFile = join(dir, 'api-token');
  const stops: Array<() => Promise<void> | void> = [];
  let ovs: OvsHarness;
  let brInt = '';
  let hostO = '';
  let vmD = '';
  let vmO = '';
  let controller: ChildProcess | undefined;
  let controllerLog = '';
  let daemonLog = (): string => '';

  const ctl = async (...args: string[]): Promise<unknown> => {
    const r = await h.exec(hostO, [process.execPath, VNET, 'ctl', '--controller', API, '--token-file', tokenFile, '--json', ...args], { timeoutMs: 30_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`vnet ctl ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout) as unknown;
  };
  const flows = (): Promise<string> => ovs.ofctl('dump-flows', brInt);
  const ping = (from: string, to: string, count = 3) =>
    h.exec(from, ['ping', '-c', String(count), '-i', '0.2', '-W', '2', to], { timeoutMs: 30_000, allowFailure: true });
  const context = async (): Promise<string> => {
    const show = async (what: string, p: Promise<string>): Promise<string> => `\n${what}:\n${await p.catch(String)}`;
    return `\ncontroller log:\n${controllerLog.slice(-4000)}\ndaemon log:\n${daemonLog().slice(-2000)}` + await show('brInt flows', flows()) +
      await show('interfaces', ovs.vsctl('--columns=name,type,ofport,options,external_ids', 'list', 'interface'));
  };
  const startController = async (): Promise<void> => {
    // Logged at info whatever the test runner's VNET_LOG_LEVEL (the test reads the controller's log).
    const p = h.spawn(hostO, ['env', 'VNET_LOG_LEVEL=info', process.execPath, VNET, 'controller', '--topology', join(dir, 'deployment.yaml'), '--db', join(dir, 'vnet.db'), '--tls-dir', tlsDir, '--token-file', tokenFile]);
    p.stdout?.on('data', (d: Buffer) => (controllerLog += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (controllerLog += d.toString()));
    controller = p;
    await waitFor(async () => {
      if (p.exitCode !== null) throw new Error(`vnet controller exited with ${p.exitCode}:\n${controllerLog}`);
      return ctl('hosts').then(() => true, () => false);
    }, 'the controller\'s API', 60_000);
  };
  const killController = async (): Promise<void> => {
    const p = controller!;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    controller = undefined;
  };
  const hostState = async (id: string): Promise<string | undefined> => ((await ctl('hosts')) as Array<{ id: string; state: string }>).find((x) => x.id === id)?.state;
  const ofportOf = async (name: string): Promise<string> => ovs.vsctl('get', 'interface', name, 'ofport');
  /** The port table 1's rule flow for `mac` outputs to. */
  const outputFor = async (mac: string): Promise<string | undefined> => new RegExp(`table=1, [^\\n]*dl_dst=${mac}[^\\n]*actions=output:(\\S+)`).exec(await flows())?.[1];
  const tunnelTo = async (ip: string): Promise<string | undefined> => {
    const out = await ovs.vsctl('--bare', '--columns=name', 'find', 'interface', 'type=vxlan', `options:remote_ip="${ip}"`);
    return out.trim() === '' ? undefined : out.trim();
  };

  before(async () => {
    requireTools(['ip', 'ping', 'iperf3', 'ethtool']);
    const hostD = await h.namespace();
    hostO = await h.namespace();
    vmD = await h.namespace();
    vmO = await h.namespace();
    ovs = await startOvs({ after: (fn) => { stops.push(fn); } }, { netns: hostO });
    await ovsUnderlay(h, ovs, { daemonNs: hostD, ovsNs: hostO, daemonIp: '10.203.0.1', ovsIp: '10.203.0.2' });

    // The deployment's CA; the switch's certificate (host ovs1) for OpenFlow over TLS.
    await initCa(tlsDir);
    await issueHostCert(tlsDir, 'ovs1');
    const own = hostFiles(tlsDir, 'ovs1');
    await ovs.vsctl('set-ssl', own.key, own.cert, caFiles(tlsDir).cert);
    // The controller reaches OVSDB over SSL too (hostO's loopback; the port is free in a namespace of our own).
    await ovs.addSslRemote(OVSDB_PORT);

    brInt = ovs.bridgeName();
    writeFileSync(join(dir, 'deployment.yaml'), [
      'name: ovs-overlay',
      'controller:',
      '  control: { host: 127.0.0.1, port: 7400 }',
      '  api: { host: 127.0.0.1, port: 7401 }',
      `  openflow: { host: 127.0.0.1, port: ${OPENFLOW_PORT} }`,
      'sites: [{ id: lab }]',
      'hosts:',
      '  - { id: hD, site: lab, hub: true, vtep: 10.203.0.1 }',
      `  - { id: ovs1, site: lab, vtep: 10.203.0.2, ovs: { ovsdb: "ssl:127.0.0.1:${OVSDB_PORT}", bridge: ${brInt} } }`,
      '  - { id: h3, site: lab, vtep: 10.203.0.3 }',
      `vxlan: { vni: ${VNI} }`,
      'policy: { updatePeriodMs: 500, smoothingIntervalMs: 2000, fastPathBudget: 0 }',
      'vms:',
      `  - { name: vmD, mac: "${VM_D_MAC}", ip: ${VM_D_IP}, host: hD }`,
      `  - { name: vm3, mac: "${VM_3_MAC}", ip: 10.9.9.3, host: h3 }`,
    ].join('\n') + '\n');
    await startController();

    // The controller made the bridge: the VM's port is plugged in as a hypervisor would, with iface-id and attached-mac.
    await waitFor(async () => (await ovs.vsctl('br-exists', brInt).then(() => true, () => false)), 'the controller created the bridge', 30_000);
    const [inO, inVm] = await h.vethPair({ ns: hostO }, { ns: vmO });
    await h.exec(vmO, ['ip', 'link', 'set', 'dev', inVm, 'address', VM_O_MAC]);
    await ovs.vsctl('add-port', brInt, inO, '--', 'set', 'interface', inO, 'external_ids:iface-id=vmO', `external_ids:attached-mac="${VM_O_MAC}"`);
    await h.exec(vmO, ['ethtool', '-K', inVm, 'tx', 'off']);
    await h.addAddress(vmO, inVm, `${VM_O_IP}/24`);

    const daemon = await startVxlanDaemon(h, { dir, hostNs: hostD, vmNs: vmD, vni: VNI, listenIp: '10.203.0.1', vtep: { peer: 'ovs1', host: '10.203.0.2' }, mac: VM_D_MAC, vmIp: VM_D_IP });
    daemonLog = daemon.log;
  });

  after(async () => {
    if (controller !== undefined) await killController();
    for (const stop of stops.reverse()) await stop();
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the bridge is a host: set up through OVSDB over SSL (secure, OpenFlow 1.3, our controller over TLS), connected, its VM port a VM in vnet ctl', async () => {
    assert.equal(await ovs.vsctl('get', 'bridge', brInt, 'fail_mode'), 'secure');
    assert.equal(await ovs.vsctl('get', 'bridge', brInt, 'datapath_type'), 'netdev');
    assert.match(await ovs.vsctl('get', 'bridge', brInt, 'protocols'), /OpenFlow13/);
    assert.match(await ovs.vsctl('get-controller', brInt), new RegExp(`ssl:127.0.0.1:${OPENFLOW_PORT}`));
    await waitFor(async () => (await hostState('ovs1')) === 'up', 'ovs1 up in vnet ctl hosts', 30_000).catch(async (e: Error) => { throw new Error(`${e.message}${await context()}`); });
    const vm = await waitFor(async () => ((await ctl('vms')) as Array<{ mac: string; host: string; name: string; state: string }>).find((v) => v.mac === VM_O_MAC && v.state === 'running'), 'vmO learned from its port', 30_000);
    assert.equal(vm.host, 'ovs1');
    assert.equal(vm.name, 'vmO');
    assert.ok(await tunnelTo('10.203.0.1'), 'the backbone tunnel port to the hub');
    await waitFor(async () => (await flows()).includes('cookie=0x766e'), 'vnet\'s flows installed', 30_000);
  });

  it('ping and an iperf3 stream between the VM on OVS and the VM behind the daemon, through the controller\'s flows', async () => {
    await waitFor(async () => (await h.exec(vmO, ['ping', '-c', '1', '-W', '1', VM_D_IP], { allowFailure: true })).code === 0, 'a first ping answered', 30_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}${await context()}`); });
    for (const [from, to] of [[vmO, VM_D_IP], [vmD, VM_O_IP]] as const) {
      const r = await ping(from, to);
      assert.equal(r.code, 0, `ping ${to}: ${r.stdout}${r.stderr}${await context()}`);
    }
    assert.equal(await outputFor(VM_D_MAC), await ofportOf((await tunnelTo('10.203.0.1'))!), 'vmD\'s rule: the hub\'s tunnel');
    const server = h.spawn(vmD, ['iperf3', '-s', '-B', VM_D_IP, '-1']);
    await waitFor(async () => (await h.exec(vmD, ['ss', '-ltn'])).stdout.includes(`${VM_D_IP}:5201`), 'iperf3 server listening', 10_000);
    const r = await h.exec(vmO, ['iperf3', '-c', VM_D_IP, '-t', '2', '-J', '--connect-timeout', '3000'], { timeoutMs: 30_000, allowFailure: true });
    server.kill();
    assert.equal(r.code, 0, `iperf3: ${r.stdout.slice(-500)}${r.stderr}${await context()}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received?: { bytes: number; bits_per_second: number } } };
    assert.ok((j.end.sum_received?.bytes ?? 0) > 1_000_000, `iperf3 moved ${j.end.sum_received?.bytes} bytes`);
    console.log(`# OVS host (controller's flows) → vnet daemon over VXLAN, iperf3 -t 2: ${((j.end.sum_received?.bits_per_second ?? 0) / 1e6).toFixed(0)} Mbit/s (shared, loaded machine)`);
  });

  it('the counting flows\' statistics reach the traffic matrix, and the inferred topology includes the OVS-hosted VM', async () => {
    const traffic = h.spawn(vmO, ['ping', '-c', '300', '-i', '0.1', '-s', '1000', VM_D_IP]);
    try {
      const edge = await waitFor(async () => ((await ctl('matrix')) as { edges: Array<{ src: string; dst: string; bytesPerSec: number }> }).edges.find((e) => e.src === VM_O_MAC && e.dst === VM_D_MAC && e.bytesPerSec > 0), 'vmO → vmD in the matrix', 30_000);
      assert.ok(edge.bytesPerSec > 0);
      const topo = await waitFor(async () => {
        const t = ((await ctl('topology')) as { topology: { edges: Array<{ a: string; b: string }> } }).topology;
        return t.edges.some((e) => [e.a, e.b].includes(VM_O_MAC)) ? t : undefined;
      }, 'a topology with vmO', 30_000);
      assert.ok(topo.edges.some((e) => [e.a, e.b].includes(VM_D_MAC)));
      // The tunnel port's statistics are the backbone link's counters, as a daemon reports its link's.
      const link = await waitFor(async () => ((await ctl('links')) as Array<{ a: string; b: string; kind: string; frames: number; state: string }>).find((l) => l.kind === 'backbone' && [l.a, l.b].sort().join() === 'hD,ovs1' && l.frames > 0), 'the backbone link ovs1 — hD with traffic', 30_000);
      assert.equal(link.state, 'up');
    } finally {
      traffic.kill();
    }
  });

  it('a fast path from the OVS host to h3 becomes a VXLAN tunnel port to h3\'s vtep with h3\'s VM re-pointed to it; removing it removes the port', async () => {
    const hubTunnel = await ofportOf((await tunnelTo('10.203.0.1'))!);
    const vm3Out = (): Promise<string | undefined> => outputFor(VM_3_MAC);
    assert.equal(await vm3Out(), hubTunnel, 'before: through the hub');
    await ctl('link', 'add', 'ovs1', 'h3');
    const name = await waitFor(() => tunnelTo('10.203.0.3'), 'tunnel port to h3', 30_000);
    assert.equal(await ovs.vsctl('get', 'interface', name, 'options:key'), `"${VNI}"`);
    const port = await waitFor(async () => { const p = await ofportOf(name); return Number(p) > 0 ? p : undefined; }, 'its OpenFlow number', 30_000);
    await waitFor(async () => (await vm3Out()) === port, 'vm3 re-pointed to the fast path', 30_000).catch(async (e: Error) => { throw new Error(`${e.message}${await context()}`); });
    await ctl('link', 'remove', 'ovs1', 'h3');
    await waitFor(async () => (await tunnelTo('10.203.0.3')) === undefined, 'the tunnel port removed', 30_000);
    await waitFor(async () => (await vm3Out()) === hubTunnel, 'vm3 back through the hub', 30_000);
  });

  it('the switch\'s connection cut (ss -K): the host goes down, the switch reconnects, its flows are checked and it forwards again', async () => {
    const connects = (): number => controllerLog.split('OVS switch connected').length - 1;
    const disconnects = (): number => controllerLog.split('OVS switch disconnected').length - 1;
    const [c0, d0] = [connects(), disconnects()];
    await h.exec(hostO, ['ss', '-K', 'dst', '127.0.0.1', 'dport', '=', String(OPENFLOW_PORT)]);
    await waitFor(() => disconnects() > d0, 'the controller saw the switch go', 30_000).catch(async (e: Error) => { throw new Error(`${e.message}${await context()}`); });
    await waitFor(() => connects() > c0, 'the switch reconnected', 60_000);
    await waitFor(async () => (await hostState('ovs1')) === 'up', 'ovs1 up again', 30_000);
    assert.equal((await ping(vmO, VM_D_IP)).code, 0);
  });

  it('the controller killed: OVS keeps forwarding; restarted: the flows in place are kept, stale ones swept; garbage on its OpenFlow port is refused', async () => {
    await killController();
    const during = await ping(vmO, VM_D_IP, 10);
    assert.equal(during.code, 0, `ping while the controller is down: ${during.stdout}`);
    assert.match(during.stdout, / 0% packet loss/);
    await ovs.ofctl('add-flow', brInt, 'cookie=0x766e000000010000,table=1,priority=7,dl_dst=02:00:00:00:00:99,actions=drop');
    const before = Date.now();
    await startController();
    await waitFor(async () => !(await flows()).includes('cookie=0x766e000000010000'), 'the stale flow swept', 30_000).catch(async (e: Error) => { throw new Error(`${e.message}${await context()}`); });
    // The flood flow of table 1 was not re-added: its age covers the restart.
    const restartedFor = (Date.now() - before) / 1000;
    const flood = /cookie=0x766e[^\n]*duration=([\d.]+)s, table=1,[^\n]*priority=0 actions/.exec(await flows());
    assert.ok(flood !== null && Number(flood[1]) >= restartedFor, `flood flow kept (age ${flood?.[1]} s ≥ ${restartedFor} s):\n${await flows()}`);
    assert.equal((await ping(vmO, VM_D_IP)).code, 0);

    const garbage = await h.exec(hostO, [process.execPath, '-e', `const s=require('net').connect(${OPENFLOW_PORT},'127.0.0.1',()=>s.end('this is not OpenFlow'));s.on('error',()=>{});s.resume();s.on('close',()=>process.exit(0));setTimeout(()=>process.exit(1),10000)`], { allowFailure: true, timeoutMs: 20_000 });
    assert.equal(garbage.code, 0, 'the controller closed the garbage connection');
    await waitFor(() => /VNET_ERR_OF_TLS|switch connection failed/.test(controllerLog), 'the refusal logged with its code', 10_000);
    assert.equal(await hostState('ovs1'), 'up', 'the OVS host stays connected');
    assert.equal((await ping(vmO, VM_D_IP)).code, 0);
  });
});
