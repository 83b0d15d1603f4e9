/**
 * Privileged (root): a vnet daemon (the `vnet daemon` CLI) and a Linux kernel
 * `vxlan` device share one VXLAN overlay (VNI 4242, UDP 4789). Everything is
 * created here and removed afterwards.
 *
 *   vmD ── TAP ── vnet daemon (hD, 10.202.0.1) ═══ underlay veth ═══ (10.202.0.2) vx0 ── br0 ── veth ── vmK
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsHarness, requireTools, waitFor } from '../helpers/netns.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { startVxlanDaemon } from '../helpers/vxlan-daemon.ts';

const VNI = 4242;

describe('a vnet daemon and a Linux kernel vxlan device on one overlay', { timeout: 180_000 }, () => {
  const h = new NetnsHarness('vvx-');
  const dir = mkdtempSync(join(tmpdir(), 'vnet-vxlan-priv-'));
  const admin = `unix:${join(dir, 'hD.sock')}`;
  const vmDIp = '10.9.8.1';
  const vmKIp = '10.9.8.2';
  let vmD = '';
  let vmK = '';
  let daemonLog = (): string => '';

  const kernelLink = async (): Promise<{ txFrames: number; rxFrames: number; decodeErrors: number; state: string } | undefined> => {
    const s = (await adminRequest(admin, 'GET', '/status')).json as { links: { peer: string; txFrames: number; rxFrames: number; decodeErrors: number; state: string }[] };
    return s.links.find((l) => l.peer === 'kvtep');
  };
  const ping = (extra: string[] = []) =>
    h.exec(vmD, ['ping', '-c', '3', '-i', '0.2', '-W', '2', ...extra, vmKIp], { timeoutMs: 20_000, allowFailure: true });

  before(async () => {
    requireTools(['ip', 'ping', 'iperf3', 'ethtool']);
    const hostD = await h.namespace();
    const hostK = await h.namespace();
    vmD = await h.namespace();
    vmK = await h.namespace();
    // The underlay carries an encapsulated 1514-byte frame (1564 bytes): MTU 1600.
    const [ulD, ulK] = await h.vethPair({ ns: hostD }, { ns: hostK });
    for (const [ns, dev] of [[hostD, ulD], [hostK, ulK]] as const) await h.exec(ns, ['ip', 'link', 'set', 'dev', dev, 'mtu', '1600']);
    // A veth hands checksum-offloaded packets on unfinished; a NIC would finish them: the kernel VTEP's underlay does it in software.
    await h.exec(hostK, ['ethtool', '-K', ulK, 'tx', 'off']);
    await h.addAddress(hostD, ulD, '10.202.0.1/24');
    await h.addAddress(hostK, ulK, '10.202.0.2/24');
    // The kernel VTEP: vx0 to the daemon's address, bridged to vmK's veth.
    await h.exec(hostK, ['ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'local', '10.202.0.2', 'remote', '10.202.0.1', 'dstport', '4789', 'dev', ulK]);
    await h.exec(hostK, ['ip', 'link', 'set', 'dev', 'vx0', 'mtu', '1500']);
    await h.exec(hostK, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    const [inK, inVm] = await h.vethPair({ ns: hostK }, { ns: vmK });
    for (const dev of ['vx0', inK]) await h.exec(hostK, ['ip', 'link', 'set', 'dev', dev, 'master', 'br0']);
    for (const dev of ['vx0', 'br0']) await h.linkUp(hostK, dev);
    await h.addAddress(vmK, inVm, `${vmKIp}/24`);
    const daemon = await startVxlanDaemon(h, { dir, hostNs: hostD, vmNs: vmD, vni: VNI, listenIp: '10.202.0.1', vtep: { peer: 'kvtep', host: '10.202.0.2' }, mac: '02:00:00:00:0d:01', vmIp: vmDIp });
    daemonLog = daemon.log;
  });

  after(async () => {
    await h.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ping works between the VM behind the daemon and the VM behind the kernel vxlan device', async () => {
    const r = await ping();
    assert.equal(r.code, 0, `ping failed: ${r.stdout}${r.stderr}\ndaemon log:\n${daemonLog()}`);
    const l = await kernelLink();
    assert.equal(l?.state, 'up');
    assert.ok(l!.txFrames >= 3 && l!.rxFrames >= 3, JSON.stringify(l));
    assert.equal(l!.decodeErrors, 0);
  });

  it('1500-byte IP packets pass both ways without fragmentation (DF set)', async () => {
    const r = await ping(['-M', 'do', '-s', '1472']);
    assert.equal(r.code, 0, `1500-byte ping failed: ${r.stdout}${r.stderr}`);
  });

  it('an iperf3 TCP stream runs from the daemon\'s VM to the kernel VTEP\'s VM and back', async () => {
    const server = h.spawn(vmK, ['iperf3', '-s', '-B', vmKIp]);
    await waitFor(async () => (await h.exec(vmK, ['ss', '-ltn'])).stdout.includes(`${vmKIp}:5201`), 'iperf3 server listening', 10_000);
    for (const reverse of [false, true]) {
      const r = await h.exec(vmD, ['iperf3', '-c', vmKIp, '-t', '2', '-J', '--connect-timeout', '3000', ...(reverse ? ['-R'] : [])], { timeoutMs: 30_000, allowFailure: true });
      assert.equal(r.code, 0, `iperf3${reverse ? ' -R' : ''} failed: ${r.stdout.slice(-500)}${r.stderr}; link ${JSON.stringify((await adminRequest(admin, 'GET', '/status')).json)}`);
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
      assert.ok(j.end.sum_received !== undefined, `iperf3 gave no result: ${r.stdout.slice(0, 2000)}`);
      assert.ok(j.end.sum_received.bytes > 1_000_000, `iperf3${reverse ? ' -R' : ''} moved only ${j.end.sum_received.bytes} bytes`);
      console.log(`# vnet daemon ↔ kernel vxlan, iperf3${reverse ? ' -R' : ''}: ${(j.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);
    }
    server.kill();
  });
});
