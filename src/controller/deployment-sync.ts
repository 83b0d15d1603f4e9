import type { ListenAddress } from '../control/daemon-control.ts';
import { hubOf, standbyHubOf, type Deployment } from './deployment-file.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * Bring the registry in line with a deployment file, as a diff, in one
 * transaction: hosts added, updated or removed; the backbone (every non-hub
 * host to the hub, and to the standby hub if there is one, plus the trunk
 * between the two hubs) made exactly what the deployment implies; VMs the file
 * names added. A VM already in the database keeps its host — a restarted
 * controller carries on from where the VMs are now (after migrations), not
 * from where the file first put them — but takes the file's name and IP
 * (and the file's host, if its host is no longer in the deployment).
 * Fast-path links (adaptation's and operators') are left alone, except those
 * to a removed host.
 */
export interface DeploymentSyncResult {
  hostsAdded: string[];
  hostsRemoved: string[];
  vmsAdded: string[];
  backboneChanged: boolean;
}

export function syncDeployment(store: ControllerStore, d: Readonly<Deployment>, nowMs: number): DeploymentSyncResult {
  return store.transaction(() => {
    const hub = hubOf(d).id;
    const standby = standbyHubOf(d)?.id;
    const before = new Set(store.listHosts().map((h) => h.id));
    const wanted = new Set(d.hosts.map((h) => h.id));
    const result: DeploymentSyncResult = { hostsAdded: [], hostsRemoved: [], vmsAdded: [], backboneChanged: false };
    for (const id of before) {
      if (!wanted.has(id)) {
        store.removeHost(id);
        result.hostsRemoved.push(id);
      }
    }
    for (const h of d.hosts) {
      const existing = store.getHost(h.id);
      const configured: ListenAddress[] = h.listen === undefined ? [] : [{ transport: h.listen.transport, host: h.listen.host, port: h.listen.port }];
      // An address the daemon reported wins over the configured one.
      const reported = existing?.facts?.listen;
      store.upsertHost({ id: h.id, site: h.site, role: h.hub || h.standbyHub ? 'hub' : 'spoke', addresses: reported !== undefined ? [reported] : configured });
      if (existing === undefined) result.hostsAdded.push(h.id);
    }
    const backbone = new Map<string, { a: string; b: string; reason: string }>();
    for (const h of d.hosts) {
      if (h.id === hub) continue;
      backbone.set(pair(h.id, hub), { a: h.id, b: hub, reason: h.id === standby ? `trunk between hubs ${hub} and ${standby}` : `star backbone to hub ${hub}` });
      if (standby !== undefined && h.id !== standby) backbone.set(pair(h.id, standby), { a: h.id, b: standby, reason: `standby backbone to hub ${standby}` });
    }
    for (const l of store.listLinks('backbone')) {
      if (!backbone.has(pair(l.a, l.b))) {
        store.deleteLink(l.a, l.b, 'backbone');
        result.backboneChanged = true;
      }
    }
    for (const l of backbone.values()) {
      if (store.putLink({ a: l.a, b: l.b, kind: 'backbone', requestedBy: 'deployment', reason: l.reason }, nowMs)) result.backboneChanged = true;
    }
    for (const vm of d.vms) {
      const existing = store.getVm(vm.mac);
      if (existing === undefined) {
        store.upsertVm({ mac: vm.mac, name: vm.name, ip: vm.ip, host: vm.host, state: 'unknown', source: 'deployment', updatedMs: nowMs });
        result.vmsAdded.push(vm.mac);
      } else if (existing.host !== undefined && !wanted.has(existing.host)) {
        // Its host left the deployment: back to where the file puts it.
        store.upsertVm({ ...existing, name: vm.name, ip: vm.ip, host: vm.host, state: 'unknown', updatedMs: nowMs });
      } else {
        store.upsertVm({ ...existing, name: vm.name, ip: vm.ip });
      }
    }
    return result;
  });
}

function pair(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
