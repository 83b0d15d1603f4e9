import { parseMac } from '../common/mac.ts';
import type { Topology } from '../topology/classify.ts';
import type { WeightedGraph } from '../topology/normalise.ts';
import { smoothMatrix, type SmoothedMatrix } from '../topology/smoothing.ts';
import { mergeReports } from '../topology/traffic-matrix.ts';
import type { TrafficReport } from '../topology/traffic-report.ts';
import { buildRegistryIndex, keyDst, keySrc, undirectedKey, type RegistryIndex } from '../topology/vm-registry.ts';
import { INITIAL_VTTIF_STATE, parseVttifParams, vttifStepValidated, type VttifParams, type VttifState } from '../topology/vttif.ts';
import type { MatrixView, TopologyEdge, TopologyView } from './api-views.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import { EMPTY_TOPOLOGY } from './views.ts';
import type { VmRecord } from './store/records.ts';

/**
 * The controller's side of VTTIF: feed the period's traffic reports (valid:
 * checked once, where the control channel received them) and the VM registry
 * to the pure pipeline (`src/topology/vttif.ts`), keep its state, and turn
 * what it returns into the API's matrix and topology views. Pure apart from
 * holding the state between calls.
 *
 * Each due period:
 *   matrix   — the smoothed directed rates, bytes/s from VTTIF and frames/s
 *              from the same reports through the same low-pass filter
 *              (merge → smooth with frame counts in place of bytes);
 *   topology — the announced structure (class, centre, confidence, the
 *              announced edge set, detectedAt) stays until change detection
 *              announces another; the weights and rates of its edges are the
 *              current smoothed ones (`weightsAt`), so they follow the traffic
 *              between announcements.
 */

export interface TopologyStepOutput {
  due: boolean;
  matrix: MatrixView;
  topology: TopologyView;
  /** Set when change detection announced a new topology this period. */
  changed: { distance: number; periods: number; previous: TopologyView | undefined } | undefined;
  rejected: Array<{ host: string | undefined; code: string; message: string }>;
  /** The smoothed matrix and the registry it is indexed with (for fast-path selection), when due. */
  raw: { matrix: SmoothedMatrix; registry: RegistryIndex } | undefined;
}

/** Frame-rate edges that decay below this many frames/s are dropped (the byte matrix's floor is 1 byte/s). */
const FRAME_FLOOR_PER_SECOND = 0.01;

export function vttifParamsFromPolicy(p: DeploymentPolicy): VttifParams {
  return parseVttifParams({
    updatePeriodMs: p.updatePeriodMs,
    smoothingIntervalMs: p.smoothingIntervalMs,
    detectionThreshold: Math.min(0.99, Math.max(0.01, p.detectionThreshold)),
  });
}

export class TopologyTracker {
  readonly #params: VttifParams;
  #state: VttifState = INITIAL_VTTIF_STATE;
  #registryKey = '';
  #registry: RegistryIndex = buildRegistryIndex([]);
  #vms: VmRecord[] = [];
  /** Frame counts of the reports buffered since the last due period, and their smoothed rates. */
  #pendingFrames: TrafficReport[] = [];
  #frames: SmoothedMatrix | undefined;
  #matrix: MatrixView;
  #topology: TopologyView = EMPTY_TOPOLOGY;

  constructor(params: VttifParams) {
    this.#params = params;
    this.#matrix = { at: null, periodMs: params.updatePeriodMs, vms: [], edges: [] };
  }

  get matrix(): MatrixView {
    return this.#matrix;
  }

  get topology(): TopologyView {
    return this.#topology;
  }

  /** Restore the last announced topology (from the database) after a restart. */
  restore(topology: TopologyView): void {
    this.#topology = topology;
  }

