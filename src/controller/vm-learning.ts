import type { DaemonFacts } from '../control/daemon-control.ts';
import { event, noEffects, type Effects } from './effects.ts';
import type { VmRecord } from './store/records.ts';
import type { ControllerStore } from './store/store.ts';
import { vmView } from './views.ts';

/**
 * VM learning: the VMs a daemon's facts show on its ports, against the
 * registry. Pure: the registry's VMs and hosts in, store writes and
 * `vm-changed` events out, and a reconcile when a VM's placement changed.
 *
 *   port MAC not in the registry            → registered here, running   (placement changed)
 *   registered on another host, not pinned
 *     by a migration, and no longer
 *     reported there                        → re-homed here, running     (placement changed)
 *   registered here, not running            → running
 *   registered here, running, no port       → stopped
 *
 * A VM that both ends still report (around a migration cutover) stays where
 * the registry has it.
 *
 * Cost per report: one lookup per reported port, the VMs registered on the
 * reporting host, and the last facts of a host a VM is re-homed from — never
 * a scan of every VM, so a facts report costs what that host holds, not
 * hosts × VMs (the registry is read through `VmLookup`, indexed lookups).
 */

/** The registry as VM learning reads it: indexed lookups only. */
export interface VmLookup {
  vm(mac: string): VmRecord | undefined;
  /** The VMs the registry places on a host. */
  vmsOn(host: string): readonly VmRecord[];
  /** The MACs of a host's ports in its last reported facts (before this report). */
  reportedPorts(host: string): ReadonlySet<string>;
}

export interface VmLearningInput {
  facts: DaemonFacts;
  registry: VmLookup;
}

/** The store's indexes as a VmLookup (the primary key, vms_host, the host row). */
export function storeVmLookup(store: ControllerStore): VmLookup {
  return {
    vm: (mac) => store.getVm(mac),
    vmsOn: (host) => store.listVmsOnHost(host),
    reportedPorts: (host) => new Set(store.getHost(host)?.facts?.ports.map((p) => p.mac) ?? []),
  };
}

export function planVmLearning(input: VmLearningInput, nowMs: number): Effects {
  const { facts, registry } = input;
  const effects = noEffects();
  /** The VMs written by this plan, over the registry. */
  const byMac = new Map<string, VmRecord>();
  const portsOf = new Map<string, ReadonlySet<string>>();
  const reported = (host: string, mac: string): boolean => {
    let ports = portsOf.get(host);
    if (ports === undefined) portsOf.set(host, (ports = registry.reportedPorts(host)));
    return ports.has(mac);
  };
  const put = (vm: VmRecord): void => {
    byMac.set(vm.mac, vm);
    effects.writes.push({ op: 'upsert-vm', vm });
    effects.events.push(event('vm-changed', { vm: vmView(vm) }));
  };
  const seen = new Set<string>();
  for (const p of facts.ports) {
    seen.add(p.mac);
    const vm = byMac.get(p.mac) ?? registry.vm(p.mac);
    if (vm === undefined) {
      put({ mac: p.mac, name: p.name, ip: p.ip, host: facts.hostId, state: 'running', source: 'learned', updatedMs: nowMs });
      effects.reconcile = 'VM location learned';
    } else if (vm.host !== facts.hostId && vm.state !== 'migrating' && !(vm.host !== undefined && reported(vm.host, p.mac))) {
      // Seen here and no longer where the registry has it: it moved (a migration we were not told of).
      effects.logs.push({ level: 'info', fields: { vm: p.mac, from: vm.host, to: facts.hostId }, msg: 'VM seen on another host: re-homed' });
      put({ ...vm, ip: vm.ip ?? p.ip, host: facts.hostId, state: 'running', updatedMs: nowMs });
      effects.reconcile = 'VM location learned';
    } else if (vm.host === facts.hostId && vm.state !== 'running' && vm.state !== 'migrating') {
      put({ ...vm, ip: vm.ip ?? p.ip, state: 'running', updatedMs: nowMs });
    }
  }
  for (const vm of registry.vmsOn(facts.hostId)) {
    const now = byMac.get(vm.mac) ?? vm;
    if (now.host === facts.hostId && !seen.has(now.mac) && now.state === 'running') put({ ...now, state: 'stopped', updatedMs: nowMs });
  }
  return effects;
}
