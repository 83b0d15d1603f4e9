import { trafficLatencyScore, type Placement } from './placement.ts';
import { formatRate } from './rate-format.ts';
import { fmt, linearMoveCost, type MoveEstimate, type SchedulingInput, type SchedulingPolicy } from './scheduling.ts';
import { keyDst, keySrc } from './vm-registry.ts';

/**
 * Placement advice's own score as a scheduling policy: minus the sum over
 * VM pairs of traffic × latency between their hosts (bytes/s × ms). Chosen
 * in the deployment file, it gets what advice lacks: every host is tried
 * (not only the partners' hosts), capacity is the hosts' memory and CPUs
 * (not "no more VMs than the busiest host"), and when every host is full a
 * swap or a group move is found where no single move fits. Move cost:
 * `perGiB` and `perSecond` in the score's unit.
 */

export interface TrafficLatencyParams {
  readonly perGiB: number;
  readonly perSecond: number;
}

const EMPTY = { ids: [], rates: new Map<number, number>() };

export function trafficLatencyPolicy(params: TrafficLatencyParams): SchedulingPolicy {
  const context = (input: SchedulingInput) => ({ traffic: input.traffic ?? EMPTY, latencyMs: input.latencyMs, hosts: input.hosts.map((h) => h.id) });
  return {
    name: 'traffic-latency',
    unit: 'B/s·ms',
    evaluate(placement: Placement, input: SchedulingInput) {
      const score = trafficLatencyScore(placement, context(input));
      return { score, notes: [`traffic × latency between the VMs' hosts: ${fmt(-score)} B/s·ms`] };
    },
    moveCost(_vm: string, _from: string, _to: string, e: MoveEstimate) {
      return linearMoveCost(e, params.perGiB, params.perSecond);
    },
    explain(vm, from, to, input) {
      const m = input.traffic ?? EMPTY;
      let near = 0;
      const names: string[] = [];
      for (const [key, rate] of m.rates) {
        const a = m.ids[keySrc(key, m.ids.length)]!;
        const b = m.ids[keyDst(key, m.ids.length)]!;
        const partner = a === vm ? b : b === vm ? a : undefined;
        if (partner === undefined || input.placement.get(partner) !== to) continue;
        near += rate;
        if (!names.includes(partner)) names.push(partner);
      }
      return names.length === 0
        ? `its traffic crosses lower-latency paths from ${to} than from ${from}`
        : `its ${formatRate(near)} with ${names.sort().join(', ')} on ${to} would cross ${input.latencyMs(to, to)} ms instead of ${input.latencyMs(from, to)} ms`;
    },
  };
}
