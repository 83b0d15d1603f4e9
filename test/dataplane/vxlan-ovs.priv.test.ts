/**
 * Privileged (root): a vnet daemon (the `vnet daemon` CLI) and an Open vSwitch
 * bridge (userspace datapath, `datapath_type=netdev`) share one VXLAN overlay
 * (VNI 4242, UDP 4789). Everything is created here — namespaces, veths,
 * ovsdb-server and ovs-vswitchd in a temporary directory, run inside hostO —
 * and removed afterwards.
 *
 *   vmD ── TAP ── vnet daemon (hD, 10.203.0.1) ═══ underlay veth ═══ brPhy (10.203.0.2)
 *                                                                     ╎ userspace tunnel
 *                                                   vmO ── veth ── brInt ── vxlan port
 *
 * As in OVS's userspace tunneling guide (Documentation/howto/userspace-
 * tunneling.rst): the tunnel's outer packets leave through the bridge that
 * holds the underlay address (brPhy, its LOCAL port has 10.203.0.2, the
 * underlay veth is its port), found by OVS's own routing table
 * (`ovs/route/add`) and neighbour cache (`tnl/arp/set`); brInt holds the VM
 * port and the VXLAN port. Both bridges forward with one NORMAL flow.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsHarness, requireTools, waitFor } from '../helpers/netns.ts';
import { startOvs, type OvsHarness } from '../helpers/ovs.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { startVxlanDaemon } from '../helpers/vxlan-daemon.ts';
import { ovsUnderlay } from '../helpers/ovs-underlay.ts';

const VNI = 4242;

interface StatusLink { peer: string; state: string; txFrames: number; rxFrames: number; decodeErrors: number }

describe('a vnet daemon and an Open vSwitch bridge (userspace datapath) on one VXLAN overlay', { timeout: 240_000 }, () => {
  const h = new NetnsHarness('vvo-');
  const dir = mkdtempSync(join(tmpdir(), 'vnet-vxlan-ovs-'));
  const admin = `unix:${join(dir, 'hD.sock')}`;
  const stops: Array<() => Promise<void> | void> = [];
  const vmDIp = '10.9.9.1';
  const vmOIp = '10.9.9.2';
  let ovs: OvsHarness;
  let brInt = '';
  let vmD = '';
  let vmO = '';
  let daemonLog = (): string => '';

  const status = async (): Promise<{ links: StatusLink[]; vxlan: { stats: { unknownSource: number; wrongVni: number } } }> =>
    (await adminRequest(admin, 'GET', '/status')).json as never;
  const ovsLink = async (): Promise<StatusLink | undefined> => (await status()).links.find((l) => l.peer === 'ovs1');
  const ping = (from: string, to: string, extra: string[] = []) =>
    h.exec(from, ['ping', '-c', '3', '-i', '0.2', '-W', '2', ...extra, to], { timeoutMs: 20_000, allowFailure: true });
  const context = async (): Promise<string> => {
    const show = async (what: string, p: Promise<string>): Promise<string> => `\n${what}:\n${await p.catch(String)}`;
    return `\ndaemon log:\n${daemonLog().slice(-3000)}` + await show('brInt flows', ovs.ofctl('dump-flows', brInt)) + await show('OVS routes', ovs.appctl('ovs/route/show')) +
      await show('tunnel ports', ovs.appctl('tnl/ports/show')) + await show('tunnel neighbours', ovs.appctl('tnl/neigh/show')) + await show('datapath flows', ovs.appctl('dpctl/dump-flows'));
  };

  before(async () => {
    requireTools(['ip', 'ping', 'iperf3', 'ethtool']);
    const hostD = await h.namespace();
    const hostO = await h.namespace();
    vmD = await h.namespace();
    vmO = await h.namespace();
    ovs = await startOvs({ after: (fn) => { stops.push(fn); } }, { netns: hostO });

    await ovsUnderlay(h, ovs, { daemonNs: hostD, ovsNs: hostO, daemonIp: '10.203.0.1', ovsIp: '10.203.0.2' });

    // brInt: the VM's veth and a VXLAN port to the daemon's VTEP.
    brInt = ovs.bridgeName();
    await ovs.addBridge(brInt);
    await ovs.vsctl('add-port', brInt, 'vx-hD', '--', 'set', 'interface', 'vx-hD', 'type=vxlan',
      'options:remote_ip=10.203.0.1', `options:key=${VNI}`, 'options:dst_port=4789');
    const [inO, inVm] = await h.vethPair({ ns: hostO }, { ns: vmO });
    await ovs.vsctl('add-port', brInt, inO);
    await ovs.ofctl('add-flow', brInt, 'actions=NORMAL');
    // vmO's TCP checksums are left to the veth's offload; OVS's userspace datapath carries them unfinished: finish them in vmO.
    await h.exec(vmO, ['ethtool', '-K', inVm, 'tx', 'off']);
    await h.addAddress(vmO, inVm, `${vmOIp}/24`);

    const daemon = await startVxlanDaemon(h, { dir, hostNs: hostD, vmNs: vmD, vni: VNI, listenIp: '10.203.0.1', vtep: { peer: 'ovs1', host: '10.203.0.2' }, mac: '02:00:00:00:0d:02', vmIp: vmDIp });
    daemonLog = daemon.log;
  });

  after(async () => {
    for (const stop of stops.reverse()) await stop();
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ping works both ways between the VM behind the daemon and the VM on the OVS bridge, over the VXLAN port', async () => {
    // OVS brings a new port and the tunnel's underlay route up in its own time: the first answer is waited for (bounded).
    const t0 = performance.now();
    await waitFor(async () => (await h.exec(vmD, ['ping', '-c', '1', '-W', '1', vmOIp], { allowFailure: true })).code === 0, 'a first ping answered', 30_000)
      .catch(async (err: Error) => { throw new Error(`${err.message}${await context()}`); });
    console.log(`# first answer after ${(performance.now() - t0).toFixed(0)} ms`);
    for (const [from, to] of [[vmD, vmOIp], [vmO, vmDIp]] as const) {
      const r = await ping(from, to);
      assert.equal(r.code, 0, `ping ${to} failed: ${r.stdout}${r.stderr}${await context()}`);
    }
    const l = await ovsLink();
    assert.equal(l?.state, 'up');
    assert.ok(l!.txFrames >= 6 && l!.rxFrames >= 6, JSON.stringify(l));
    assert.equal(l!.decodeErrors, 0);
    const s = (await status()).vxlan.stats;
    assert.equal(s.unknownSource, 0, 'OVS sends from the configured VTEP address');
    assert.equal(s.wrongVni, 0, 'OVS stamps the deployment\'s VNI');
    // OVS encapsulated on its VXLAN port (it counts tx there) and its userspace datapath decapsulates (a tnl_pop action on the underlay bridge's port).
    // ovs-vswitchd writes interface statistics to its database every few seconds (stats-update-interval): wait for them.
    let stats = '';
    await waitFor(async () => {
      stats = await ovs.vsctl('get', 'interface', 'vx-hD', 'statistics');
      return Number(/tx_packets=(\d+)/.exec(stats)?.[1]) >= 6;
    }, 'OVS counting the VXLAN port\'s transmissions in its statistics', 30_000).catch(() => undefined);
    assert.ok(Number(/tx_packets=(\d+)/.exec(stats)?.[1]) >= 6, `vx-hD statistics: ${stats}`);
    const dp = await ovs.appctl('dpctl/dump-flows');
    assert.match(dp, /tnl_pop\(/, `datapath flows:\n${dp}`);
    assert.match(dp, /tnl_push\(tnl_port\(\d+\),header\(.*vxlan\(flags=0x8000000,vni=0x1092\)/, `datapath flows:\n${dp}`);
  });

  it('1500-byte IP packets pass both ways without fragmentation (DF set)', async () => {
    const r = await ping(vmD, vmOIp, ['-M', 'do', '-s', '1472']);
    assert.equal(r.code, 0, `1500-byte ping failed: ${r.stdout}${r.stderr}${await context()}`);
  });

  it('an iperf3 TCP stream runs from the daemon\'s VM to the OVS VM and back', async () => {
    const server = h.spawn(vmO, ['iperf3', '-s', '-B', vmOIp]);
    await waitFor(async () => (await h.exec(vmO, ['ss', '-ltn'])).stdout.includes(`${vmOIp}:5201`), 'iperf3 server listening', 10_000);
    for (const reverse of [false, true]) {
      const r = await h.exec(vmD, ['iperf3', '-c', vmOIp, '-t', '2', '-J', '--connect-timeout', '3000', ...(reverse ? ['-R'] : [])], { timeoutMs: 30_000, allowFailure: true });
      assert.equal(r.code, 0, `iperf3${reverse ? ' -R' : ''} failed: ${r.stdout.slice(-500)}${r.stderr}; link ${JSON.stringify(await ovsLink())}${await context()}`);
      const j = JSON.parse(r.stdout) as { end: { sum_received?: { bytes: number; bits_per_second: number } } };
      assert.ok(j.end.sum_received !== undefined, `iperf3 gave no result: ${r.stdout.slice(0, 2000)}`);
      assert.ok(j.end.sum_received.bytes > 1_000_000, `iperf3${reverse ? ' -R' : ''} moved only ${j.end.sum_received.bytes} bytes`);
      console.log(`# vnet daemon ↔ OVS (userspace) vxlan, iperf3${reverse ? ' -R' : ''}: ${(j.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);
    }
    server.kill();
  });
});
