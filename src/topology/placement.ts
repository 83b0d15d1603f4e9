import { PlacementError } from './errors.ts';
import { formatList, formatRate } from './rate-format.ts';
import type { TrafficMatrix } from './traffic-matrix.ts';
import { keyDst, keySrc } from './vm-registry.ts';

/**
 * Placement advice (the Supercloud scheduler): an application's score
 * f(placement, traffic, latency) — by default the negative sum over VM pairs
 * of traffic × latency between their hosts, i.e. the bytes "in flight" on
 * slow paths — and a bounded local search that proposes moving VMs one at a
 * time (each move the best single move available, never a VM twice, never
 * over a host's capacity). The moves are proposed only if together they
 * beat the current score by more than the threshold T: a migration costs,
 * and small gains are not worth one. Finding the optimal VM→host mapping
 * is NP-hard; this is the greedy answer, with its gain stated.
 */

/** VM id → host. */
export type Placement = ReadonlyMap<string, string>;

/** Latency between two hosts in ms (symmetric; 0 for a host with itself is the usual convention). */
export type LatencyFn = (hostA: string, hostB: string) => number;

export interface PlacementContext {
  /** Smoothed VM×VM rates (bytes/s); its ids name the VMs. */
  readonly traffic: TrafficMatrix;
  readonly latencyMs: LatencyFn;
  /** Hosts VMs may be placed on. */
  readonly hosts: readonly string[];
}

/** An application-supplied score: higher is better. Must be pure and finite. */
export type ScoreFn = (placement: Placement, context: PlacementContext) => number;

export interface PlacementParams {
  /** T: the total score gain the moves must exceed (in score units; for the default, bytes/s × ms). */
  readonly threshold: number;
  /** Capacity: most VMs per host (one number for all, or per host; hosts missing from the map are unbounded). */
  readonly maxVmsPerHost: number | ReadonlyMap<string, number>;
  /** Most moves proposed (default 3). */
  readonly maxMoves?: number;
  /** Most score evaluations of a custom score (default 20,000). */
  readonly maxEvaluations?: number;
  /** Only the VMs with the most traffic are considered for moving (default 1,000). */
  readonly maxCandidateVms?: number;
  /** Application score; default trafficLatencyScore. */
  readonly score?: ScoreFn;
}

export interface PlacementMove {
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly gain: number;
  readonly reason: string;
}

export interface PlacementAdvice {
  readonly moves: readonly PlacementMove[];
  readonly scoreBefore: number;
  readonly scoreAfter: number;
  readonly gain: number;
  readonly reason: string;
  readonly evaluations: number;
}

/** Build a latency function from a table (either direction); missing pairs get `fallbackMs`, a host with itself 0. */
export function latencyFromTable(table: ReadonlyMap<string, ReadonlyMap<string, number>>, fallbackMs: number): LatencyFn {
  return (a, b) => (a === b ? 0 : (table.get(a)?.get(b) ?? table.get(b)?.get(a) ?? fallbackMs));
}

/** The default score: −Σ over directed VM pairs of rate × latency(host(src), host(dst)). */
export function trafficLatencyScore(placement: Placement, context: PlacementContext): number {
  let cost = 0;
  const { ids, rates } = context.traffic;
  for (const [key, rate] of rates) {
    const hs = placement.get(ids[keySrc(key, ids.length)]!);
    const hd = placement.get(ids[keyDst(key, ids.length)]!);
    if (hs === undefined || hd === undefined) continue;
    cost += rate * context.latencyMs(hs, hd);
  }
  return -cost;
}

function capacityOf(params: PlacementParams, host: string): number {
  const m = params.maxVmsPerHost;
  if (typeof m === 'number') return m;
  return m.get(host) ?? Number.POSITIVE_INFINITY;
}

