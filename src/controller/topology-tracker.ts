import { parseMac } from '../common/mac.ts';
import type { TrafficSnapshot } from '../control/daemon-control.ts';
import type { Topology } from '../topology/classify.ts';
import { buildRegistryIndex, keyDst, keySrc, type RegistryIndex } from '../topology/vm-registry.ts';
import type { SmoothedMatrix } from '../topology/smoothing.ts';
import { INITIAL_VTTIF_STATE, parseVttifParams, vttifStep, type VttifParams, type VttifState } from '../topology/vttif.ts';
import type { MatrixView, TopologyView } from './api-model.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import type { VmRecord } from './store/records.ts';

/**
 * The controller's side of VTTIF: feed the period's traffic reports and the
 * VM registry to the pure pipeline (`src/topology/vttif.ts`), keep its state,
 * and turn what it returns into the API's matrix and topology views. Pure
 * apart from holding the state between calls.
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
  #matrix: MatrixView;
  #topology: TopologyView = { class: 'none', centre: null, confidence: 0, edges: [], detectedAt: null };

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

  step(vms: readonly VmRecord[], reports: readonly TrafficSnapshot[], nowMs: number): TopologyStepOutput {
    this.#index(vms);
    const r = vttifStep(this.#state, reports, this.#registry, this.#params, nowMs);
    this.#state = r.state;
    const rejected = r.rejected.map((x) => ({ host: x.host, code: x.error.code, message: x.error.message }));
    if (!r.due) return { due: false, matrix: this.#matrix, topology: this.#topology, changed: undefined, rejected, raw: undefined };
    const ids = r.matrix?.ids ?? [];
    const edges: MatrixView['edges'] = [];
    for (const [key, rate] of r.matrix?.rates ?? []) {
      const src = ids[keySrc(key, ids.length)];
      const dst = ids[keyDst(key, ids.length)];
      if (src === undefined || dst === undefined) continue;
      edges.push({ src, dst, bytesPerSec: rate, framesPerSec: 0 });
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
      const tEdges: TopologyView['edges'] = [];
      const pIds = r.pruned?.ids ?? [];
      for (const [key, w] of r.pruned?.weights ?? []) {
        const a = pIds[keySrc(key, pIds.length)];
        const b = pIds[keyDst(key, pIds.length)];
        if (a !== undefined && b !== undefined) tEdges.push({ a, b, weight: w, bytesPerSec: w * max });
      }
      this.#topology = topologyViewOf(r.event.topology, tEdges, r.event.atMs);
      changed = { distance: r.event.distance, periods: r.event.periods, previous };
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

function topologyViewOf(t: Topology, edges: TopologyView['edges'], atMs: number): TopologyView {
  return { class: t.class, centre: t.centre ?? null, confidence: t.confidence, edges, detectedAt: atMs };
}
