import { isIPv4, isIPv6 } from 'node:net';
import { fromMap, fromSet, namedUuid, optionalInteger, toMap, toSet, uuid, uuidOf } from './datum.ts';
import { OvsdbRequestError } from './errors.ts';
import type { OvsdbClient, OvsdbOperation, TableUpdates } from './ovsdb-client.ts';

/**
 * What vnet asks of Open vSwitch's database (schema Open_vSwitch), each one
 * transaction: create a bridge (userspace datapath by default, OpenFlow 1.3,
 * fail_mode secure, its controllers), set its controllers, add and remove
 * VXLAN tunnel ports, and read the bridge's ports with the `external_ids`
 * that say which VM is behind each (`iface-id`, `attached-mac`, as
 * OpenStack and OVN set them). Inputs are checked before anything is sent;
 * a name or address that cannot be right is an OvsdbRequestError.
 */

export const VSWITCH_DB = 'Open_vSwitch';

/** An interface name as the kernel takes it: 1–15 bytes, no '/', whitespace or ':'. */
const NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
/** OpenFlow controller targets OVS accepts: tcp:IP[:PORT], ssl:IP[:PORT], unix:PATH, ptcp:…, pssl:…. */
const TARGET_RE = /^(?:(?:tcp|ssl):(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])(?::\d{1,5})?|(?:ptcp|pssl):\d{0,5}(?::[0-9a-fA-F.:[\]]+)?|unix:\/\S+|punix:\/\S+)$/;

