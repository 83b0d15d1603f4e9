import { followTheSunPolicy } from '../topology/follow-the-sun.ts';
import type { LatencyFn } from '../topology/placement.ts';
import { packingPolicy } from '../topology/packing.ts';
import { schedule, type MoveEstimate, type SchedHost, type SchedulingInput, type SchedulingPolicy, type SchedVm } from '../topology/scheduling.ts';
import { spotMarketPolicy } from '../topology/spot-market.ts';
import { trafficLatencyPolicy } from '../topology/traffic-latency-policy.ts';
import type { PlacementMove, PlacementView } from './api-views.ts';
import { pathBetween, type Deployment } from './deployment-file.ts';
import { MoveEstimateCache, type PathSpec } from './move-estimates.ts';
import { deploymentLatency, EMPTY_PLACEMENT, movesKey, type PlacementSource, type PlacementStepInput, type PlacementStepOutput } from './placement-advisor.ts';
import { SchedulerClock, type PolicyClock } from './scheduler-clock.ts';
import { DEFAULT_VM_RESOURCES, type SchedulerConfig, type VmResources } from './scheduler-config.ts';

/**
 * The deployment file's scheduling policy in the controller: each run (every
 * `scheduler.intervalMs`, by default 10 update periods) builds the policy's
 * input — the running VMs and their hosts, the hosts' sites and resources,
 * the smoothed matrix, the time, and the migration engine's estimate for
 * each VM over each path (prepared once at start: `createScheduler`) — and
 * runs `schedule` (topology/scheduling.ts). Its accepted actions become the
 * proposal the control loop announces and, under `policy.autoMigrate`,
 * hands to the migration coordinator as placement advice's moves are; a
 * move refused (its cost exceeds its gain, or its net gain is not more than
 * T) is announced once, with why, until another is.
 *
 * The time the policy sees is its own clock's (scheduler-clock.ts: the wall
 * clock, or shifted and sped up by `scheduler.clock`).
 */

export class Scheduler implements PlacementSource {
  readonly needsTraffic = false;
  readonly #d: Readonly<Deployment>;
  readonly #config: SchedulerConfig;
  readonly #policy: SchedulingPolicy;
  readonly #estimates: MoveEstimateCache;
  readonly #siteRtt: (a: string, b: string) => number;
  readonly #latency: LatencyFn;
  readonly #clock: PolicyClock;
  #view: PlacementView;
  #movesKey = '';
  #refusedKey = '';

  /** `startWallMs`: the controller's start on its wall clock (where `scheduler.clock` counts from); `clock` replaces `scheduler.clock` (tests). */
  constructor(d: Readonly<Deployment>, config: SchedulerConfig, estimates: MoveEstimateCache, startWallMs: number, clock?: PolicyClock) {
    this.#d = d;
    this.#config = config;
    this.#estimates = estimates;
    this.#clock = clock ?? new SchedulerClock(config.clock, startWallMs);
    this.#policy = policyFrom(d, config);
    const siteHost = new Map<string, string>();
    for (const h of d.hosts) if (!siteHost.has(h.site)) siteHost.set(h.site, h.id);
    const lan = new Map(d.sites.map((s) => [s.id, s.lan.rttMs]));
    const latency = deploymentLatency(d);
    this.#latency = latency;
    this.#siteRtt = (a, b) => (a === b ? (lan.get(a) ?? 0) : latency(siteHost.get(a) ?? a, siteHost.get(b) ?? b));
    this.#view = { ...EMPTY_PLACEMENT, threshold: config.threshold, policy: this.#policy.name, unit: this.#policy.unit };
  }

  get view(): PlacementView {
    return this.#view;
  }

