import type { DaemonFacts } from '../control/daemon-control.ts';
import { event, noEffects, type Effects } from './effects.ts';
import type { HostRecord, VmRecord } from './store/records.ts';
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
 */

export interface VmLearningInput {
  facts: DaemonFacts;
  /** Every VM of the registry. */
  vms: readonly VmRecord[];
  /** Every host with its last reported facts (before this report). */
  hosts: readonly HostRecord[];
}

export function planVmLearning(input: VmLearningInput, nowMs: number): Effects {
  const { facts } = input;
  const effects = noEffects();
  const byMac = new Map(input.vms.map((v) => [v.mac, v] as const));
  const portsOf = new Map(input.hosts.map((h) => [h.id, new Set(h.facts?.ports.map((p) => p.mac) ?? [])] as const));
  const put = (vm: VmRecord): void => {
    byMac.set(vm.mac, vm);
    effects.writes.push({ op: 'upsert-vm', vm });
    effects.events.push(event('vm-changed', { vm: vmView(vm) }));
  };
  const seen = new Set<string>();
  for (const p of facts.ports) {
    seen.add(p.mac);
    const vm = byMac.get(p.mac);
    if (vm === undefined) {
      put({ mac: p.mac, name: p.name, ip: p.ip, host: facts.hostId, state: 'running', source: 'learned', updatedMs: nowMs });
      effects.reconcile = 'VM location learned';
    } else if (vm.host !== facts.hostId && vm.state !== 'migrating' && !(vm.host !== undefined && portsOf.get(vm.host)?.has(p.mac) === true)) {
      // Seen here and no longer where the registry has it: it moved (a migration we were not told of).
      effects.logs.push({ level: 'info', fields: { vm: p.mac, from: vm.host, to: facts.hostId }, msg: 'VM seen on another host: re-homed' });
      put({ ...vm, ip: vm.ip ?? p.ip, host: facts.hostId, state: 'running', updatedMs: nowMs });
      effects.reconcile = 'VM location learned';
    } else if (vm.host === facts.hostId && vm.state !== 'running' && vm.state !== 'migrating') {
      put({ ...vm, ip: vm.ip ?? p.ip, state: 'running', updatedMs: nowMs });
    }
  }
  for (const vm of input.vms) {
    const now = byMac.get(vm.mac)!;
    if (now.host === facts.hostId && !seen.has(now.mac) && now.state === 'running') put({ ...now, state: 'stopped', updatedMs: nowMs });
  }
  return effects;
}
