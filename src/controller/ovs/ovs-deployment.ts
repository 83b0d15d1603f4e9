import { z } from 'zod';
import { canonicalAddress, ipAddressProblem, ipVersion, isUnspecifiedAddress } from '../../common/ip-address.ts';

/**
 * The deployment file's Open vSwitch parts (docs/openflow.md, "Open vSwitch
 * hosts"): a host with `ovs:` is an OVS bridge the controller drives over
 * OVSDB and OpenFlow 1.3 instead of a vnet daemon; `vtep:` is a host's VXLAN
 * tunnel endpoint (every OVS host has one, and so does every daemon an OVS
 * host tunnels to: the hub, fast-path peers); `vxlan:` the deployment's VNI;
 * `controller.openflow:` where the controller listens for the bridges.
 * Checked with the rest of the file (deployment-file.ts), once.
 */

/** An IP literal (no name: OVS's remote_ip and the daemons' VTEP lists take addresses), canonical. */
const ipLiteral = z.string()
  .refine((s) => ipAddressProblem(s) === undefined && !isUnspecifiedAddress(s), 'not an IPv4 or IPv6 address a peer can send to (e.g. 10.0.0.7)')
  .transform(canonicalAddress);

/** `unix:/path`, `ssl:IP:PORT` (mutual TLS with the deployment's CA) or `tcp:IP:PORT` (ovsdb-server's --remote, as OVS writes it). */
export const ovsdbTargetSchema = z.string().superRefine((s, ctx) => {
  if (parseOvsdbTarget(s) === undefined) ctx.addIssue({ code: 'custom', message: `"${s}" is not unix:/PATH, ssl:IP:PORT or tcp:IP:PORT (an ovsdb-server remote)` });
});

export type OvsdbTargetSpec = { path: string } | { host: string; port: number; ssl: boolean };

/** The client's target of an `ovsdb:` value; undefined when it is not one. */
export function parseOvsdbTarget(s: string): OvsdbTargetSpec | undefined {
  if (s.startsWith('unix:/')) return /\s/.test(s) ? undefined : { path: s.slice('unix:'.length) };
  const m = /^(tcp|ssl):(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(s);
  if (m === null) return undefined;
  const host = m[2] ?? m[3]!;
  const port = Number(m[4]);
  if (ipVersion(host) === 0 || port < 1 || port > 65535) return undefined;
  return { host, port, ssl: m[1] === 'ssl' };
}

export const ovsBridgeSchema = z.strictObject({
  /** ovsdb-server's socket: unix:/run/openvswitch/db.sock, ssl:IP:PORT (the deployment's CA) or tcp:IP:PORT. */
  ovsdb: ovsdbTargetSchema,
  /** The bridge the VMs' ports are on (created if missing). */
  bridge: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'a bridge name is 1-15 of A-Z a-z 0-9 _ . -'),
  /** netdev: the userspace datapath (no kernel module); system: the kernel's. */
  datapathType: z.enum(['netdev', 'system']).default('netdev'),
});

export const vtepSchema = ipLiteral;

export const vxlanSchema = z.strictObject({
  /** The deployment's one VNI (RFC 7348: 24 bits); OVS tunnel ports take it as options:key. */
  vni: z.number().int().min(0).max(0xffffff),
  /** The VTEPs' UDP port (default 4789, IANA's). */
  port: z.number().int().min(1).max(65535).default(4789),
});

export const DEFAULT_OPENFLOW_PORT = 6653;

export const openflowListenSchema = z.strictObject({
  /** An address the bridges reach (a wildcard cannot be given to OVS as its controller target). */
  host: ipLiteral,
  port: z.number().int().min(0).max(65535).default(DEFAULT_OPENFLOW_PORT),
  /** tls (default): mutual TLS with the deployment's CA; tcp: clear text, for a trusted management network only. */
  transport: z.enum(['tls', 'tcp']).default('tls'),
});

export type OvsBridgeConfig = z.output<typeof ovsBridgeSchema>;
export type VxlanConfig = z.output<typeof vxlanSchema>;
export type OpenflowListenConfig = z.output<typeof openflowListenSchema>;

interface HostLike {
  id: string;
  hub: boolean;
  standbyHub: boolean;
  listen?: unknown;
  ovs?: OvsBridgeConfig | undefined;
  vtep?: string | undefined;
}

/**
 * The rules that tie the parts together: an OVS host is a spoke with a VTEP
 * and no `listen`; with any OVS host the deployment has `vxlan:` and the hub
 * a VTEP — the OVS host's backbone is a tunnel port to it.
 */
export function checkOvsHosts(
  d: { hosts: readonly HostLike[]; vxlan?: VxlanConfig | undefined },
  issue: (path: (string | number)[], message: string) => void,
): void {
  const ovs = d.hosts.filter((h) => h.ovs !== undefined);
  const bridges = new Map<string, string>();
  d.hosts.forEach((h, i) => {
    if (h.ovs === undefined) return;
    if (h.hub || h.standbyHub) issue(['hosts', i, h.hub ? 'hub' : 'standbyHub'], `OVS host ${h.id} cannot be a hub (a hub relays between spokes; an OVS bridge is a spoke)`);
    if (h.listen !== undefined) issue(['hosts', i, 'listen'], `OVS host ${h.id} has no vnet listen address (its tunnels are VXLAN ports to the peers' vtep)`);
    if (h.vtep === undefined) issue(['hosts', i, 'vtep'], `OVS host ${h.id} needs a vtep: the address its VXLAN tunnels leave from`);
    const key = `${h.ovs.ovsdb}|${h.ovs.bridge}`;
    const other = bridges.get(key);
    if (other !== undefined) issue(['hosts', i, 'ovs', 'bridge'], `OVS hosts ${other} and ${h.id} name the same bridge ${h.ovs.bridge} of ${h.ovs.ovsdb}`);
    bridges.set(key, h.id);
  });
  if (ovs.length === 0) return;
  if (d.vxlan === undefined) issue(['vxlan'], `hosts ${ovs.map((h) => h.id).join(', ')} are OVS bridges: the deployment needs vxlan: {vni} (their tunnels' key)`);
  d.hosts.forEach((h, i) => {
    if (h.hub && h.vtep === undefined) issue(['hosts', i, 'vtep'], `hub ${h.id} needs a vtep: OVS hosts tunnel to it over VXLAN`);
  });
}