function checkName(name: string, what: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new OvsdbRequestError(`${what} "${String(name)}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
}

function checkTargets(targets: readonly string[]): void {
  for (const t of targets) if (typeof t !== 'string' || !TARGET_RE.test(t)) throw new OvsdbRequestError(`controller target "${String(t)}" is not tcp:IP:PORT, ssl:IP:PORT or unix:PATH`);
}

export interface BridgeSpec {
  name: string;
  /** Default 'netdev' (the userspace datapath: no kernel module). */
  datapathType?: 'netdev' | 'system';
  /** Controller targets, e.g. tcp:127.0.0.1:6653. */
  controllers?: readonly string[];
  /** Default 'secure': without a controller the bridge forwards nothing rather than acting as a learning switch. */
  failMode?: 'secure' | 'standalone';
  externalIds?: Record<string, string>;
}

/** Create a bridge with its LOCAL port; fails (OvsdbTransactionError, nothing written) if one of that name exists. */
export async function createBridge(client: OvsdbClient, spec: BridgeSpec): Promise<string> {
  checkName(spec.name, 'bridge name');
  const controllers = spec.controllers ?? [];
  checkTargets(controllers);
  const ops: OvsdbOperation[] = [
    { op: 'wait', table: 'Bridge', where: [['name', '==', spec.name]], columns: ['name'], until: '==', rows: [], timeout: 0 },
    { op: 'insert', table: 'Interface', row: { name: spec.name, type: 'internal' }, 'uuid-name': 'iface' },
    { op: 'insert', table: 'Port', row: { name: spec.name, interfaces: namedUuid('iface') }, 'uuid-name': 'port' },
    ...controllers.map((target, i) => ({ op: 'insert', table: 'Controller', row: { target }, 'uuid-name': `ctl${i}` })),
    {
      op: 'insert',
      table: 'Bridge',
      'uuid-name': 'bridge',
      row: {
        name: spec.name,
        ports: namedUuid('port'),
        datapath_type: spec.datapathType ?? 'netdev',
        fail_mode: spec.failMode ?? 'secure',
        protocols: toSet(['OpenFlow13']),
        controller: toSet(controllers.map((_, i) => namedUuid(`ctl${i}`))),
        external_ids: toMap(spec.externalIds ?? {}),
      },
    },
    { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', toSet([namedUuid('bridge')])]] },
  ];
  const results = await client.transact(VSWITCH_DB, ops, `create bridge ${spec.name} (does it exist already?)`);
  return uuidOf(results[results.length - 2]?.uuid) ?? '';
}

/** Replace the bridge's controllers (an empty list removes them). */
export async function setControllers(client: OvsdbClient, bridge: string, targets: readonly string[]): Promise<void> {
  checkName(bridge, 'bridge name');
  checkTargets(targets);
  await requireBridge(client, bridge);
  await client.transact(
    VSWITCH_DB,
    [
      ...targets.map((target, i) => ({ op: 'insert', table: 'Controller', row: { target }, 'uuid-name': `ctl${i}` })),
      { op: 'update', table: 'Bridge', where: [['name', '==', bridge]], row: { controller: toSet(targets.map((_, i) => namedUuid(`ctl${i}`))) } },
    ],
    `set the controllers of bridge ${bridge}`,
  );
}

export interface VxlanPortSpec {
  name: string;
  /** The other host's tunnel endpoint. */
  remoteIp: string;
  /** The VNI (RFC 7348: 24 bits). */
  vni: number;
  localIp?: string;
  /** UDP destination port (default 4789). */
  dstPort?: number;
  /** Ask for this OpenFlow port number. */
  ofport?: number;
  externalIds?: Record<string, string>;
}

/** Add a VXLAN tunnel port to the bridge. */
export async function addVxlanPort(client: OvsdbClient, bridge: string, spec: VxlanPortSpec): Promise<void> {
  checkName(bridge, 'bridge name');
  checkName(spec.name, 'port name');
  const ip = (s: string | undefined, what: string): void => {
    if (s !== undefined && !isIPv4(s) && !isIPv6(s)) throw new OvsdbRequestError(`${what} "${s}" is not an IP address`);
  };
  ip(spec.remoteIp, 'VXLAN remote_ip');
  ip(spec.localIp, 'VXLAN local_ip');
  if (!Number.isInteger(spec.vni) || spec.vni < 0 || spec.vni > 0xffffff) throw new OvsdbRequestError(`VXLAN VNI ${spec.vni} is not in 0..16777215`);
  if (spec.dstPort !== undefined && (!Number.isInteger(spec.dstPort) || spec.dstPort < 1 || spec.dstPort > 65535)) throw new OvsdbRequestError(`VXLAN dst_port ${spec.dstPort} is not a UDP port`);
  if (spec.ofport !== undefined && (!Number.isInteger(spec.ofport) || spec.ofport < 1 || spec.ofport > 65279)) throw new OvsdbRequestError(`ofport ${spec.ofport} is not in 1..65279`);
  const options: Record<string, string> = { remote_ip: spec.remoteIp, key: String(spec.vni) };
  if (spec.localIp !== undefined) options.local_ip = spec.localIp;
  if (spec.dstPort !== undefined) options.dst_port = String(spec.dstPort);
  await requireBridge(client, bridge);
  const row: Record<string, unknown> = { name: spec.name, type: 'vxlan', options: toMap(options), external_ids: toMap(spec.externalIds ?? {}) };
  if (spec.ofport !== undefined) row.ofport_request = spec.ofport;
  await client.transact(
    VSWITCH_DB,
    [
      { op: 'wait', table: 'Interface', where: [['name', '==', spec.name]], columns: ['name'], until: '==', rows: [], timeout: 0 },
      { op: 'insert', table: 'Interface', row, 'uuid-name': 'iface' },
      { op: 'insert', table: 'Port', row: { name: spec.name, interfaces: namedUuid('iface') }, 'uuid-name': 'port' },
      { op: 'mutate', table: 'Bridge', where: [['name', '==', bridge]], mutations: [['ports', 'insert', toSet([namedUuid('port')])]] },
    ],
    `add VXLAN port ${spec.name} to bridge ${bridge} (does the name exist already?)`,
  );
}

/** Remove a port (and its interfaces, by OVSDB's garbage collection) from the bridge. */
export async function removePort(client: OvsdbClient, bridge: string, port: string): Promise<void> {
  checkName(bridge, 'bridge name');
  checkName(port, 'port name');
  const [rows] = await client.transact(VSWITCH_DB, [{ op: 'select', table: 'Port', where: [['name', '==', port]], columns: ['_uuid'] }], `find port ${port}`);
  const id = uuidOf((rows?.rows as { _uuid: unknown }[] | undefined)?.[0]?._uuid);
  if (id === undefined) throw new OvsdbRequestError(`bridge ${bridge} has no port ${port}`);
  await client.transact(VSWITCH_DB, [{ op: 'mutate', table: 'Bridge', where: [['name', '==', bridge]], mutations: [['ports', 'delete', toSet([uuid(id)])]] }], `remove port ${port} from bridge ${bridge}`);
}

export interface BridgePort {
  name: string;
  /** The interface type: '' or 'system' for a device, 'internal', 'vxlan', 'tap', … */
  type: string;
  /** The OpenFlow port number, once ovs-vswitchd has assigned it (-1: it failed). */
  ofport: number | undefined;
  macInUse: string | undefined;
  /** `iface-id` (the VM's port id), `attached-mac` (the VM's MAC), `vm-uuid`, … */
  externalIds: Record<string, string>;
  options: Record<string, string>;
}

/** The bridge's ports (one interface each: bonds are not vnet's), read in one transaction. */
export async function readBridgePorts(client: OvsdbClient, bridge: string): Promise<BridgePort[]> {
  checkName(bridge, 'bridge name');
  const [b, p, i] = await client.transact(
    VSWITCH_DB,
    [
      { op: 'select', table: 'Bridge', where: [['name', '==', bridge]], columns: ['ports'] },
      { op: 'select', table: 'Port', where: [], columns: ['_uuid', 'interfaces'] },
      { op: 'select', table: 'Interface', where: [], columns: ['_uuid', 'name', 'type', 'ofport', 'mac_in_use', 'external_ids', 'options'] },
    ],
    `read the ports of bridge ${bridge}`,
  );
  const bridgeRow = (b?.rows as Record<string, unknown>[] | undefined)?.[0];
  if (bridgeRow === undefined) throw new OvsdbRequestError(`no bridge ${bridge}`);
  const ports = new Map((p?.rows as Record<string, unknown>[]).map((r) => [uuidOf(r._uuid), fromSet(r.interfaces).map(uuidOf)]));
  const ifaces = new Map((i?.rows as Record<string, unknown>[]).map((r) => [uuidOf(r._uuid), r]));
  const out: BridgePort[] = [];
  for (const portId of fromSet(bridgeRow.ports).map(uuidOf)) {
    for (const ifaceId of ports.get(portId) ?? []) {
      const r = ifaces.get(ifaceId);
      if (r !== undefined) out.push(interfaceRow(r));
    }
  }
  return out.sort((x, y) => x.name.localeCompare(y.name));
}

/** An Interface row (as selected or as monitored) in vnet's terms. */
export function interfaceRow(r: Record<string, unknown>): BridgePort {
  const [mac] = fromSet(r.mac_in_use);
  return {
    name: String(r.name),
    type: typeof r.type === 'string' ? r.type : '',
    ofport: optionalInteger(r.ofport),
    macInUse: typeof mac === 'string' ? mac : undefined,
    externalIds: fromMap(r.external_ids),
    options: fromMap(r.options),
  };
}

/** Interface changes as they happen: `onChange(name, row | undefined)` (undefined: deleted). Resolves with a cancel. */
export async function watchInterfaces(client: OvsdbClient, onChange: (name: string, port: BridgePort | undefined) => void): Promise<() => Promise<void>> {
  const columns = ['name', 'type', 'ofport', 'mac_in_use', 'external_ids', 'options'];
  const { cancel } = await client.monitor(VSWITCH_DB, { Interface: { columns, select: { initial: false, insert: true, delete: true, modify: true } } }, (updates: TableUpdates) => {
    for (const change of Object.values(updates.Interface ?? {})) {
      if (change.new !== undefined) onChange(String(change.new.name ?? change.old?.name), interfaceRow({ ...change.old, ...change.new }));
      else if (change.old !== undefined) onChange(String(change.old.name), undefined);
    }
  });
  return cancel;
}

async function requireBridge(client: OvsdbClient, bridge: string): Promise<void> {
  const [r] = await client.transact(VSWITCH_DB, [{ op: 'select', table: 'Bridge', where: [['name', '==', bridge]], columns: ['name'] }], `find bridge ${bridge}`);
  if (((r?.rows as unknown[] | undefined) ?? []).length === 0) throw new OvsdbRequestError(`no bridge ${bridge}`);
}
