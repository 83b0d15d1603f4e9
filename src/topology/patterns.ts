import { PatternError } from './errors.ts';
import { randomInt, type Random } from './seeded-random.ts';
import type { TrafficEntry, TrafficReport } from './traffic-report.ts';
import type { VmPlacement } from './vm-registry.ts';

/**
 * The communication graphs of the Patterns benchmark over VMs 0..n−1, and a
 * generator of the local traffic reports the daemons would send for one of
 * them. Used by the tests, the benchmarks and the demo traffic generator.
 *
 *   all-to-all  every pair
 *   ring        i ↔ i+1 (mod n)
 *   bus         i ↔ i+1 (a line, no wrap)
 *   star        0 ↔ every other VM
 *   mesh        rows × cols grid (rows the largest divisor ≤ √n), i ↔ right and down neighbour
 *   tree        complete binary tree in heap order: i ↔ ⌊(i−1)/2⌋
 *   neighbour   i ↔ i±1..i±k (mod n), k = 2 by default (see classify.ts)
 */

export type PatternKind = 'all-to-all' | 'ring' | 'bus' | 'star' | 'mesh' | 'tree' | 'neighbour';

export const PATTERN_KINDS: readonly PatternKind[] = ['all-to-all', 'ring', 'bus', 'star', 'mesh', 'tree', 'neighbour'];

export type PatternEdge = readonly [number, number];

export interface PatternOptions {
  /** neighbour: exchange width (default 2). */
  readonly k?: number;
}

/** Grid shape used for `mesh`: rows the largest divisor of n not above √n; undefined for n with no divisor ≥ 2. */
export function meshShape(n: number): { rows: number; cols: number } | undefined {
  for (let rows = Math.floor(Math.sqrt(n)); rows >= 2; rows--) {
    if (n % rows === 0) return { rows, cols: n / rows };
  }
  return undefined;
}

/** Undirected edges [i, j], i < j, of a Patterns graph on n VMs; throws PatternError where the pattern is undefined. */
export function patternEdges(kind: PatternKind, n: number, options: PatternOptions = {}): PatternEdge[] {
  if (!Number.isSafeInteger(n) || n < 2) throw new PatternError(`pattern ${kind} needs at least 2 VMs, got ${n}`);
  const edges: PatternEdge[] = [];
  const add = (a: number, b: number): void => {
    edges.push(a < b ? [a, b] : [b, a]);
  };
  switch (kind) {
    case 'all-to-all':
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) add(i, j);
      break;
    case 'ring':
      if (n < 3) throw new PatternError(`ring needs at least 3 VMs, got ${n}`);
      for (let i = 0; i < n; i++) add(i, (i + 1) % n);
      break;
    case 'bus':
      for (let i = 0; i + 1 < n; i++) add(i, i + 1);
      break;
    case 'star':
      for (let i = 1; i < n; i++) add(0, i);
      break;
    case 'mesh': {
      const shape = meshShape(n);
      if (shape === undefined) throw new PatternError(`mesh needs a VM count with a divisor ≥ 2, got ${n}`);
      const { rows, cols } = shape;
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          if (x + 1 < cols) add(y * cols + x, y * cols + x + 1);
          if (y + 1 < rows) add(y * cols + x, (y + 1) * cols + x);
        }
      }
      break;
    }
    case 'tree':
      for (let i = 1; i < n; i++) add(Math.floor((i - 1) / 2), i);
      break;
    case 'neighbour': {
      const k = options.k ?? 2;
      if (!Number.isSafeInteger(k) || k < 1 || 2 * k + 1 >= n) {
        throw new PatternError(`neighbour exchange of width ${k} needs more than ${2 * k + 1} VMs, got ${n}`);
      }
      for (let i = 0; i < n; i++) for (let d = 1; d <= k; d++) add(i, (i + d) % n);
      break;
    }
  }
  return edges;
}

export interface SyntheticTrafficParams {
  /** Undirected pattern edges over indices into `vms`; both directions carry traffic. */
  readonly edges: readonly PatternEdge[];
  readonly vms: readonly VmPlacement[];
  /** Bytes per message and messages per second, per direction of each edge. */
  readonly messageBytes: number;
  readonly messagesPerSecond: number;
  readonly startMs: number;
  readonly endMs: number;
  /** Random background traffic: `fraction` of the pattern's bytes, spread over `pairs` random ordered VM pairs. */
  readonly background?: { readonly fraction: number; readonly random: Random; readonly pairs?: number };
  /** Hosts that report even with no traffic (default: the hosts of `vms`). */
  readonly hosts?: readonly string[];
}

const FRAME_BYTES = 1514;

function entryFor(src: VmPlacement, dst: VmPlacement, bytes: number): TrafficEntry {
  const b = Math.max(64, Math.round(bytes));
  return { src: src.mac, dst: dst.mac, frames: Math.max(1, Math.ceil(b / FRAME_BYTES)), bytes: b };
}

/** The reports every host would send for one period of the pattern (one per host, entries at the source VM's host). */
export function syntheticReports(p: SyntheticTrafficParams): TrafficReport[] {
  const seconds = (p.endMs - p.startMs) / 1000;
  const perDirection = p.messageBytes * p.messagesPerSecond * seconds;
  const bytes = new Map<number, number>(); // src * n + dst → bytes
  const n = p.vms.length;
  for (const [a, b] of p.edges) {
    bytes.set(a * n + b, (bytes.get(a * n + b) ?? 0) + perDirection);
    bytes.set(b * n + a, (bytes.get(b * n + a) ?? 0) + perDirection);
  }
  const bg = p.background;
  if (bg !== undefined && bg.fraction > 0 && n >= 2) {
    const total = perDirection * 2 * p.edges.length * bg.fraction;
    const count = bg.pairs ?? Math.min(n * (n - 1), 4 * n);
    const picks: [number, number][] = [];
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const s = randomInt(bg.random, n);
      let d = randomInt(bg.random, n - 1);
      if (d >= s) d++;
      const w = bg.random();
      picks.push([s * n + d, w]);
      sum += w;
    }
    for (const [key, w] of picks) bytes.set(key, (bytes.get(key) ?? 0) + (total * w) / sum);
  }
  const byHost = new Map<string, TrafficEntry[]>();
  for (const h of p.hosts ?? p.vms.map((v) => v.host)) byHost.set(h, []);
  for (const [key, b] of bytes) {
    const src = p.vms[Math.floor(key / n)]!;
    const dst = p.vms[key % n]!;
    const list = byHost.get(src.host) ?? [];
    list.push(entryFor(src, dst, b));
    byHost.set(src.host, list);
  }
  return [...byHost].map(([host, entries]) => ({ host, startMs: p.startMs, endMs: p.endMs, entries }));
}