/** Propose VM moves that raise the score by more than T, or none. Pure; bounded by the params. */
export function advisePlacement(current: Placement, context: PlacementContext, params: PlacementParams): PlacementAdvice {
  const hostSet = new Set(context.hosts);
  const load = new Map<string, number>();
  for (const [vm, host] of current) {
    if (!hostSet.has(host)) throw new PlacementError(`VM ${vm} is placed on unknown host ${host}`);
    load.set(host, (load.get(host) ?? 0) + 1);
  }
  const custom = params.score;
  const scoreOf = custom ?? trafficLatencyScore;
  const scoreBefore = scoreOf(current, context);
  if (!Number.isFinite(scoreBefore)) throw new PlacementError(`the score of the current placement is not finite (${scoreBefore})`);
  // Undirected neighbour lists: vm → (partner → bytes/s both ways).
  const { ids, rates } = context.traffic;
  const partners = new Map<string, Map<string, number>>();
  const total = new Map<string, number>();
  for (const [key, rate] of rates) {
    const a = ids[keySrc(key, ids.length)]!;
    const b = ids[keyDst(key, ids.length)]!;
    if (!current.has(a) || !current.has(b)) continue;
    for (const [x, y] of [[a, b], [b, a]] as const) {
      let m = partners.get(x);
      if (m === undefined) partners.set(x, (m = new Map()));
      m.set(y, (m.get(y) ?? 0) + rate);
      total.set(x, (total.get(x) ?? 0) + rate);
    }
  }
  const candidates = [...total].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).slice(0, params.maxCandidateVms ?? 1000).map(([vm]) => vm);
  const maxMoves = params.maxMoves ?? 3;
  const maxEvaluations = params.maxEvaluations ?? 20_000;
  const placement = new Map(current);
  const moved = new Set<string>();
  const moves: PlacementMove[] = [];
  let score = scoreBefore;
  let evaluations = 1;
  for (let step = 0; step < maxMoves; step++) {
    let best: { vm: string; from: string; to: string; gain: number } | undefined;
    for (const vm of candidates) {
      if (moved.has(vm)) continue;
      const from = placement.get(vm)!;
      // The default score can only improve by moving next to a partner; a custom score may prefer any host.
      const targets = custom === undefined ? new Set([...partners.get(vm)!.keys()].map((p) => placement.get(p)!)) : hostSet;
      for (const to of targets) {
        if (to === from || (load.get(to) ?? 0) + 1 > capacityOf(params, to)) continue;
        let gain: number;
        if (custom === undefined) {
          gain = 0;
          for (const [p, rate] of partners.get(vm)!) {
            const hp = placement.get(p)!;
            gain += rate * (context.latencyMs(from, hp) - context.latencyMs(to, hp));
          }
        } else {
          if (evaluations >= maxEvaluations) break;
          placement.set(vm, to);
          const s = custom(placement, context);
          placement.set(vm, from);
          evaluations++;
          gain = Number.isFinite(s) ? s - score : Number.NEGATIVE_INFINITY;
        }
        if (gain > 1e-9 * Math.max(1, Math.abs(score)) && (best === undefined || gain > best.gain)) best = { vm, from, to, gain };
      }
    }
    if (best === undefined) break;
    placement.set(best.vm, best.to);
    load.set(best.from, load.get(best.from)! - 1);
    load.set(best.to, (load.get(best.to) ?? 0) + 1);
    moved.add(best.vm);
    score += best.gain;
    moves.push({ ...best, reason: reasonFor(best, partners.get(best.vm), placement, context, custom !== undefined) });
  }
  const scoreAfter = custom === undefined ? trafficLatencyScore(placement, context) : score;
  const gain = scoreAfter - scoreBefore;
  if (moves.length === 0) {
    return { moves: [], scoreBefore, scoreAfter: scoreBefore, gain: 0, reason: 'no single move improves the score within capacity', evaluations };
  }
  if (!(gain > params.threshold)) {
    return {
      moves: [],
      scoreBefore,
      scoreAfter: scoreBefore,
      gain: 0,
      reason: `the best ${moves.length} move(s) found gain ${gain.toFixed(1)}, not more than the threshold T = ${params.threshold}`,
      evaluations,
    };
  }
  return { moves, scoreBefore, scoreAfter, gain, reason: `${moves.length} move(s) gain ${gain.toFixed(1)} > T = ${params.threshold}`, evaluations };
}

function reasonFor(
  move: { vm: string; from: string; to: string; gain: number },
  partners: ReadonlyMap<string, number> | undefined,
  placement: Placement,
  context: PlacementContext,
  custom: boolean,
): string {
  const head = `move ${move.vm} ${move.from}→${move.to} (score +${move.gain.toFixed(1)})`;
  if (custom || partners === undefined) return `${head}: the application score prefers it`;
  const near = [...partners].filter(([p]) => placement.get(p) === move.to);
  const rate = near.reduce((s, [, r]) => s + r, 0);
  if (near.length === 0) return `${head}: its traffic crosses lower-latency paths from ${move.to}`;
  const names = near.map(([p]) => p).sort();
  return `${head}: its ${formatRate(rate)} with ${formatList(names)} on ${move.to} would cross ${context.latencyMs(move.to, move.to)} ms instead of ${context.latencyMs(move.from, move.to)} ms`;
}
