import {
  advisePlacement, trafficLatencyScore, type LatencyFn, type Placement, type PlacementAdvice, type PlacementContext,
  type PlacementParams, type ScoreFn,
} from '../topology/placement.ts';
import type { TrafficMatrix } from '../topology/traffic-matrix.ts';
import type { PlacementMove, PlacementView } from './api-views.ts';
import type { Deployment } from './deployment-file.ts';
import type { HostRecord, VmRecord } from './store/records.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * Placement advice in the controller (Supercloud's scheduler over VTTIF's
 * matrix): each update period, score the current VM→host mapping with
 * f(placement, traffic, latency) — by default −Σ rate × RTT between the
 * VMs' hosts — and propose the moves (`advisePlacement`) whose total gain
 * beats T = `policy.placementThreshold` × |current score| (T is relative:
 * 0.1 means "a tenth less traffic × latency"). Pure apart from holding the
 * last proposal: `step` returns what changed, and placement-planner.ts turns
 * it into events and decisions.
 *
 * Inputs: the smoothed matrix (ids are VM MACs), the registry's running
 * VMs and their hosts, the hosts VMs may go to, host-to-host RTT from the
 * deployment (same host 0, same site the site's LAN, else the WAN path
 * between the sites), and each host's capacity in VMs.
 *
 * Capacity: unless configured, no host is asked to hold more VMs than the
 * busiest host holds now (or than an even spread, if that is more). A move
 * needs a host with room; swaps under full capacity are not proposed (the
 * documented limit of the greedy search).
 */

export interface PlacementAdvisorInit {
  /** Relative T, 0..1 (policy.placementThreshold). */
  threshold: number;
  latencyMs: LatencyFn;
  /** Most VMs per host; default max(busiest host now, ceil(VMs / hosts)). */
  maxVmsPerHost?: number | ReadonlyMap<string, number>;
  maxMoves?: number;
  /** Only the VMs with the most traffic are considered for moving (default 200). */
  maxCandidateVms?: number;
  /** An application-supplied score (higher is better); default traffic × latency. */
  score?: ScoreFn;
}

export interface PlacementStepInput {
  matrix: TrafficMatrix;
  vms: readonly VmRecord[];
  hosts: readonly HostRecord[];
}

export interface PlacementStepOutput {
  view: PlacementView;
  advice: PlacementAdvice;
  /** The proposed moves differ from the last proposal (set of VM, from, to). */
  changed: boolean;
  /** Under a scheduling policy: the move it refuses (`view.refused`) is not the one it refused last time. */
  refusedChanged?: boolean;
  /** The relative gain of the proposal (gain / |score|), 0 when there is none. */
  relativeGain: number;
}

/** What the control loop steps each placement run: placement advice, or the deployment's scheduling policy (scheduler.ts). */
export interface PlacementSource {
  /** Advice runs only on a traffic matrix; a scheduling policy runs every time (an empty matrix when there is none). */
  readonly needsTraffic: boolean;
  readonly view: PlacementView;
  restore(view: PlacementView): void;
  step(input: PlacementStepInput, nowMs: number): PlacementStepOutput;
}

export const EMPTY_PLACEMENT: PlacementView = { computedAt: null, score: 0, proposedScore: 0, threshold: 0, moves: [] };

/**
 * Host-to-host RTT in ms from the deployment (what `pathBetween` gives:
 * the site's LAN, or the WAN path between the sites); hosts it does not name
 * (joined later) are as far as its farthest path. Two map lookups per call.
 */
export function deploymentLatency(d: Readonly<Deployment>): LatencyFn {
  const far = Math.max(0, ...d.wan.map((w) => w.rttMs), ...d.sites.map((s) => s.lan.rttMs));
  const siteOf = new Map(d.hosts.map((h) => [h.id, h.site]));
  const rtt = new Map<string, Map<string, number>>();
  const set = (x: string, y: string, v: number): void => {
    let m = rtt.get(x);
    if (m === undefined) rtt.set(x, (m = new Map()));
    m.set(y, v);
  };
  for (const s of d.sites) set(s.id, s.id, s.lan.rttMs);
  for (const w of d.wan) {
    set(w.sites[0], w.sites[1], w.rttMs);
    set(w.sites[1], w.sites[0], w.rttMs);
  }
  return (a, b) => {
    if (a === b) return 0;
    const sa = siteOf.get(a);
    const sb = siteOf.get(b);
    if (sa === undefined || sb === undefined) return far;
    return rtt.get(sa)?.get(sb) ?? far;
  };
}

