import type { Placement } from './placement.ts';
import { fmt, hourOfDay, linearMoveCost, type MoveEstimate, type SchedulingInput, type SchedulingPolicy } from './scheduling.ts';

/**
 * Packing when load is light (Supercloud's resource oversubscription): each
 * host has CPUs and memory; each VM uses a share of its vCPUs that follows
 * the time of day (`load`, 24 hourly factors, UTC). A host that holds a VM
 * costs `hostCostPerHour`; CPU demand above `headroom` × a host's CPUs is
 * performance lost, costed at `overloadPerCpuHour` per vCPU-hour. The score
 * ($ over `horizonHours`, higher is better) is minus both. When demand falls
 * the scheduler empties hosts (a host evacuated is a group move: no single
 * move frees it) and counts the hosts freed; when it rises, overloaded hosts
 * shed VMs onto idle hosts again. Memory is never oversubscribed.
 */

export interface PackingParams {
  /** 24 hourly factors (UTC): the share of its vCPUs a VM uses at that hour. */
  readonly load: readonly number[];
  readonly hostCostPerHour: number | ReadonlyMap<string, number>;
  /** Share of a host's CPUs usable before performance suffers (0..1). */
  readonly headroom: number;
  readonly overloadPerCpuHour: number;
  readonly horizonHours: number;
  readonly perGiB: number;
  readonly perSecond: number;
}

export interface PackingState {
  readonly activeHosts: number;
  readonly hosts: number;
  readonly demandCpu: number;
  /** vCPUs of demand above the hosts' headroom. */
  readonly overloadCpu: number;
  readonly costPerHour: number;
}

export function loadAt(params: PackingParams, nowMs: number): number {
  return params.load[hourOfDay(nowMs)] ?? 0;
}

/** Hosts in use, demand and overload of a placement at `nowMs`. */
export function packingState(params: PackingParams, placement: Placement, input: SchedulingInput): PackingState {
  const f = loadAt(params, input.nowMs);
  const demand = new Map<string, number>();
  for (const [vm, host] of placement) demand.set(host, (demand.get(host) ?? 0) + (input.vms.get(vm)?.cpu ?? 0) * f);
  let overload = 0;
  let cost = 0;
  let total = 0;
  for (const h of input.hosts) {
    const d = demand.get(h.id);
    if (d === undefined) continue;
    total += d;
    overload += Math.max(0, d - params.headroom * h.cpu);
    cost += hostCost(params, h.id);
  }
  return { activeHosts: demand.size, hosts: input.hosts.length, demandCpu: total, overloadCpu: overload, costPerHour: cost + overload * params.overloadPerCpuHour };
}

function hostCost(params: PackingParams, host: string): number {
  const c = params.hostCostPerHour;
  return typeof c === 'number' ? c : (c.get(host) ?? 1);
}

export function packingPolicy(params: PackingParams): SchedulingPolicy {
  return {
    name: 'packing',
    unit: '$',
    oversubscribeCpu: true,
    evaluate(placement: Placement, input: SchedulingInput) {
      const s = packingState(params, placement, input);
      const now = packingState(params, input.placement, input);
      const freed = now.activeHosts - s.activeHosts;
      return {
        score: -s.costPerHour * params.horizonHours,
        notes: [
          `${s.activeHosts} of ${s.hosts} hosts active${freed > 0 ? ` (${freed} freed)` : freed < 0 ? ` (${-freed} more)` : ''}`,
          `demand ${fmt(s.demandCpu)} vCPU at load ${fmt(loadAt(params, input.nowMs))}, ${fmt(s.overloadCpu)} vCPU over headroom`,
        ],
      };
    },
    moveCost(_vm: string, _from: string, _to: string, e: MoveEstimate) {
      return linearMoveCost(e, params.perGiB, params.perSecond);
    },
    explain(vm, from, to, input) {
      const s = packingState(params, input.placement, input);
      const demandOn = (host: string): number => {
        let d = 0;
        for (const [v, h] of input.placement) if (h === host) d += (input.vms.get(v)?.cpu ?? 0) * loadAt(params, input.nowMs);
        return d;
      };
      const cap = (host: string): number => input.hosts.find((h) => h.id === host)?.cpu ?? 0;
      const src = `${from} ${fmt(demandOn(from))}/${fmt(params.headroom * cap(from))} vCPU`;
      const dst = `${to} ${fmt(demandOn(to))}/${fmt(params.headroom * cap(to))} vCPU`;
      return s.overloadCpu > 0 && demandOn(from) > params.headroom * cap(from)
        ? `spread ${vm}: ${src} is over its headroom, ${dst}`
        : `pack ${vm}: load ${fmt(loadAt(params, input.nowMs))}, ${src} onto ${dst}`;
    },
  };
}
