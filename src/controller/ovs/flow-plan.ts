import { createHash } from 'node:crypto';
import type { RuleSpec } from '../../control/daemon-control.ts';
import type { Action, Instruction } from '../../openflow/actions.ts';
import { flowMod, OFPP, OFPTT_ALL, type OfMessage } from '../../openflow/messages.ts';
import type { FlowStats } from '../../openflow/multipart.ts';
import type { Match } from '../../openflow/oxm.ts';

/**
 * An OVS host's flows, the pure part: the controller's desired forwarding
 * for the host in, OpenFlow 1.3 flows out; and what to add and sweep given
 * what the switch holds. No I/O: ovs-host.ts sends what this returns.
 *
 *   table 0  classify and count: a frame from a VM port with the VM's own
 *            source MAC goes on to table 1 — one flow per (VM port, source,
 *            destination VM) pair, whose counters are the traffic matrix
 *            (flow-counters.ts), and one per VM port for everything else
 *            (broadcasts, unknown destinations); a frame from a tunnel port
 *            goes to table 2. Anything else (another source MAC on a VM
 *            port, the bridge's LOCAL port, ports vnet does not know) is
 *            dropped: fail_mode=secure has no table-miss flow.
 *   table 1  from a VM: controller rules first (a remote VM's MAC → the
 *            tunnel port to the host the rule's link names), then the VMs
 *            on this bridge (MAC → their port), else flood: every VM port
 *            and the tunnel to the hub (the daemons' semantics: a spoke
 *            floods along its backbone; OpenFlow never sends a frame back
 *            out of its in_port).
 *   table 2  from a tunnel: the VMs on this bridge, else every VM port —
 *            never another tunnel (split horizon, as the daemons' VXLAN mesh).
 *
 * Every flow carries one cookie: VNET_COOKIE_TAG in the top 16 bits, the
 * host's rules version in the next 32, and 16 bits of a digest of the whole
 * flow set (which also depends on the bridge's ports), so equal cookies mean
 * equal flows. Installing a set adds the flows the switch lacks with this
 * cookie (an add over an identical match replaces the flow and keeps its
 * counters); the flows of any other vnet cookie are stale and swept by a
 * cookie-masked delete. Flows without vnet's tag are left alone.
 */

export const TABLE_CLASSIFY = 0;
export const TABLE_FROM_VM = 1;
export const TABLE_FROM_TUNNEL = 2;

/** 'vn' in the cookie's top 16 bits marks vnet's flows. */
export const VNET_COOKIE_TAG = 0x766en << 48n;
export const VNET_COOKIE_TAG_MASK = 0xffffn << 48n;
const ALL_ONES = 0xffffffffffffffffn;

/** Priorities: a controller rule sits above RULE_PRIORITY_BASE by its own priority; VMs here below; flooding last. */
export const RULE_PRIORITY_BASE = 1000;
export const LOCAL_VM_PRIORITY = 500;
export const COUNTED_PAIR_PRIORITY = 100;
export const CLASSIFY_PRIORITY = 50;
export const FLOOD_PRIORITY = 0;

export interface OvsForwardingInput {
  host: string;
  /** VM ports on the bridge: the VM's MAC, the port's name and OpenFlow number. */
  vmPorts: ReadonlyArray<{ mac: string; name: string; ofport: number }>;
  /** Tunnel ports by peer host id. */
  tunnels: ReadonlyMap<string, number>;
  /** The hub (floods from VMs go to its tunnel). */
  hub: string | undefined;
  /** The controller's rules for this host and their version (reconcile.ts). */
  rules: readonly RuleSpec[];
  rulesVersion: number;
  /** Every VM's MAC in the registry: the destinations of the counted pairs. */
  vmMacs: readonly string[];
}

export interface FlowSpec {
  tableId: number;
  priority: number;
  match: Match;
  instructions: Instruction[];
}

export interface DesiredFlows {
  cookie: bigint;
  flows: FlowSpec[];
  /** Rules that could not become a flow, and why (logged by the caller). */
  skipped: Array<{ rule: string; why: string }>;
}

const output = (ports: readonly number[]): Instruction[] => (ports.length === 0 ? [] : [{ type: 'apply-actions', actions: ports.map((port): Action => ({ type: 'output', port })) }]);
const gotoTable = (tableId: number): Instruction[] => [{ type: 'goto-table', tableId }];

