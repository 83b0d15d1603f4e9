import type { Placement } from './placement.ts';
import { fmt, hourOfDay, linearMoveCost, type MoveEstimate, type SchedulingInput, type SchedulingPolicy } from './scheduling.ts';
import { keyDst, keySrc } from './vm-registry.ts';

/**
 * Follow the sun (Supercloud's ZooKeeper master): each service has a
 * primary VM whose clients are spread over the sites, with weights that
 * change with the time of day. The score is minus the client-weighted mean
 * RTT from the clients' sites to the primary's site, summed over services
 * (ms): the primary moves to where its clients are when the gain in latency,
 * held for `horizonHours`, beats the move's cost plus T.
 *
 * Client weights come from the deployment file (per site, 24 hourly values,
 * UTC) or are measured: the bytes/s that VMs on each site send to the
 * service's VMs (the traffic entering at that site, from the matrix).
 *
 * Move cost: `perSecond` ms of score per second the migration takes (the
 * clients see a slower primary while it copies and a pause at the end) and
 * `perGiB` per GiB sent, both over the horizon.
 */

export interface FollowTheSunService {
  readonly name: string;
  /** The VM that moves (the service's primary / master). */
  readonly primary: string;
  /** Other VMs of the service (measured clients exclude them). */
  readonly members: readonly string[];
}

export interface FollowTheSunParams {
  readonly services: readonly FollowTheSunService[];
  /** site → 24 hourly weights (UTC), or 'measured'. */
  readonly clients: ReadonlyMap<string, readonly number[]> | 'measured';
  /** How long a move's latency gain is counted for (hours; default 1). */
  readonly horizonHours: number;
  readonly perSecond: number;
  readonly perGiB: number;
}

export function followTheSunPolicy(params: FollowTheSunParams): SchedulingPolicy {
  const weightsAt = (input: SchedulingInput, service: FollowTheSunService): Map<string, number> =>
    params.clients === 'measured' ? measuredWeights(input, service) : clientWeightsAt(params.clients, input.nowMs);
  const siteOf = (input: SchedulingInput, host: string): string => input.hosts.find((h) => h.id === host)?.site ?? host;
  const meanRtt = (input: SchedulingInput, weights: ReadonlyMap<string, number>, site: string): number => {
    let sum = 0;
    let total = 0;
    for (const [s, w] of weights) {
      sum += w * input.siteRttMs(s, site);
      total += w;
    }
    return total > 0 ? sum / total : 0;
  };
  return {
    name: 'follow-the-sun',
    unit: 'ms',
    evaluate(placement: Placement, input: SchedulingInput) {
      let score = 0;
      const notes: string[] = [];
      for (const svc of params.services) {
        const host = placement.get(svc.primary);
        if (host === undefined) continue;
        const w = weightsAt(input, svc);
        const rtt = meanRtt(input, w, siteOf(input, host));
        score -= rtt * params.horizonHours;
        notes.push(`${svc.name}: primary ${svc.primary} on ${host}, clients ${describeWeights(w)} see ${fmt(rtt)} ms`);
      }
      return { score, notes };
    },
    moveCost(_vm: string, _from: string, _to: string, e: MoveEstimate) {
      return linearMoveCost(e, params.perGiB, params.perSecond);
    },
    explain(vm, from, to, input) {
      const svc = params.services.find((s) => s.primary === vm);
      if (svc === undefined) return `${vm} is no service's primary`;
      const w = weightsAt(input, svc);
      return `${svc.name}'s clients (${describeWeights(w)}) at ${hourOfDay(input.nowMs)}h UTC see ${fmt(meanRtt(input, w, siteOf(input, to)))} ms from ${siteOf(input, to)} instead of ${fmt(meanRtt(input, w, siteOf(input, from)))} ms from ${siteOf(input, from)}`;
    },
  };
}

/** The file's client weights per site at the hour (UTC) of `nowMs`. */
export function clientWeightsAt(table: ReadonlyMap<string, readonly number[]>, nowMs: number): Map<string, number> {
  const h = hourOfDay(nowMs);
  const out = new Map<string, number>();
  for (const [site, hours] of table) out.set(site, hours[h] ?? 0);
  return out;
}

/** Bytes/s sent to the service's VMs by VMs outside it, by the sender's site. */
function measuredWeights(input: SchedulingInput, service: FollowTheSunService): Map<string, number> {
  const out = new Map<string, number>();
  const m = input.traffic;
  if (m === undefined) return out;
  const inService = new Set([service.primary, ...service.members]);
  const siteOfHost = new Map(input.hosts.map((h) => [h.id, h.site]));
  for (const [key, rate] of m.rates) {
    const src = m.ids[keySrc(key, m.ids.length)]!;
    const dst = m.ids[keyDst(key, m.ids.length)]!;
    if (!inService.has(dst) || inService.has(src)) continue;
    const host = input.placement.get(src);
    const site = host === undefined ? undefined : siteOfHost.get(host);
    if (site !== undefined) out.set(site, (out.get(site) ?? 0) + rate);
  }
  return out;
}

/** "us 60%, asia 40%": each site's share of the clients, largest first; "none" without clients. */
export function describeWeights(weights: ReadonlyMap<string, number>): string {
  const total = [...weights.values()].reduce((s, w) => s + w, 0);
  if (total <= 0) return 'none';
  return [...weights].filter(([, w]) => w > 0).sort((a, b) => b[1] - a[1]).map(([s, w]) => `${s} ${Math.round((100 * w) / total)}%`).join(', ');
}
