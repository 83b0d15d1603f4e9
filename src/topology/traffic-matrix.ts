import { isMulticastMac, type Mac } from '../common/mac.ts';
import { EdgeList } from './edge-list.ts';
import type { TrafficReport } from './traffic-report.ts';
import { edgeKey, type RegistryIndex } from './vm-registry.ts';

/**
 * Merge: the (validated) local matrices of one update period → one global,
 * sparse, directed VM×VM matrix of rates in bytes per second.
 *
 *   1. group the reports by host; a host's observed time is the sum of its
 *      report intervals (a report overlapping an earlier one of the same host
 *      is dropped, with an issue);
 *   2. each entry becomes bytes / (host's observed seconds), keyed by the
 *      registry indices of its source and destination VMs;
 *   3. a frame is counted once, at the host where it entered the overlay:
 *      the source VM's host. A pair also reported by another host (a daemon
 *      counting transit, or a VM in mid-migration) is kept from the source
 *      VM's registered host, or else from the first host that reported it;
 *   4. MACs unknown to the registry are summed per (host, MAC) and reported,
 *      never mixed into the matrix; multicast/broadcast destinations are
 *      summed per host apart (they have no single receiving VM).
 */

export interface TrafficMatrix {
  /** The registry ids the edge keys index into (see vm-registry.ts). */
  readonly ids: readonly string[];
  /** Directed rates, bytes per second, keyed by edgeKey(src, dst, ids.length); only non-zero entries. */
  readonly rates: ReadonlyMap<number, number>;
}

export interface UnknownMacTraffic {
  readonly host: string;
  readonly mac: Mac;
  /** Which side of the entries the unknown MAC was on. */
  readonly role: 'src' | 'dst';
  readonly bytesPerSecond: number;
}

export type MergeIssue =
  | { readonly kind: 'overlapping-report'; readonly host: string; readonly startMs: number; readonly endMs: number }
  | { readonly kind: 'counted-twice'; readonly host: string; readonly src: Mac; readonly dst: Mac };

export interface MergeResult {
  readonly matrix: TrafficMatrix;
  /** Hosts whose traffic is in this matrix; rows of VMs on other hosts are unobserved, not zero. */
  readonly reportedHosts: ReadonlySet<string>;
  /** Wall time the merged reports cover: earliest start to latest end (0 with no reports). */
  readonly startMs: number;
  readonly endMs: number;
  readonly unknown: readonly UnknownMacTraffic[];
  readonly multicastBytesPerSecond: ReadonlyMap<string, number>;
  readonly issues: readonly MergeIssue[];
}

/** Merge one period's validated reports against the registry. Pure; O(total entries · log). */
export function mergeReports(reports: readonly TrafficReport[], registry: RegistryIndex): MergeResult {
  const issues: MergeIssue[] = [];
  const byHost = new Map<string, TrafficReport[]>();
  let totalEntries = 0;
  for (const r of reports) {
    const list = byHost.get(r.host) ?? [];
    if (list.some((o) => r.startMs < o.endMs && o.startMs < r.endMs)) {
      issues.push({ kind: 'overlapping-report', host: r.host, startMs: r.startMs, endMs: r.endMs });
      continue;
    }
    list.push(r);
    byHost.set(r.host, list);
    totalEntries += r.entries.length;
  }
  const keys = new Float64Array(totalEntries);
  const values = new Float64Array(totalEntries);
  let len = 0;
  const foreign: { host: string; src: Mac; dst: Mac; key: number; rate: number }[] = [];
  const unknown = new Map<string, UnknownMacTraffic>();
  const multicast = new Map<string, number>();
  let startMs = Number.POSITIVE_INFINITY;
  let endMs = Number.NEGATIVE_INFINITY;
  // Hosts as small integers: the per-entry "reported at the source VM's host" test compares numbers, not strings.
  const hostNumber = new Map<string, number>();
  const vmHost = new Int32Array(registry.hosts.length);
  for (let v = 0; v < vmHost.length; v++) {
    const h = registry.hosts[v]!;
    let x = hostNumber.get(h);
    if (x === undefined) hostNumber.set(h, (x = hostNumber.size));
    vmHost[v] = x;
  }
  const stride = registry.ids.length;
  for (const [host, list] of byHost) {
    const hostIndex = hostNumber.get(host) ?? -1;
    let observedMs = 0;
    for (const r of list) {
      observedMs += r.endMs - r.startMs;
      if (r.startMs < startMs) startMs = r.startMs;
      if (r.endMs > endMs) endMs = r.endMs;
    }
    const perSecond = 1000 / observedMs;
    for (const r of list) {
      for (const e of r.entries) {
        if (e.bytes === 0) continue;
        const rate = e.bytes * perSecond;
        if (isMulticastMac(e.dst)) {
          multicast.set(host, (multicast.get(host) ?? 0) + rate);
          continue;
        }
        const s = registry.lookupMac(e.src);
        const d = registry.lookupMac(e.dst);
        if (s < 0 || d < 0) {
          const role = s < 0 ? 'src' : 'dst';
          const mac = s < 0 ? e.src : e.dst;
          const id = `${host}\u0000${role}\u0000${mac}`;
          const prev = unknown.get(id);
          unknown.set(id, { host, mac, role, bytesPerSecond: (prev?.bytesPerSecond ?? 0) + rate });
          continue;
        }
        const key = edgeKey(s, d, stride);
        if (vmHost[s] === hostIndex) {
          keys[len] = key;
          values[len] = rate;
          len++;
        } else foreign.push({ host, src: e.src, dst: e.dst, key, rate });
      }
    }
  }
  let rates = EdgeList.fromPairs(keys, values, len);
  // Pairs seen at a host other than the source VM's: count them only if the
  // registered host did not, and only from the first other host.
  if (foreign.length > 0) {
    const takenForeign = new Map<number, string>();
    for (const f of foreign) {
      const taken = takenForeign.get(f.key);
      if (taken === f.host) {
        keys[len] = f.key;
        values[len] = f.rate;
        len++;
      } else if (taken !== undefined || rates.has(f.key)) {
        issues.push({ kind: 'counted-twice', host: f.host, src: f.src, dst: f.dst });
      } else {
        takenForeign.set(f.key, f.host);
        keys[len] = f.key;
        values[len] = f.rate;
        len++;
      }
    }
    rates = EdgeList.fromPairs(keys, values, len);
  }
  return {
    matrix: { ids: registry.ids, rates },
    reportedHosts: new Set(byHost.keys()),
    startMs: byHost.size === 0 ? 0 : startMs,
    endMs: byHost.size === 0 ? 0 : endMs,
    unknown: [...unknown.values()],
    multicastBytesPerSecond: multicast,
    issues,
  };
}
