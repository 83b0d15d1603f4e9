import type { MergeResult, TrafficMatrix } from './traffic-matrix.ts';
import { keySrc, remapEdges, type RegistryIndex } from './vm-registry.ts';

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
  if (prev === undefined) {
    return { ids: registry.ids, rates: new Map(obs), atMs: nowMs, hostSeenMs };
  }
  const floor = params.floorBytesPerSecond ?? 1;
  const maxHoldMs = params.maxHoldMs ?? 3 * params.smoothingIntervalMs;
  const alpha = smoothingWeight(nowMs - prev.atMs, params.smoothingIntervalMs);
  const old = remapEdges(prev.rates, prev.ids, registry, false);
  const { hosts } = registry;
  const n = registry.ids.length;
  // Per-host decision "hold this host's rows?", computed once per host.
  const hold = new Map<string, boolean>();
  const holds = (srcIndex: number): boolean => {
    const host = hosts[srcIndex]!;
    let h = hold.get(host);
    if (h === undefined) {
      const seen = hostSeenMs.get(host);
      h = !observed.reportedHosts.has(host) && seen !== undefined && nowMs - seen <= maxHoldMs;
      hold.set(host, h);
    }
    return h;
  };
  const rates = new Map<number, number>();
  for (const [key, s] of old) {
    const x = obs.get(key);
    if (x === undefined && holds(keySrc(key, n))) {
      rates.set(key, s);
      continue;
    }
    const v = s + alpha * ((x ?? 0) - s);
    if (v >= floor) rates.set(key, v);
  }
  for (const [key, x] of obs) {
    if (old.has(key)) continue;
    const v = alpha * x;
    if (v >= floor) rates.set(key, v);
  }
  return { ids: registry.ids, rates, atMs: nowMs, hostSeenMs };
}
