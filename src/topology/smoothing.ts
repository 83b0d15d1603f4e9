import { EdgeList } from './edge-list.ts';
import type { MergeResult, TrafficMatrix } from './traffic-matrix.ts';
import { remapEdges, type RegistryIndex } from './vm-registry.ts';

/**
 * Low-pass filter of the global matrix: a per-edge exponential moving average
 * whose time constant is the smoothing interval τ. For an update Δt after the
 * previous one the weight of the new observation is α = 1 − e^(−Δt/τ), so
 * irregular update periods are handled exactly (two updates of Δt/2 give the
 * same result as one of Δt for a constant input), and a step change in
 * traffic has reached 1 − e^(−t/τ) of its new value after time t.
 *
 * Missing data is not zero traffic: rows of source VMs whose host sent no
 * report this period keep their previous value, for at most `maxHoldMs`
 * after that host last reported; after that they decay like silence.
 */

export interface SmoothingParams {
  readonly smoothingIntervalMs: number;
  /** How long an unreported host's rows are held (default 3 × smoothingIntervalMs). */
  readonly maxHoldMs?: number;
  /** Edges that decay below this many bytes/s are dropped to keep the matrix sparse (default 1). */
  readonly floorBytesPerSecond?: number;
}

export interface SmoothedMatrix extends TrafficMatrix {
  readonly rates: EdgeList;
  /** Time of the last update (the `now` it was computed at). */
  readonly atMs: number;
  /** When each host last reported. */
  readonly hostSeenMs: ReadonlyMap<string, number>;
}

/** Weight of a new observation Δt after the previous one, for time constant τ. */
export function smoothingWeight(deltaMs: number, smoothingIntervalMs: number): number {
  if (!(deltaMs > 0)) return 0;
  if (!(smoothingIntervalMs > 0)) return 1;
  return 1 - Math.exp(-deltaMs / smoothingIntervalMs);
}

/** One filter update at `nowMs`. The first update (no previous state) takes the observation as is. */
export function smoothMatrix(
  prev: SmoothedMatrix | undefined,
  observed: MergeResult,
  registry: RegistryIndex,
  nowMs: number,
  params: SmoothingParams,
): SmoothedMatrix {
  const hostSeenMs = new Map(prev?.hostSeenMs ?? []);
  for (const h of observed.reportedHosts) hostSeenMs.set(h, nowMs);
  const obs = remapEdges(observed.matrix.rates, observed.matrix.ids, registry, false);
  if (prev === undefined) return { ids: registry.ids, rates: obs, atMs: nowMs, hostSeenMs };
  const floor = params.floorBytesPerSecond ?? 1;
  const maxHoldMs = params.maxHoldMs ?? 3 * params.smoothingIntervalMs;
  const alpha = smoothingWeight(nowMs - prev.atMs, params.smoothingIntervalMs);
  const old = remapEdges(prev.rates, prev.ids, registry, false);
  const n = registry.ids.length;
  // Hold the rows of VMs whose host did not report (decided once per host).
  const holdHost = new Map<string, boolean>();
  const hold = new Uint8Array(n);
  for (let v = 0; v < n; v++) {
    const host = registry.hosts[v]!;
    let h = holdHost.get(host);
    if (h === undefined) {
      const seen = hostSeenMs.get(host);
      h = !observed.reportedHosts.has(host) && seen !== undefined && nowMs - seen <= maxHoldMs;
      holdHost.set(host, h);
    }
    hold[v] = h ? 1 : 0;
  }
  // Merge-join of two sorted edge lists.
  const ok = old.keyArray;
  const ov = old.valueArray;
  const nk = obs.keyArray;
  const nv = obs.valueArray;
  const keys = new Float64Array(ok.length + nk.length);
  const values = new Float64Array(ok.length + nk.length);
  let len = 0;
  let i = 0;
  let j = 0;
  while (i < ok.length || j < nk.length) {
    let key: number;
    let v: number;
    if (j >= nk.length || (i < ok.length && ok[i]! < nk[j]!)) {
      key = ok[i]!;
      const s = ov[i++]!;
      v = hold[Math.floor(key / n)] === 1 ? s : s - alpha * s;
    } else if (i >= ok.length || nk[j]! < ok[i]!) {
      key = nk[j]!;
      v = alpha * nv[j++]!;
    } else {
      key = ok[i]!;
      const s = ov[i++]!;
      v = s + alpha * (nv[j++]! - s);
    }
    if (v >= floor) {
      keys[len] = key;
      values[len] = v;
      len++;
    }
  }
  return { ids: registry.ids, rates: new EdgeList(keys.subarray(0, len), values.subarray(0, len)), atMs: nowMs, hostSeenMs };
}
