import { PlacementError } from './errors.ts';
import type { LatencyFn, Placement } from './placement.ts';
import type { TrafficMatrix } from './traffic-matrix.ts';

/**
 * The scheduling framework (Supercloud's): the application gives a placement
 * evaluation function — Score = f(Placement, Workload, Latency), higher is
 * better — and a threshold T; the scheduler searches for a placement that
 * beats the current one by more than T *after* paying for the moves. A
 * policy (follow-the-sun.ts, spot-market.ts, packing.ts) is a pure function
 * of the deployment (hosts, sites, resources), the traffic matrix, the time
 * and its own inputs; the cost of a move comes from the migration engine's
 * own estimate of its bytes and seconds over that path (`estimate`), turned
 * into score units by the policy.
 *
 * Search, each step the best action whose net gain (score gain − move cost)
 * beats T, up to `maxActions` actions:
 *   1. single moves: every VM to every other host with room;
 *   2. only if no single move beats T: swaps of two VMs on different hosts
 *      (full hosts: neither move fits alone), and group moves — a host
 *      evacuated (each of its VMs to the host that scores best for it), or a
 *      policy's group moved together — where no one move gains on its own.
 * Memory is a hard limit per host; CPU too unless the policy oversubscribes
 * it (packing counts overload as lost performance instead). Everything is
 * bounded by `maxEvaluations` score evaluations.
 */

export interface SchedHost {
  readonly id: string;
  readonly site: string;
  /** vCPUs and memory the host offers (Infinity: unbounded). */
  readonly cpu: number;
  readonly memoryMiB: number;
}

export interface SchedVm {
  readonly id: string;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly diskGiB: number;
}

/** The migration engine's estimate for one VM over one path. */
export interface MoveEstimate {
  readonly bytes: number;
  readonly seconds: number;
}

export type MoveEstimator = (vm: string, from: string, to: string) => MoveEstimate;

export interface SchedulingInput {
  /** VM id → host now. */
  readonly placement: Placement;
  readonly hosts: readonly SchedHost[];
  readonly vms: ReadonlyMap<string, SchedVm>;
  /** Smoothed VM×VM rates (ids are VM ids), if any. */
  readonly traffic?: TrafficMatrix | undefined;
  readonly latencyMs: LatencyFn;
  /** RTT between two sites (a site with itself: its LAN). */
  readonly siteRttMs: (a: string, b: string) => number;
  /** Wall time, ms since the epoch. */
  readonly nowMs: number;
  readonly estimate: MoveEstimator;
}

export interface SchedulingPolicy {
  readonly name: string;
  /** The score's unit, for people ("ms of client latency", "$/h"). */
  readonly unit: string;
  /** Packing lets CPU demand exceed a host's CPUs (and scores the overload); others treat CPUs as a hard limit. */
  readonly oversubscribeCpu?: boolean;
  /** The score of a placement (finite; higher is better) and what it is made of, in words. */
  evaluate(placement: Placement, input: SchedulingInput): { score: number; notes: string[] };
  /** A move's cost in score units, from the engine's estimate. */
  moveCost(vm: string, from: string, to: string, estimate: MoveEstimate, input: SchedulingInput): number;
  /** Why the policy prefers `vm` on `to`, in words. */
  explain(vm: string, from: string, to: string, input: SchedulingInput): string;
  /** VM groups that should move together (a service and its replicas); none by default. */
  groups?(input: SchedulingInput): readonly (readonly string[])[];
}

export interface ScheduleParams {
  /** T, in the policy's score units: the net gain an action must exceed. */
  readonly threshold: number;
  /** Most actions proposed per run (default 8). */
  readonly maxActions?: number;
  /** Most score evaluations per run (default 50,000). */
  readonly maxEvaluations?: number;
}

export interface ScheduledMove {
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly estimate: MoveEstimate;
  /** This move's cost in score units. */
  readonly cost: number;
}

