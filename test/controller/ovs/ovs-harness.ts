import { Registry } from 'prom-client';
import { ManualClock } from '../../../src/common/clock.ts';
import { silentLogger } from '../../../src/common/logger.ts';
import { parseDeployment } from '../../../src/controller/deployment-file.ts';
import { datapathIdOf } from '../../../src/controller/ovs/bridge-db.ts';
import { cookieVersion, isVnetCookie } from '../../../src/controller/ovs/flow-plan.ts';
import { startController } from '../../../src/controller/runtime.ts';
import type { ControllerStore } from '../../../src/controller/store/store.ts';
import type { FlowStats } from '../../../src/openflow/multipart.ts';
import { waitFor } from '../../helpers/wait.ts';
import { testPki } from '../fixtures/test-pki.ts';
import { FlowTableSwitch } from './flow-table-switch.ts';
import { MemoryBridgeDb } from './memory-bridge-db.ts';

/**
 * A controller whose deployment has one OVS host (ovs1, a spoke) besides a
 * hub and a daemon host (h2), its bridge database in memory and its switch
 * a flow-table switch on the controller's OpenFlow port; the update period
 * on a manual clock.
 */
export const DEPLOYMENT = `
name: ovs-unit
controller: { openflow: { host: 127.0.0.1, port: 0, transport: tcp } }
sites: [{ id: s }]
hosts:
  - { id: hub, site: s, hub: true, vtep: 10.9.0.1 }
  - { id: h2, site: s, vtep: 10.9.0.2 }
  - { id: ovs1, site: s, vtep: 10.9.0.7, ovs: { ovsdb: "unix:/run/vnet-test/db.sock", bridge: br-vnet } }
vxlan: { vni: 4242 }
policy: { updatePeriodMs: 100, smoothingIntervalMs: 500, fastPathMinBytesPerSec: 10000 }
vms:
  - { name: vmA, mac: "02:00:00:00:00:0a", ip: 10.0.0.10, host: h2 }
  - { name: vmH, mac: "02:00:00:00:00:0b", ip: 10.0.0.11, host: hub }
`;
export const VM_A = '02:00:00:00:00:0a';
export const VM_H = '02:00:00:00:00:0b';
export const VM_O = '02:00:00:00:00:1e';
export const OVS_DPID = datapathIdOf('ovs1');

export interface Harness {
  controller: Awaited<ReturnType<typeof startController>>;
  registry: Registry;
  db: MemoryBridgeDb;
  clock: ManualClock;
  store: ControllerStore;
}

/**
 * A controller over `store` with the OVS host's database in memory; closed (and the store with it, when `last`) after the test.
 * `more`: another deployment text and the databases of other bridges, by bridge name.
 */
export async function start(
  t: { after(fn: () => Promise<void> | void): void }, store: ControllerStore, db = new MemoryBridgeDb(), last = true,
  more: { yaml?: string; dbs?: ReadonlyMap<string, MemoryBridgeDb> } = {},
): Promise<Harness> {
  const pki = testPki();
  const clock = new ManualClock();
  const registry = new Registry();
  const controller = await startController({
    logger: silentLogger(), registry, clock, store, ovsBridgeDb: async (b) => more.dbs?.get(b.bridge) ?? db,
    onError: (err) => { throw err; },
  }, {
    deployment: parseDeployment(more.yaml ?? DEPLOYMENT, 'ovs-unit.yaml'), control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000,
  });
  t.after(async () => {
    await controller.close();
    if (last) store.close();
  });
  return { controller, registry, db, clock, store };
}

export function connectSwitch(t: { after(fn: () => void): void }, h: Harness, initial: readonly FlowStats[] = []): FlowTableSwitch {
  const sw = new FlowTableSwitch(h.controller.openflowPort!, OVS_DPID, initial);
  t.after(() => sw.close());
  return sw;
}

export const outputs = (f: FlowStats | undefined): number[] =>
  (f?.instructions ?? []).flatMap((i) => (i.type === 'apply-actions' ? i.actions.flatMap((a) => (a.type === 'output' ? [a.port] : [])) : []));

export const flowTo = (sw: FlowTableSwitch, table: number, mac: string): FlowStats | undefined => sw.table(table).find((f) => f.match.ethDst === mac && f.match.ethSrc === undefined);

/** The controller's store and a switch whose flows are those of the host's current rules version (acknowledged). */
export async function settled(h: Harness, sw: FlowTableSwitch): Promise<number> {
  return waitFor(() => {
    const v = h.store.getVersions('ovs1');
    const acked = h.store.getHost('ovs1');
    const flows = [...sw.flows.values()].filter((f) => isVnetCookie(f.cookie));
    return v.rulesVersion > 0 && h.controller.loop.appliedVersions('ovs1')?.rulesVersion === v.rulesVersion && acked !== undefined
      && flows.length > 0 && flows.every((f) => cookieVersion(f.cookie) === v.rulesVersion) ? v.rulesVersion : undefined;
  }, 'the OVS host at its desired rules version');
}