  restore(view: PlacementView): void {
    if (view.policy !== this.#policy.name) return;
    this.#view = view;
    this.#movesKey = movesKey(view.moves);
  }

  /** `nowMs`: the controller's wall clock; the policy sees its own clock's time. */
  step(input: PlacementStepInput, nowMs: number): PlacementStepOutput {
    const policyNowMs = this.#clock.at(nowMs);
    const placement = new Map<string, string>();
    const vms = new Map<string, SchedVm>();
    for (const v of input.vms) {
      if (v.host === undefined || v.state !== 'running') continue;
      placement.set(v.mac, v.host);
      const r = this.#resources(v.name);
      vms.set(v.mac, { id: v.mac, cpu: r.cpu, memoryMiB: r.memoryMiB, diskGiB: r.diskGiB });
    }
    const sites = new Map(this.#d.hosts.map((h) => [h.id, h.site]));
    for (const h of input.hosts) if (h.site !== undefined && !sites.has(h.id)) sites.set(h.id, h.site);
    // With host resources configured, only those hosts take VMs (the others offer 0); without, every host is unbounded.
    const offered = Object.keys(this.#config.resources.hosts).length > 0 ? 0 : Number.POSITIVE_INFINITY;
    const hosts: SchedHost[] = [...sites].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([id, site]) => {
      const r = this.#config.resources.hosts[id];
      return { id, site, cpu: r?.cpu ?? offered, memoryMiB: r?.memoryMiB ?? offered };
    });
    const known = new Set(hosts.map((h) => h.id));
    for (const [mac, host] of placement) if (!known.has(host)) placement.delete(mac);
    const names = new Map(input.vms.map((v) => [v.mac, v.name]));
    const schedInput: SchedulingInput = {
      placement, hosts, vms, traffic: input.matrix, latencyMs: this.#latency, siteRttMs: this.#siteRtt, nowMs: policyNowMs,
      estimate: (vm, from, to) => this.#estimate(names.get(vm), from, to),
    };
    const r = schedule(this.#policy, schedInput, { threshold: this.#config.threshold, maxActions: this.#config.maxActions });
    const moves: PlacementMove[] = r.actions.flatMap((a) => a.moves.map((m) => ({
      vm: m.vm, from: m.from, to: m.to, gain: a.gain / a.moves.length, reason: a.reason, kind: a.kind,
      cost: m.cost, bytes: m.estimate.bytes, seconds: m.estimate.seconds, state: 'proposed' as const,
    })));
    const view: PlacementView = {
      computedAt: nowMs, score: r.current.score, proposedScore: r.best.score, threshold: r.threshold, moves,
      policy: r.policy, unit: r.unit, notes: [...r.current.notes], ...(r.refused !== undefined ? { refused: r.refused.reason } : {}),
      ...(this.#clock.shifted ? { policyTime: policyNowMs, speedup: this.#clock.speedup } : {}),
    };
    const key = movesKey(moves);
    const changed = key !== this.#movesKey;
    this.#movesKey = key;
    const refusedKey = r.refused === undefined ? '' : r.refused.moves.map((m) => `${m.vm}>${m.from}>${m.to}`).sort().join(',');
    const refusedChanged = refusedKey !== this.#refusedKey && refusedKey !== '';
    this.#refusedKey = refusedKey;
    this.#view = view;
    const gain = r.best.score - r.current.score;
    return {
      view, changed, refusedChanged, relativeGain: r.current.score === 0 ? 0 : gain / Math.abs(r.current.score),
      advice: { moves, scoreBefore: r.current.score, scoreAfter: r.best.score, gain, reason: `${r.policy}: ${r.reason}`, evaluations: r.evaluations },
    };
  }

  #resources(name: string | undefined): VmResources {
    return (name !== undefined ? this.#config.resources.vms[name] : undefined) ?? DEFAULT_VM_RESOURCES;
  }

  #estimate(name: string | undefined, from: string, to: string): MoveEstimate {
    const r = this.#resources(name);
    const spec = { memoryMiB: r.memoryMiB, diskGiB: r.diskGiB, profile: r.profile };
    const path = pathOf(this.#d, from, to);
    return this.#estimates.get(spec, path) ?? this.#estimates.get(spec, slowestPath(this.#d))!;
  }
}

function pathOf(d: Readonly<Deployment>, a: string, b: string): PathSpec {
  const p = pathBetween(d, a, b);
  return p === undefined ? slowestPath(d) : { bandwidthMbit: p.bandwidthMbit, rttMs: p.rttMs };
}

/** A path the deployment does not name (a host that joined later) is taken as its slowest. */
function slowestPath(d: Readonly<Deployment>): PathSpec {
  const all = [...d.wan, ...d.sites.map((s) => s.lan)];
  return { bandwidthMbit: Math.min(...all.map((p) => p.bandwidthMbit)), rttMs: Math.max(...all.map((p) => p.rttMs)) };
}

/** The deployment's scheduler with the engine's estimates for every VM over every path prepared; undefined without a `scheduler` section. `clock` replaces `scheduler.clock` (tests). */
export async function createScheduler(d: Readonly<Deployment>, startWallMs: number, clock?: PolicyClock): Promise<Scheduler | undefined> {
  const config = d.scheduler;
  if (config === undefined) return undefined;
  const cache = new MoveEstimateCache();
  const paths = new Map<string, PathSpec>();
  const add = (p: PathSpec): void => { paths.set(`${p.bandwidthMbit}/${p.rttMs}`, p); };
  add(slowestPath(d));
  for (const w of d.wan) add(w);
  for (const s of d.sites) add(s.lan);
  const specs = new Map<string, VmResources>();
  for (const r of [DEFAULT_VM_RESOURCES, ...Object.values(config.resources.vms)]) specs.set(`${r.memoryMiB}/${r.diskGiB}/${r.profile}`, r);
  const pairs = [...specs.values()].flatMap((vm) => [...paths.values()].map((path) => ({ vm, path })));
  await cache.prepare(pairs);
  return new Scheduler(d, config, cache, startWallMs, clock);
}

function policyFrom(d: Readonly<Deployment>, c: SchedulerConfig): SchedulingPolicy {
  const macOf = new Map(d.vms.map((v) => [v.name, v.mac]));
  const mac = (name: string): string => macOf.get(name) ?? name;
  switch (c.policy) {
    case 'traffic-latency':
      return trafficLatencyPolicy(c.trafficLatency.moveCost);
    case 'follow-the-sun': {
      const s = c.followTheSun!;
      return followTheSunPolicy({
        services: s.services.map((x) => ({ name: x.name, primary: mac(x.primary), members: x.members.map(mac) })),
        clients: s.clients === 'measured' ? 'measured' : new Map(Object.entries(s.clients)),
        horizonHours: s.horizonHours, perSecond: s.moveCost.perSecond, perGiB: s.moveCost.perGiB,
      });
    }
    case 'spot-market': {
      const s = c.spotMarket!;
      return spotMarketPolicy({
        prices: new Map(Object.entries(s.prices).map(([site, pts]) => [site, pts.map((p) => ({ atMs: p.at, perHour: p.perHour })).sort((a, b) => a.atMs - b.atMs)])),
        terminations: s.terminations.map((t) => ({ site: t.site, noticeAtMs: t.notice, atMs: t.at })),
        billingPeriodMs: s.billingPeriodMs, billingEpochMs: s.billingEpoch, bidPerHour: s.bidPerHour ?? Number.POSITIVE_INFINITY,
        perGiB: s.moveCost.perGiB, terminationPenalty: s.terminationPenalty, horizonHours: s.horizonHours,
      });
    }
    case 'packing': {
      const s = c.packing!;
      return packingPolicy({
        load: s.load, hostCostPerHour: typeof s.hostCostPerHour === 'number' ? s.hostCostPerHour : new Map(Object.entries(s.hostCostPerHour)),
        headroom: s.headroom, overloadPerCpuHour: s.overloadPerCpuHour, horizonHours: s.horizonHours, perGiB: s.moveCost.perGiB, perSecond: s.moveCost.perSecond,
      });
    }
  }
}