export interface ScheduleAction {
  readonly kind: 'move' | 'swap' | 'group';
  readonly moves: readonly ScheduledMove[];
  /** Score gain, cost of its moves, and gain − cost. */
  readonly gain: number;
  readonly cost: number;
  readonly net: number;
  readonly reason: string;
}

export interface ScoredPlacement {
  readonly score: number;
  readonly notes: readonly string[];
  readonly placement: Placement;
}

export interface ScheduleResult {
  readonly policy: string;
  readonly unit: string;
  readonly threshold: number;
  readonly current: ScoredPlacement;
  /** The placement after the accepted actions (the current one when there are none). */
  readonly best: ScoredPlacement;
  readonly actions: readonly ScheduleAction[];
  /** The best action found but refused (its net gain is not more than T), when no action was accepted. */
  readonly refused: ScheduleAction | undefined;
  readonly reason: string;
  readonly evaluations: number;
}

const FEASIBLE_EPS = 1e-9;

/** Run a policy: score the current placement and propose the actions that each beat T net of their cost. Pure. */
export function schedule(policy: SchedulingPolicy, input: SchedulingInput, params: ScheduleParams): ScheduleResult {
  const hostById = new Map(input.hosts.map((h) => [h.id, h]));
  for (const [vm, host] of input.placement) {
    if (!hostById.has(host)) throw new PlacementError(`VM ${vm} is placed on unknown host ${host}`);
    if (!input.vms.has(vm)) throw new PlacementError(`VM ${vm} has no resources (cpu, memory, disk) for the scheduler`);
  }
  if (!(params.threshold >= 0)) throw new PlacementError(`threshold T must be a number >= 0 (got ${params.threshold})`);
  const search = new Search(policy, input, params, hostById);
  return search.run();
}

class Search {
  readonly #policy: SchedulingPolicy;
  readonly #input: SchedulingInput;
  readonly #params: ScheduleParams;
  readonly #hosts: ReadonlyMap<string, SchedHost>;
  readonly #placement: Map<string, string>;
  readonly #used = new Map<string, { cpu: number; mem: number }>();
  readonly #maxEvaluations: number;
  evaluations = 0;

