import { createHash } from 'node:crypto';
import { toMap, toSet } from '../../ovsdb/datum.ts';
import { OvsdbClient } from '../../ovsdb/ovsdb-client.ts';
import { addVxlanPort, createBridge, readBridgePorts, removePort, setControllers, VSWITCH_DB, watchInterfaces, type BridgePort } from '../../ovsdb/vswitch.ts';
import type { OvsdbTargetSpec } from './ovs-deployment.ts';

/**
 * What an OVS host's agent asks of the switch's database: the bridge as vnet
 * needs it, its ports, their changes, and the VXLAN tunnel ports to peers.
 * One interface, two implementations: `OvsdbBridgeDb` (ovsdb-server, RFC
 * 7047, src/ovsdb) and the tests' in-memory one
 * (test/controller/ovs/memory-bridge-db.ts).
 *
 * vnet's tunnel ports are named `vnx` + 8 hex digits of the peer's host id
 * (interface names are at most 15 bytes, host ids 63) and carry the peer in
 * `external_ids:vnet-peer`, so a restarted controller finds them.
 */

export interface BridgeSetup {
  bridge: string;
  datapathType: 'netdev' | 'system';
  /** Written to other_config:datapath-id: the switch's OpenFlow connection is known by it. */
  datapathId: bigint;
  /** The controller target (tcp:IP:PORT or ssl:IP:PORT). */
  controller: string;
  /** The host id, in the bridge's external_ids:vnet-host. */
  host: string;
}

export interface TunnelSpec {
  peer: string;
  remoteIp: string;
  vni: number;
  dstPort: number;
}

export interface BridgeDb {
  /** Create the bridge, or bring an existing one in line: datapath type, fail_mode secure, OpenFlow 1.3, datapath id, the controller. */
  ensureBridge(setup: BridgeSetup): Promise<void>;
  ports(bridge: string): Promise<BridgePort[]>;
  /** Call `onChange` whenever an interface is added, changed or removed (then read `ports` again). */
  watch(onChange: () => void): Promise<void>;
  addTunnel(bridge: string, spec: TunnelSpec): Promise<void>;
  removePort(bridge: string, name: string): Promise<void>;
  /** Called once when the connection is lost (not after `close`). */
  onLost(handler: (err: Error) => void): void;
  close(): void;
}

export const TUNNEL_PEER_KEY = 'vnet-peer';

/** The tunnel port's name for a peer host. */
export function tunnelPortName(peer: string): string {
  return `vnx${createHash('sha256').update(peer).digest('hex').slice(0, 8)}`;
}

/** A stable datapath id for a host's bridge: 48 bits of a digest, 'vn' on top (never 0). */
export function datapathIdOf(host: string): bigint {
  const digest = createHash('sha256').update(`vnet-ovs:${host}`).digest();
  return (0x766en << 48n) | BigInt(digest.readUIntBE(0, 6));
}

/** The bridge's database over an OVSDB connection. */
export class OvsdbBridgeDb implements BridgeDb {
  readonly #client: OvsdbClient;
  #lost: ((err: Error) => void) | undefined;
  #closing = false;

  private constructor(client: OvsdbClient) {
    this.#client = client;
    client.once('close', (err) => {
      if (!this.#closing) this.#lost?.(err ?? new Error('OVSDB connection closed'));
    });
  }

  /** `tls`: the deployment's CA and the controller's certificate, for an `ssl:` target. */
  static async connect(target: OvsdbTargetSpec, tls: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer }, timeoutMs = 10_000): Promise<OvsdbBridgeDb> {
    const to = 'path' in target ? { path: target.path } : { host: target.host, port: target.port, ...(target.ssl ? { tls } : {}) };
    return new OvsdbBridgeDb(await OvsdbClient.connect(to, { timeoutMs }));
  }

  async ensureBridge(s: BridgeSetup): Promise<void> {
    const dpid = s.datapathId.toString(16).padStart(16, '0');
    const [found] = await this.#client.transact(VSWITCH_DB, [{ op: 'select', table: 'Bridge', where: [['name', '==', s.bridge]], columns: ['name'] }], `find bridge ${s.bridge}`);
    if (((found?.rows as unknown[] | undefined) ?? []).length === 0) {
      await createBridge(this.#client, { name: s.bridge, datapathType: s.datapathType, failMode: 'secure', controllers: [s.controller], externalIds: { 'vnet-host': s.host } });
    } else {
      await setControllers(this.#client, s.bridge, [s.controller]);
    }
    await this.#client.transact(VSWITCH_DB, [
      {
        op: 'update', table: 'Bridge', where: [['name', '==', s.bridge]],
        row: { datapath_type: s.datapathType, fail_mode: 'secure', protocols: toSet(['OpenFlow13']) },
      },
      {
        op: 'mutate', table: 'Bridge', where: [['name', '==', s.bridge]],
        mutations: [['other_config', 'delete', toSet(['datapath-id'])], ['external_ids', 'delete', toSet(['vnet-host'])]],
      },
      {
        op: 'mutate', table: 'Bridge', where: [['name', '==', s.bridge]],
        mutations: [['other_config', 'insert', toMap({ 'datapath-id': dpid })], ['external_ids', 'insert', toMap({ 'vnet-host': s.host })]],
      },
    ], `set up bridge ${s.bridge} for vnet`);
  }

  ports(bridge: string): Promise<BridgePort[]> {
    return readBridgePorts(this.#client, bridge);
  }

  async watch(onChange: () => void): Promise<void> {
    await watchInterfaces(this.#client, () => onChange());
  }

  addTunnel(bridge: string, spec: TunnelSpec): Promise<void> {
    return addVxlanPort(this.#client, bridge, {
      name: tunnelPortName(spec.peer), remoteIp: spec.remoteIp, vni: spec.vni, dstPort: spec.dstPort, externalIds: { [TUNNEL_PEER_KEY]: spec.peer },
    });
  }

  removePort(bridge: string, name: string): Promise<void> {
    return removePort(this.#client, bridge, name);
  }

  onLost(handler: (err: Error) => void): void {
    this.#lost = handler;
  }

  close(): void {
    this.#closing = true;
    this.#client.close();
  }
}
