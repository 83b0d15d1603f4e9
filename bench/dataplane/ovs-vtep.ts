/**
 * An Open vSwitch VXLAN VTEP for bench/dataplane: ovsdb-server and
 * ovs-vswitchd (userspace datapath, `datapath_type=netdev`) running inside a
 * host namespace, set up as OVS's userspace tunneling guide has it
 * (Documentation/howto/userspace-tunneling.rst):
 *
 *   brPhy   the underlay device becomes its port and its LOCAL port takes
 *           the host's underlay address, so the tunnel's outer packets leave
 *           through it (OVS's own route table, `ovs/route/add`);
 *   brInt   a VXLAN port to the remote VTEP and a veth to the VM namespace.
 *
 * Both bridges forward with one NORMAL flow. `stop` puts the underlay back as
 * it was (its address on the device, checksum offload on) for the scenarios
 * that follow.
 */
import { OvsHarness } from '../../test/helpers/ovs.ts';
import { run } from '../../test/helpers/netns.ts';

export interface OvsVtepInit {
  /** The host namespace OVS runs in. */
  host: string;
  /** The VM namespace that gets the veth (named `vmIf`). */
  vm: string;
  vmIf: string;
  /** The underlay device in `host` and its address (CIDR), moved onto brPhy. */
  underlay: string;
  address: string;
  /** The remote VTEP's underlay address (a vnet daemon or another OVS). */
  remote: string;
  vni: number;
}

export interface OvsVtep {
  stop(): Promise<void>;
}

const inNs = (ns: string, argv: string[]): Promise<unknown> => run(['ip', 'netns', 'exec', ns, ...argv]);

export async function startOvsVtep(o: OvsVtepInit): Promise<OvsVtep> {
  const ovs = new OvsHarness({ netns: o.host });
  const brPhy = ovs.bridgeName();
  const brInt = ovs.bridgeName();
  const hostIf = `${o.vmIf}h`;
  const stop = async (): Promise<void> => {
    await ovs.stop();
    for (const dev of [brPhy, brInt, hostIf]) await run(['ip', '-n', o.host, 'link', 'del', dev], { allowFailure: true });
    await run(['ip', '-n', o.host, 'addr', 'replace', o.address, 'dev', o.underlay], { allowFailure: true });
    await run(['ip', 'netns', 'exec', o.host, 'ethtool', '-K', o.underlay, 'tx', 'on'], { allowFailure: true });
  };
  try {
    await ovs.startDb();
    await ovs.startSwitch();
    // The underlay device becomes brPhy's port; brPhy's LOCAL port holds the address.
    await inNs(o.host, ['ip', 'addr', 'flush', 'dev', o.underlay]);
    await ovs.addBridge(brPhy);
    await ovs.vsctl('add-port', brPhy, o.underlay);
    await ovs.ofctl('add-flow', brPhy, 'actions=NORMAL');
    await inNs(o.host, ['ip', 'addr', 'add', o.address, 'dev', brPhy]);
    await inNs(o.host, ['ip', 'link', 'set', brPhy, 'up']);
    await ovs.appctl('ovs/route/add', `${o.remote}/32`, brPhy);
    // A veth hands checksum-offloaded packets on unfinished; OVS's userspace datapath does not finish them.
    await inNs(o.host, ['ethtool', '-K', o.underlay, 'tx', 'off']);

    await ovs.addBridge(brInt);
    await ovs.vsctl('add-port', brInt, 'vx0', '--', 'set', 'interface', 'vx0', 'type=vxlan', `options:remote_ip=${o.remote}`, `options:key=${o.vni}`, 'options:dst_port=4789');
    await run(['ip', 'link', 'add', hostIf, 'netns', o.host, 'type', 'veth', 'peer', 'name', o.vmIf, 'netns', o.vm]);
    await inNs(o.host, ['ip', 'link', 'set', hostIf, 'up']);
    await ovs.vsctl('add-port', brInt, hostIf);
    await ovs.ofctl('add-flow', brInt, 'actions=NORMAL');
    await inNs(o.vm, ['ethtool', '-K', o.vmIf, 'tx', 'off']);
    return { stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