  step(vms: readonly VmRecord[], reports: readonly TrafficReport[], nowMs: number): TopologyStepOutput {
    this.#index(vms);
    const r = vttifStepValidated(this.#state, reports, this.#registry, this.#params, nowMs);
    this.#state = r.state;
    const rejected = r.rejected.map((x) => ({ host: x.host, code: x.error.code, message: x.error.message }));
    const taken = new Set(r.rejected.map((x) => x.index));
    for (const [i, report] of reports.entries()) if (!taken.has(i)) this.#pendingFrames.push(framesAsBytes(report));
    if (!r.due) return { due: false, matrix: this.#matrix, topology: this.#topology, changed: undefined, rejected, raw: undefined };
    const frames = smoothMatrix(this.#frames, mergeReports(this.#pendingFrames, this.#registry), this.#registry, nowMs, {
      smoothingIntervalMs: this.#params.smoothingIntervalMs, floorBytesPerSecond: FRAME_FLOOR_PER_SECOND,
    });
    this.#frames = frames;
    this.#pendingFrames = [];
    const ids = r.matrix?.ids ?? [];
    const edges: MatrixView['edges'] = [];
    for (const [key, rate] of r.matrix?.rates ?? []) {
      const src = ids[keySrc(key, ids.length)];
      const dst = ids[keyDst(key, ids.length)];
      if (src === undefined || dst === undefined) continue;
      edges.push({ src, dst, bytesPerSec: rate, framesPerSec: frames.rates.get(key) ?? 0 });
    }
    this.#matrix = {
      at: nowMs, periodMs: this.#params.updatePeriodMs,
      vms: this.#vms.map((v) => ({ mac: v.mac, ip: v.ip ?? null, host: v.host ?? null, name: v.name ?? null })),
      edges,
    };
    let changed: TopologyStepOutput['changed'];
    if (r.event !== undefined) {
      const previous = this.#topology;
      const max = r.pruned?.maxBytesPerSecond ?? 0;
      const tEdges: TopologyEdge[] = [];
      const pIds = r.pruned?.ids ?? [];
      for (const [key, w] of r.pruned?.weights ?? []) {
        const a = pIds[keySrc(key, pIds.length)];
        const b = pIds[keyDst(key, pIds.length)];
        if (a !== undefined && b !== undefined) tEdges.push({ a, b, weight: w, bytesPerSec: w * max });
      }
      this.#topology = topologyViewOf(r.event.topology, tEdges, r.event.atMs);
      changed = { distance: r.event.distance, periods: r.event.periods, previous };
    } else if (r.normalised !== undefined) {
      this.#topology = { ...this.#topology, edges: liveEdges(this.#topology.edges, r.normalised, this.#registry), weightsAt: nowMs };
    }
    return { due: true, matrix: this.#matrix, topology: this.#topology, changed, rejected, raw: r.matrix === undefined ? undefined : { matrix: r.matrix, registry: this.#registry } };
  }

  #index(vms: readonly VmRecord[]): void {
    const placed = vms.filter((v) => v.host !== undefined);
    const key = placed.map((v) => `${v.mac}@${v.host}`).join(',');
    if (key === this.#registryKey) return;
    this.#registryKey = key;
    this.#vms = [...placed];
    this.#registry = buildRegistryIndex(placed.map((v) => ({ id: v.mac, mac: parseMac(v.mac), host: v.host! })));
  }
}

/** A report whose byte counts are its frame counts: the merge and the filter then give frames per second. */
function framesAsBytes(r: TrafficReport): TrafficReport {
  return { host: r.host, startMs: r.startMs, endMs: r.endMs, entries: r.entries.map((e) => ({ src: e.src, dst: e.dst, frames: e.frames, bytes: e.frames })) };
}

/** The announced edges with their current weights (0 for a pair that no longer talks) and rates. */
function liveEdges(announced: readonly TopologyEdge[], g: WeightedGraph, registry: RegistryIndex): TopologyEdge[] {
  const n = g.ids.length;
  const index = g.ids === registry.ids ? registry.indexOfId : new Map(g.ids.map((id, i) => [id, i] as const));
  return announced.map((e) => {
    const i = index.get(e.a);
    const j = index.get(e.b);
    const w = i === undefined || j === undefined ? 0 : g.weights.get(undirectedKey(i, j, n)) ?? 0;
    return { a: e.a, b: e.b, weight: w, bytesPerSec: w * g.maxBytesPerSecond };
  });
}

function topologyViewOf(t: Topology, edges: TopologyEdge[], atMs: number): TopologyView {
  return { class: t.class, centre: t.centre ?? null, confidence: t.confidence, edges, detectedAt: atMs, weightsAt: atMs };
}