export class PlacementAdvisor implements PlacementSource {
  readonly needsTraffic = true;
  readonly #init: PlacementAdvisorInit;
  #view: PlacementView;
  #movesKey = '';

  constructor(init: PlacementAdvisorInit) {
    this.#init = init;
    this.#view = { ...EMPTY_PLACEMENT, threshold: init.threshold };
  }

  /** The last proposal (computedAt null before the first). */
  get view(): PlacementView {
    return this.#view;
  }

  /** Restore the last stored proposal after a restart (its moves count as the current ones). */
  restore(view: PlacementView): void {
    if (view.policy !== undefined) return; // a scheduling policy's proposal, from before the deployment dropped it
    this.#view = view;
    this.#movesKey = movesKey(view.moves);
  }

  step(input: PlacementStepInput, nowMs: number): PlacementStepOutput {
    const current = new Map<string, string>();
    const load = new Map<string, number>();
    for (const v of input.vms) {
      if (v.host === undefined || v.state !== 'running') continue;
      current.set(v.mac, v.host);
      load.set(v.host, (load.get(v.host) ?? 0) + 1);
    }
    const hosts = [...new Set([...input.hosts.map((h) => h.id), ...current.values()])].sort();
    const even = hosts.length === 0 ? 0 : Math.ceil(current.size / hosts.length);
    const capacity = this.#init.maxVmsPerHost ?? Math.max(even, ...load.values(), 0);
    const context = { traffic: input.matrix, latencyMs: this.#init.latencyMs, hosts };
    // T is relative to the current score.
    const before = (this.#init.score ?? trafficLatencyScore)(current, context);
    const absT = Number.isFinite(before) ? this.#init.threshold * Math.abs(before) : 0;
    const advice = adviseMoves(current, context, {
      threshold: absT,
      maxVmsPerHost: capacity,
      maxCandidateVms: this.#init.maxCandidateVms ?? 200,
      ...(this.#init.score !== undefined ? { score: this.#init.score } : {}),
    }, this.#init.maxMoves ?? 3);
    const moves: PlacementMove[] = advice.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to, gain: m.gain, reason: m.reason }));
    const view: PlacementView = { computedAt: nowMs, score: advice.scoreBefore, proposedScore: advice.scoreAfter, threshold: absT, moves };
    const key = movesKey(moves);
    const changed = key !== this.#movesKey;
    this.#movesKey = key;
    this.#view = view;
    const relativeGain = advice.scoreBefore === 0 ? 0 : advice.gain / Math.abs(advice.scoreBefore);
    return { view, advice, changed, relativeGain };
  }
}

/**
 * Up to `maxMoves` moves, each of which on its own beats T (a migration
 * costs: a move must pay for itself, not ride on another's gain). One
 * greedy search; its moves come best first, each gain measured on top of
 * the moves before it, so the proposal is the prefix of moves that each
 * gain more than T.
 */
function adviseMoves(current: Placement, context: PlacementContext, params: PlacementParams, maxMoves: number): PlacementAdvice {
  const a = advisePlacement(current, context, { ...params, maxMoves });
  const cut = a.moves.findIndex((m) => !(m.gain > params.threshold));
  if (cut < 0) return a;
  const moves = a.moves.slice(0, cut);
  if (moves.length === 0) {
    const best = a.moves[0]!;
    return { ...a, moves: [], scoreAfter: a.scoreBefore, gain: 0, reason: `the best move (${best.vm} ${best.from}→${best.to}) gains ${best.gain.toFixed(1)}, not more than the threshold T = ${params.threshold.toFixed(1)}` };
  }
  const gain = moves.reduce((sum, m) => sum + m.gain, 0);
  return { ...a, moves, scoreAfter: a.scoreBefore + gain, gain, reason: `${moves.length} move(s), each gaining more than T = ${params.threshold.toFixed(1)}, gain ${gain.toFixed(1)} in all` };
}

/** The last proposal recorded in the event history (a `placement-changed` event), for a restart. */
export function lastStoredPlacement(store: ControllerStore): PlacementView | undefined {
  const row = store.db.prepare(`SELECT data FROM events WHERE type = 'placement-changed' ORDER BY id DESC LIMIT 1`).get() as { data: string } | undefined;
  if (row === undefined) return undefined;
  try {
    const p = (JSON.parse(row.data) as { placement?: PlacementView }).placement;
    return p !== undefined && Array.isArray(p.moves) ? p : undefined;
  } catch {
    return undefined;
  }
}

export function movesKey(moves: readonly PlacementMove[]): string {
  return moves.map((m) => `${m.vm}>${m.from}>${m.to}`).sort().join(',');
}
