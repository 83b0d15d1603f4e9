/**
 * The underlay of an Open vSwitch userspace-datapath VTEP facing a vnet
 * daemon, for privileged tests (OVS's Documentation/howto/userspace-
 * tunneling.rst): a veth between the daemon's namespace and OVS's (MTU 1600
 * for 1500-byte inner packets), the daemon's end at `daemonIp`, and a bridge
 * `brPhy` holding the underlay veth and, on its LOCAL port, the OVS VTEP's
 * address `ovsIp`; OVS's own route and neighbour entry to the daemon's VTEP.
 * A veth hands checksum-offloaded packets on unfinished, and OVS's
 * userspace datapath checks the outer UDP checksum in software: the
 * daemon's end sends with tx offload off.
 */
import type { NetnsHarness } from './netns.ts';
import type { OvsHarness } from './ovs.ts';

export interface OvsUnderlayInit {
  daemonNs: string;
  ovsNs: string;
  /** IPv4 addresses with no prefix; the underlay is their /24. */
  daemonIp: string;
  ovsIp: string;
}

export async function ovsUnderlay(h: NetnsHarness, ovs: OvsHarness, o: OvsUnderlayInit): Promise<{ brPhy: string }> {
  const [ulD, ulO] = await h.vethPair({ ns: o.daemonNs }, { ns: o.ovsNs });
  for (const [ns, dev] of [[o.daemonNs, ulD], [o.ovsNs, ulO]] as const) await h.exec(ns, ['ip', 'link', 'set', 'dev', dev, 'mtu', '1600']);
  await h.exec(o.daemonNs, ['ethtool', '-K', ulD, 'tx', 'off']);
  await h.addAddress(o.daemonNs, ulD, `${o.daemonIp}/24`);
  const brPhy = ovs.bridgeName();
  await ovs.addBridge(brPhy);
  await ovs.vsctl('add-port', brPhy, ulO);
  await ovs.ofctl('add-flow', brPhy, 'actions=NORMAL');
  await h.addAddress(o.ovsNs, brPhy, `${o.ovsIp}/24`);
  await h.linkUp(o.ovsNs, brPhy);
  const ulDMac = (await h.link(o.daemonNs, ulD))!.address;
  await ovs.appctl('ovs/route/add', `${o.daemonIp}/24`, brPhy);
  await ovs.appctl('tnl/arp/set', brPhy, o.daemonIp, ulDMac);
  return { brPhy };
}
