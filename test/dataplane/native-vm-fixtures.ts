/** Two VMs for the native forwarder's privileged tests (native-forwarder.priv.test.ts, native-tls.priv.test.ts). */
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import type { Daemon } from '../../src/dataplane/daemon.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { waitFor, type NetnsHarness } from '../helpers/netns.ts';

export type Vm = { ns: string; dev: string; ip: string };

/**
 * Two VMs (macs[0] on the first daemon at subnet.1, macs[1] on the second at
 * subnet.2): TAP ports in namespaces, IPv6 off, each other's MAC static, so
 * the VMs send nothing but what the test makes them send.
 */
export async function vmPair(h: NetnsHarness, on: readonly [Daemon, Daemon], macs: readonly [string, string], subnet: string): Promise<[Vm, Vm]> {
  const vms: Vm[] = [];
  for (const [d, mac, ip] of [[on[0], macs[0], `${subnet}.1`], [on[1], macs[1], `${subnet}.2`]] as const) {
    const ns = await h.namespace();
    const dev = h.linkName();
    const port = TapPort.open({ name: dev, mac: parseMac(mac), mtu: 1500, vnetHdr: true, up: false, logger: silentLogger() });
    h.trackHostLink(dev);
    await h.exec(undefined, ['sysctl', '-q', '-w', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
    await h.moveLink(dev, ns);
    await h.exec(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    await h.addAddress(ns, dev, `${ip}/24`);
    await h.linkUp(ns, dev);
    d.addPort(port, ip);
    vms.push({ ns, dev, ip });
  }
  const [vm1, vm2] = vms as [Vm, Vm];
  await h.exec(vm1.ns, ['ip', 'neigh', 'replace', vm2.ip, 'lladdr', macs[1], 'dev', vm1.dev, 'nud', 'permanent']);
  await h.exec(vm2.ns, ['ip', 'neigh', 'replace', vm1.ip, 'lladdr', macs[0], 'dev', vm2.dev, 'nud', 'permanent']);
  return [vm1, vm2];
}

/** A VM interface's packet counter as its kernel counts it. */
export async function kernelCounter(h: NetnsHarness, ns: string, dev: string, which: 'tx_packets' | 'rx_packets'): Promise<number> {
  return Number((await h.exec(ns, ['cat', `/sys/class/net/${dev}/statistics/${which}`])).stdout.trim());
}

/**
 * After a flow from vm1 (on `hub`) to vm2 (on `spoke`): the port counters and
 * each daemon's first traffic snapshot equal the frames the VMs' kernels
 * sent, and the spoke delivered to vm2 exactly what vm2 received.
 */
export async function assertCountersExact(h: NetnsHarness, [hub, spoke]: readonly [Daemon, Daemon], [vm1, vm2]: readonly [Vm, Vm], macs: readonly [string, string]): Promise<void> {
  /** Frames from `src` in the daemon's traffic matrix (whatever their destination: all went to the other VM). */
  const fromMac = (d: Daemon, src: string): number =>
    d.takeTrafficSnapshot().entries.filter((e) => e.src === parseMac(src)).reduce((n, e) => n + e.frames, 0);
  let sent1 = 0;
  let sent2 = 0;
  await waitFor(async () => {
    sent1 = await kernelCounter(h, vm1.ns, vm1.dev, 'tx_packets');
    sent2 = await kernelCounter(h, vm2.ns, vm2.dev, 'tx_packets');
    return sent1 > 0 && hub.port(vm1.dev)!.stats.rxFrames === sent1 && spoke.port(vm2.dev)!.stats.rxFrames === sent2;
  }, 'port counters equal the frames the VMs sent');
  // The first snapshot: every frame each VM sent since its port was added.
  assert.equal(fromMac(hub, macs[0]), sent1, 'hub matrix: the frames from vm1 equal what vm1 sent');
  assert.equal(fromMac(spoke, macs[1]), sent2, 'spoke matrix: the frames from vm2 equal what vm2 sent');
  assert.equal(spoke.port(vm2.dev)!.stats.txFrames, await kernelCounter(h, vm2.ns, vm2.dev, 'rx_packets'), 'the spoke delivered to vm2 exactly what vm2 received');
}

/** A drop rule on `hub` stops the vm1→vm2 flow at once (not one frame reaches vm2); removed, the flow is back on the native path. */
export async function assertDropRuleAtOnce(h: NetnsHarness, hub: Daemon, vm2: Vm, macs: readonly [string, string], ping: (count: number, allowFailure?: boolean) => Promise<unknown>): Promise<void> {
  const dropsBefore = hub.table.stats.drops['rule-drop'];
  hub.setRules('admin', [{ id: 'no-vm2', priority: 500, src: macs[0], dst: macs[1], action: 'drop' as const }]);
  const rxAtRule = await kernelCounter(h, vm2.ns, vm2.dev, 'rx_packets');
  const blocked = ping(30, true);
  await waitFor(() => hub.table.stats.drops['rule-drop'] >= dropsBefore + 20, 'the hub drops the flow by the rule');
  await blocked;
  assert.equal(await kernelCounter(h, vm2.ns, vm2.dev, 'rx_packets'), rxAtRule, 'no frame reached vm2 after the drop rule');
  hub.setRules('admin', []);
  const beforeResume = hub.nativeCarriedFrames!;
  await ping(100);
  assert.ok(hub.nativeCarriedFrames! - beforeResume >= 50, 'with the rule gone the flow is back on the native path');
}
