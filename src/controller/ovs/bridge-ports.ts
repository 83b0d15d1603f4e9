import { formatMac, isMacString, isMulticastMac, parseMac } from '../../common/mac.ts';
import type { WireFacts } from '../../control/control-protocol.ts';
import type { BridgePort } from '../../ovsdb/vswitch.ts';
import { TUNNEL_PEER_KEY } from './bridge-db.ts';

/**
 * A bridge's ports in vnet's terms, the pure part:
 *
 *   VM port      `external_ids:attached-mac` a unicast MAC (the VM's; its
 *                name `iface-id`, else the port's), as OpenStack and OVN set
 *                them — a VM of this host, learned like a daemon's port
 *   tunnel port  `external_ids:vnet-peer` (made by the controller): the
 *                VXLAN tunnel to that host
 *   other        the bridge's LOCAL port, uplinks, ports of other software:
 *                not vnet's (and dropped by its flows)
 *
 * A port counts once ovs-vswitchd has given it an OpenFlow number. The
 * facts are what a daemon would report: its VM ports and its links.
 */

export interface VmPort {
  mac: string;
  name: string;
  ofport: number;
}

export interface TunnelPort {
  peer: string;
  name: string;
  ofport: number | undefined;
  remoteIp: string | undefined;
}

export interface ClassifiedPorts {
  vmPorts: VmPort[];
  tunnels: TunnelPort[];
}

const usable = (ofport: number | undefined): ofport is number => ofport !== undefined && ofport > 0 && ofport < 0xffffff00;

export function classifyPorts(ports: readonly BridgePort[]): ClassifiedPorts {
  const vmPorts: VmPort[] = [];
  const tunnels: TunnelPort[] = [];
  const macs = new Set<string>();
  for (const p of ports) {
    const peer = p.externalIds[TUNNEL_PEER_KEY];
    if (peer !== undefined) {
      tunnels.push({ peer, name: p.name, ofport: usable(p.ofport) ? p.ofport : undefined, remoteIp: p.options.remote_ip });
      continue;
    }
    const attached = p.externalIds['attached-mac'];
    if (attached === undefined || !isMacString(attached) || !usable(p.ofport)) continue;
    const mac = formatMac(parseMac(attached));
    // A multicast "VM MAC" or a second port claiming a MAC cannot be a VM's: left out (port security by construction).
    if (isMulticastMac(parseMac(mac)) || macs.has(mac)) continue;
    macs.add(mac);
    const id = p.externalIds['iface-id'];
    vmPorts.push({ mac, name: id !== undefined && id.length > 0 && id.length <= 64 ? id : p.name, ofport: p.ofport });
  }
  vmPorts.sort((a, b) => a.ofport - b.ofport);
  tunnels.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  return { vmPorts, tunnels };
}

/** A port's counters as OpenFlow port statistics give them (rx: into the switch from the port). */
export interface PortCounters {
  rxPackets: bigint;
  rxBytes: bigint;
  txPackets: bigint;
  txBytes: bigint;
  txDropped: bigint;
  rxErrors: bigint;
}

const n = (v: bigint | undefined): number => (v === undefined ? 0 : Number(v));

/**
 * The host's facts as a daemon's would read: VM ports (rx: frames from the
 * VM, as a daemon's port counts them), tunnel links (to the hub: backbone;
 * tx: frames sent to the peer), with the switch's port counters when known.
 * Versions: those the switch runs.
 */
export function bridgeFacts(
  host: { id: string; site: string; hub: string | undefined },
  ports: ClassifiedPorts,
  versions: { rulesVersion: number; linksVersion: number },
  counters: ReadonlyMap<number, PortCounters> = new Map(),
): WireFacts {
  return {
    hostId: host.id,
    role: 'spoke',
    site: host.site,
    ports: ports.vmPorts.map((p) => {
      const c = counters.get(p.ofport);
      return { name: p.name, kind: 'tap', mac: p.mac, mtu: 1500, rxFrames: n(c?.rxPackets), rxBytes: n(c?.rxBytes), txFrames: n(c?.txPackets), txBytes: n(c?.txBytes), txDropped: n(c?.txDropped) };
    }),
    links: ports.tunnels.map((t) => {
      const c = t.ofport === undefined ? undefined : counters.get(t.ofport);
      return {
        peer: t.peer, kind: t.peer === host.hub ? 'backbone' : 'fast-path', state: t.ofport === undefined ? 'connecting' : 'up', direction: 'outbound',
        txFrames: n(c?.txPackets), txBytes: n(c?.txBytes), rxFrames: n(c?.rxPackets), rxBytes: n(c?.rxBytes), txDropped: n(c?.txDropped), decodeErrors: n(c?.rxErrors), reconnects: 0,
      } as const;
    }),
    rulesVersion: versions.rulesVersion,
    linksVersion: versions.linksVersion,
  };
}
