/** Two VMs for the native forwarder's privileged tests (native-forwarder.priv.test.ts, native-tls.priv.test.ts). */
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import type { Daemon } from '../../src/dataplane/daemon.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import type { NetnsHarness } from '../helpers/netns.ts';

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