  constructor(policy: SchedulingPolicy, input: SchedulingInput, params: ScheduleParams, hosts: ReadonlyMap<string, SchedHost>) {
    this.#policy = policy;
    this.#input = input;
    this.#params = params;
    this.#hosts = hosts;
    this.#placement = new Map(input.placement);
    this.#maxEvaluations = params.maxEvaluations ?? 50_000;
    for (const [vm, host] of this.#placement) this.#charge(vm, host, 1);
  }

  run(): ScheduleResult {
    const { threshold } = this.#params;
    const current = this.#evaluate();
    if (!Number.isFinite(current.score)) throw new PlacementError(`policy ${this.#policy.name}: the score of the current placement is not finite (${current.score})`);
    let score = current.score;
    const actions: ScheduleAction[] = [];
    const moved = new Set<string>();
    let refused: ScheduleAction | undefined;
    for (let step = 0; step < (this.#params.maxActions ?? 8); step++) {
      let best = this.#bestSingle(score, moved);
      if (best === undefined || !(best.net > threshold)) {
        const multi = [this.#bestSwap(score, moved), this.#bestGroup(score, moved)].filter((a) => a !== undefined);
        for (const a of multi) if (best === undefined || a.net > best.net) best = a;
      }
      if (best === undefined || !(best.net > threshold)) {
        if (actions.length === 0 && best !== undefined && best.gain > 0) refused = best;
        break;
      }
      for (const m of best.moves) {
        this.#set(m.vm, m.to);
        moved.add(m.vm);
      }
      score += best.gain;
      actions.push(best);
    }
    const after = this.#evaluate();
    const unit = this.#policy.unit;
    const reason = actions.length > 0
      ? `${actions.length} action(s), ${actions.reduce((n, a) => n + a.moves.length, 0)} move(s): score ${fmt(current.score)} → ${fmt(after.score)} ${unit}, each net of its cost more than T = ${fmt(threshold)}`
      : refused !== undefined
        ? `refused: ${refused.reason}`
        : 'no move improves the score within the hosts\' capacity';
    return {
      policy: this.#policy.name, unit, threshold,
      current: { ...current, placement: this.#input.placement },
      best: { ...after, placement: new Map(this.#placement) },
      actions, refused, reason, evaluations: this.evaluations,
    };
  }

  #evaluate(): { score: number; notes: string[] } {
    this.evaluations++;
    return this.#policy.evaluate(this.#placement, this.#input);
  }

  #budget(): boolean {
    return this.evaluations < this.#maxEvaluations;
  }

  #charge(vm: string, host: string, sign: 1 | -1): void {
    const r = this.#input.vms.get(vm)!;
    const u = this.#used.get(host) ?? { cpu: 0, mem: 0 };
    this.#used.set(host, { cpu: u.cpu + sign * r.cpu, mem: u.mem + sign * r.memoryMiB });
  }

  #set(vm: string, host: string): void {
    this.#charge(vm, this.#placement.get(vm)!, -1);
    this.#placement.set(vm, host);
    this.#charge(vm, host, 1);
  }

  #fits(host: string): boolean {
    const h = this.#hosts.get(host)!;
    const u = this.#used.get(host) ?? { cpu: 0, mem: 0 };
    return u.mem <= h.memoryMiB + FEASIBLE_EPS && (this.#policy.oversubscribeCpu === true || u.cpu <= h.cpu + FEASIBLE_EPS);
  }

  /** Score with the moves applied (undone before returning), or undefined when a host would overflow. */
  #trial(moves: ReadonlyArray<{ vm: string; to: string }>): number | undefined {
    const undo = moves.map((m) => ({ vm: m.vm, to: this.#placement.get(m.vm)! }));
    for (const m of moves) this.#set(m.vm, m.to);
    const ok = moves.every((m) => this.#fits(m.to));
    const s = ok ? this.#evaluate().score : undefined;
    for (const m of undo.reverse()) this.#set(m.vm, m.to);
    return s !== undefined && Number.isFinite(s) ? s : undefined;
  }

  #action(kind: ScheduleAction['kind'], moves: ReadonlyArray<{ vm: string; from: string; to: string }>, gain: number): ScheduleAction {
    const scheduled = moves.map((m) => {
      const estimate = this.#input.estimate(m.vm, m.from, m.to);
      return { ...m, estimate, cost: this.#policy.moveCost(m.vm, m.from, m.to, estimate, this.#input) };
    });
    const cost = scheduled.reduce((s, m) => s + m.cost, 0);
    const net = gain - cost;
    const unit = this.#policy.unit;
    const what = scheduled.map((m) => `${m.vm} ${m.from}→${m.to}`).join(', ');
    const why = [...new Set(moves.map((m) => this.#policy.explain(m.vm, m.from, m.to, this.#input)))].join('; ');
    const moving = `${fmtBytes(scheduled.reduce((s, m) => s + m.estimate.bytes, 0))}, ${fmt(Math.max(...scheduled.map((m) => m.estimate.seconds)))} s`;
    const verdict = net > this.#params.threshold
      ? `net ${fmt(net)} > T = ${fmt(this.#params.threshold)}`
      : cost >= gain ? `its cost exceeds its gain` : `net ${fmt(net)} not more than T = ${fmt(this.#params.threshold)}`;
    const reason = `${kind} ${what}: ${why}; gain ${fmt(gain)} ${unit}, cost ${fmt(cost)} (${moving}), ${verdict}`;
    return { kind, moves: scheduled, gain, cost, net, reason };
  }

  #bestSingle(score: number, moved: ReadonlySet<string>): ScheduleAction | undefined {
    let best: ScheduleAction | undefined;
    for (const [vm, from] of this.#placement) {
      if (moved.has(vm)) continue;
      for (const to of this.#hosts.keys()) {
        if (to === from || !this.#budget()) continue;
        const s = this.#trial([{ vm, to }]);
        if (s === undefined || !(s - score > 0)) continue;
        const a = this.#action('move', [{ vm, from, to }], s - score);
        if (best === undefined || a.net > best.net) best = a;
      }
    }
    return best;
  }

  #bestSwap(score: number, moved: ReadonlySet<string>): ScheduleAction | undefined {
    let best: ScheduleAction | undefined;
    const vms = [...this.#placement.keys()].filter((v) => !moved.has(v)).sort();
    for (let i = 0; i < vms.length; i++) {
      for (let j = i + 1; j < vms.length; j++) {
        const a = vms[i]!;
        const b = vms[j]!;
        const ha = this.#placement.get(a)!;
        const hb = this.#placement.get(b)!;
        if (ha === hb || !this.#budget()) continue;
        const s = this.#trial([{ vm: a, to: hb }, { vm: b, to: ha }]);
        if (s === undefined || !(s - score > 0)) continue;
        const act = this.#action('swap', [{ vm: a, from: ha, to: hb }, { vm: b, from: hb, to: ha }], s - score);
        if (best === undefined || act.net > best.net) best = act;
      }
    }
    return best;
  }

  /** Evacuate a host (each VM to the host that scores best for it, in turn), or move a policy's group to one host. */
  #bestGroup(score: number, moved: ReadonlySet<string>): ScheduleAction | undefined {
    let best: ScheduleAction | undefined;
    const consider = (moves: Array<{ vm: string; from: string; to: string }>): void => {
      if (moves.length < 2) return;
      const s = this.#trial(moves);
      if (s === undefined || !(s - score > 0)) return;
      const act = this.#action('group', moves, s - score);
      if (best === undefined || act.net > best.net) best = act;
    };
    for (const host of this.#hosts.keys()) {
      const vms = [...this.#placement].filter(([v, h]) => h === host && !moved.has(v)).map(([v]) => v).sort();
      if (vms.length < 2 || !this.#budget()) continue;
      consider(this.#evacuation(host, vms));
    }
    for (const group of this.#policy.groups?.(this.#input) ?? []) {
      const members = group.filter((v) => this.#placement.has(v) && !moved.has(v));
      for (const to of this.#hosts.keys()) {
        if (!this.#budget()) break;
        consider(members.filter((v) => this.#placement.get(v) !== to).map((v) => ({ vm: v, from: this.#placement.get(v)!, to })));
      }
    }
    return best;
  }

  /** Each VM of `host`, biggest first, to the other host where the score is best with the ones placed before it. */
  #evacuation(host: string, vms: readonly string[]): Array<{ vm: string; from: string; to: string }> {
    const order = [...vms].sort((a, b) => this.#input.vms.get(b)!.memoryMiB - this.#input.vms.get(a)!.memoryMiB || (a < b ? -1 : 1));
    const plan: Array<{ vm: string; from: string; to: string }> = [];
    for (const vm of order) {
      let pick: { to: string; s: number } | undefined;
      for (const to of this.#hosts.keys()) {
        if (to === host || !this.#budget()) continue;
        const s = this.#trial([...plan, { vm, from: host, to }]);
        if (s !== undefined && (pick === undefined || s > pick.s)) pick = { to, s };
      }
      if (pick === undefined) return [];
      plan.push({ vm, from: host, to: pick.to });
    }
    return plan;
  }
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
}

export function fmtBytes(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/** Hour of the day (0..23, UTC) at `nowMs`. */
export function hourOfDay(nowMs: number): number {
  return Math.floor(((nowMs % 86_400_000) + 86_400_000) % 86_400_000 / 3_600_000);
}

/** Cost of a move from its estimate: `perGiB` score units per GiB sent plus `perSecond` per second it takes. */
export function linearMoveCost(estimate: MoveEstimate, perGiB: number, perSecond: number): number {
  return (estimate.bytes / 1024 ** 3) * perGiB + estimate.seconds * perSecond;
}