/** The flows a host should hold, and their cookie. */
export function desiredFlows(input: OvsForwardingInput): DesiredFlows {
  const flows: FlowSpec[] = [];
  const skipped: DesiredFlows['skipped'] = [];
  const vmPorts = [...input.vmPorts].sort((a, b) => a.ofport - b.ofport);
  const local = vmPorts.map((p) => p.ofport);
  const hubTunnel = input.hub === undefined ? undefined : input.tunnels.get(input.hub);
  const floodFromVm = hubTunnel === undefined ? local : [...local, hubTunnel];
  const tunnels = [...input.tunnels].sort((a, b) => a[1] - b[1]);

  for (const p of vmPorts) {
    flows.push({ tableId: TABLE_FROM_TUNNEL, priority: LOCAL_VM_PRIORITY, match: { ethDst: p.mac }, instructions: output([p.ofport]) });
  }
  flows.push({ tableId: TABLE_FROM_TUNNEL, priority: FLOOD_PRIORITY, match: {}, instructions: output(local) });

  for (const r of input.rules) {
    const flow = ruleFlow(r, input, floodFromVm, vmPorts);
    if (typeof flow === 'string') skipped.push({ rule: r.id, why: flow });
    else flows.push(flow);
  }
  for (const p of vmPorts) {
    flows.push({ tableId: TABLE_FROM_VM, priority: LOCAL_VM_PRIORITY, match: { ethDst: p.mac }, instructions: output([p.ofport]) });
  }
  flows.push({ tableId: TABLE_FROM_VM, priority: FLOOD_PRIORITY, match: {}, instructions: output(floodFromVm) });

  const destinations = [...new Set(input.vmMacs)].sort();
  for (const p of vmPorts) {
    for (const dst of destinations) {
      if (dst === p.mac) continue;
      flows.push({ tableId: TABLE_CLASSIFY, priority: COUNTED_PAIR_PRIORITY, match: { inPort: p.ofport, ethSrc: p.mac, ethDst: dst }, instructions: gotoTable(TABLE_FROM_VM) });
    }
    flows.push({ tableId: TABLE_CLASSIFY, priority: CLASSIFY_PRIORITY, match: { inPort: p.ofport, ethSrc: p.mac }, instructions: gotoTable(TABLE_FROM_VM) });
  }
  for (const [, ofport] of tunnels) {
    flows.push({ tableId: TABLE_CLASSIFY, priority: CLASSIFY_PRIORITY, match: { inPort: ofport }, instructions: gotoTable(TABLE_FROM_TUNNEL) });
  }

  const digest = createHash('sha256').update(flows.map(flowLine).join('\n')).digest();
  const version = BigInt(input.rulesVersion >>> 0);
  return { cookie: VNET_COOKIE_TAG | (version << 16n) | BigInt(digest.readUInt16BE(0)), flows, skipped };
}

/** One rule as a table-1 flow, or why it cannot be one. */
function ruleFlow(r: RuleSpec, input: OvsForwardingInput, flood: readonly number[], vmPorts: OvsForwardingInput['vmPorts']): FlowSpec | string {
  const match: Match = {};
  for (const [field, value] of [['ethSrc', r.src], ['ethDst', r.dst]] as const) {
    if (value === 'any') continue;
    if (value.startsWith('!')) return `a "not" match (${field} ${value}) has no OpenFlow form`;
    match[field] = value.toLowerCase();
  }
  let ports: readonly number[];
  const a = r.action;
  if (a === 'drop') ports = [];
  else if (a === 'flood') ports = flood;
  else if ('link' in a) {
    const tunnel = input.tunnels.get(a.link);
    if (tunnel === undefined) return `no tunnel port to ${a.link} (it has no vtep, or the port is not up yet): its frames flood to the hub`;
    ports = [tunnel];
  } else {
    const port = vmPorts.find((p) => p.name === a.port);
    if (port === undefined) return `no port ${a.port} on the bridge`;
    ports = [port.ofport];
  }
  return { tableId: TABLE_FROM_VM, priority: RULE_PRIORITY_BASE + r.priority, match, instructions: output(ports) };
}

/** A flow's identity on a switch: table, priority and match (what an add replaces). */
export function flowKey(f: { tableId: number; priority: number; match: Match }): string {
  const m = f.match;
  const part = (v: unknown): string => {
    if (v === undefined) return '';
    if (typeof v === 'object' && v !== null) {
      const { value, mask } = v as { value?: unknown; mask?: unknown };
      return `${String(value)}/${String(mask)}`;
    }
    return String(v);
  };
  const extra = Object.keys(m).filter((k) => k !== 'inPort' && k !== 'ethSrc' && k !== 'ethDst' && (k !== 'other' || (m.other?.length ?? 0) > 0));
  return `${f.tableId}/${f.priority}/in=${part(m.inPort)}/src=${part(m.ethSrc)}/dst=${part(m.ethDst)}${extra.length > 0 ? `/+${extra.sort().join(',')}` : ''}`;
}

function flowLine(f: FlowSpec): string {
  return `${flowKey(f)}\t${JSON.stringify(f.instructions)}`;
}

export function isVnetCookie(cookie: bigint): boolean {
  return (cookie & VNET_COOKIE_TAG_MASK) === VNET_COOKIE_TAG;
}

/** The rules version a vnet cookie carries. */
export function cookieVersion(cookie: bigint): number {
  return Number((cookie >> 16n) & 0xffffffffn);
}

export interface FlowSync {
  /** Flow adds (the flows the switch lacks with the desired cookie), to send before a barrier. */
  adds: OfMessage[];
  /** Cookie-masked deletes of every other vnet cookie, to send after the adds are in place. */
  sweep: OfMessage[];
  kept: number;
  staleCookies: bigint[];
}

/** What brings a switch holding `installed` to `desired`. */
export function planFlowSync(desired: DesiredFlows, installed: readonly Pick<FlowStats, 'tableId' | 'priority' | 'match' | 'cookie'>[]): FlowSync {
  const have = new Set(installed.filter((f) => f.cookie === desired.cookie).map(flowKey));
  const adds: OfMessage[] = [];
  let kept = 0;
  // Tables 2, 1, then 0: a classifier never points at a table still being filled.
  const order = [...desired.flows].sort((a, b) => b.tableId - a.tableId);
  for (const f of order) {
    if (have.has(flowKey(f))) {
      kept++;
      continue;
    }
    adds.push(flowMod({ command: 'add', cookie: desired.cookie, tableId: f.tableId, priority: f.priority, match: f.match, instructions: f.instructions }));
  }
  const staleCookies = [...new Set(installed.map((f) => f.cookie).filter((c) => isVnetCookie(c) && c !== desired.cookie))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const sweep = staleCookies.map((cookie) => flowMod({ command: 'delete', cookie, cookieMask: ALL_ONES, tableId: OFPTT_ALL, outPort: OFPP.any }));
  return { adds, sweep, kept, staleCookies };
}
