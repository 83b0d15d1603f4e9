import type { BridgeDb, BridgeSetup, TunnelSpec } from '../../../src/controller/ovs/bridge-db.ts';
import { TUNNEL_PEER_KEY, tunnelPortName } from '../../../src/controller/ovs/bridge-db.ts';
import type { BridgePort } from '../../../src/ovsdb/vswitch.ts';

/**
 * The bridge database in memory (the OVSDB one's twin, bridge-db.ts): one
 * bridge's ports with OpenFlow numbers given at once (`numberLater` holds
 * them back, as ovs-vswitchd does for a moment), change callbacks, a lost
 * connection on demand. The test adds and removes VM ports as a hypervisor would.
 */
export class MemoryBridgeDb implements BridgeDb {
  setups: BridgeSetup[] = [];
  readonly ports_ = new Map<string, BridgePort>();
  readonly calls: string[] = [];
  #nextOfport = 1;
  #watchers: Array<() => void> = [];
  #lost: ((err: Error) => void) | undefined;
  closed = false;

  async ensureBridge(setup: BridgeSetup): Promise<void> {
    this.setups.push(setup);
  }

  async ports(_bridge: string): Promise<BridgePort[]> {
    return [...this.ports_.values()].map((p) => ({ ...p, externalIds: { ...p.externalIds }, options: { ...p.options } }));
  }

  async watch(onChange: () => void): Promise<void> {
    this.#watchers.push(onChange);
  }

  async addTunnel(_bridge: string, spec: TunnelSpec): Promise<void> {
    const name = tunnelPortName(spec.peer);
    this.calls.push(`add ${name} ${spec.peer} ${spec.remoteIp} key=${spec.vni} port=${spec.dstPort}`);
    this.ports_.set(name, { name, type: 'vxlan', ofport: this.#nextOfport++, macInUse: undefined, externalIds: { [TUNNEL_PEER_KEY]: spec.peer }, options: { remote_ip: spec.remoteIp, key: String(spec.vni) } });
    this.#changed();
  }

  async removePort(_bridge: string, name: string): Promise<void> {
    this.calls.push(`remove ${name}`);
    this.ports_.delete(name);
    this.#changed();
  }

  /** A hypervisor plugs a VM in: a port with `iface-id` and `attached-mac`. */
  addVmPort(name: string, mac: string, ifaceId = name): number {
    const ofport = this.#nextOfport++;
    this.ports_.set(name, { name, type: '', ofport, macInUse: undefined, externalIds: { 'iface-id': ifaceId, 'attached-mac': mac }, options: {} });
    this.#changed();
    return ofport;
  }

  removeVmPort(name: string): void {
    this.ports_.delete(name);
    this.#changed();
  }

  ofport(name: string): number | undefined {
    return this.ports_.get(name)?.ofport;
  }

  onLost(handler: (err: Error) => void): void {
    this.#lost = handler;
  }

  lose(): void {
    this.#lost?.(new Error('connection reset'));
  }

  close(): void {
    this.closed = true;
  }

  #changed(): void {
    for (const w of this.#watchers) w();
  }
}
