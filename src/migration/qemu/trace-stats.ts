import { createHash } from 'node:crypto';
import type { Trace } from './trace-format.ts';

/**
 * Redundancy and change figures of a recorded guest trace — what a migration
 * of that guest could save, measured on real memory:
 *
 *   zero share        pages that are all zeros (sent as a flag, not content)
 *   duplicate share   non-zero pages whose content another page also holds,
 *                     counting every copy but the first (sent once, then referenced)
 *   dirty rate        pages changed between successive snapshots per second of
 *                     guest running time (a lower bound: a page written twice
 *                     between two snapshots counts once)
 *   delta size        per changed page, the size of the XOR delta against the
 *                     page's previous content in the engine's encoding rule
 *                     (src/migration/engine/delta.ts: a 16-byte map of 32-byte chunks,
 *                     plus 32 bytes per chunk that changed)
 *   reuse             of the changed pages, how many are zero, duplicates of
 *                     another changed page, or content the previous image
 *                     already held somewhere (a destination cache hit)
 *
 * Pure: a function of the trace. Page identity is by MD5 of the content.
 */

const CHUNK = 32;
const DELTA_MAP = 16;

export interface Distribution {
  readonly count: number;
  readonly min: number;
  readonly p10: number;
  readonly p50: number;
  readonly p90: number;
  readonly max: number;
  readonly mean: number;
}

export interface SnapshotStats {
  readonly index: number;
  readonly tMs: number;
  /** Pages changed since the previous snapshot (for snapshot 0: non-zero pages). */
  readonly changedPages: number;
  /** changedPages per second of guest time since the previous snapshot; NaN for snapshot 0. */
  readonly dirtyRate: number;
  readonly zeroPages: number;
  readonly zeroShare: number;
  readonly duplicatePages: number;
  readonly duplicateShare: number;
  /** Of the changed pages: zero, duplicates within this delta, content already present in the previous image. */
  readonly changedZero: number;
  readonly changedDuplicate: number;
  readonly changedInPrevious: number;
  /** Delta sizes (bytes) of this snapshot's changed pages; empty for snapshot 0. */
  readonly delta: Distribution;
  /** Sum of min(delta, page) over the changed pages: bytes a delta-sending migration would put on the wire. */
  readonly deltaBytes: number;
}

export interface TraceStats {
  readonly pageSize: number;
  readonly pageCount: number;
  readonly workload: string;
  readonly durationMs: number;
  readonly snapshots: readonly SnapshotStats[];
  /** Means over all snapshots. */
  readonly zeroShare: number;
  readonly duplicateShare: number;
  /** Delta sizes of every changed page of snapshots 1…n. */
  readonly delta: Distribution;
  /** Changed pages per snapshot interval (snapshots 1…n). */
  readonly changedPerInterval: Distribution;
  /** Total changed pages of snapshots 1…n over the traced guest time. */
  readonly dirtyRate: number;
}

export function computeTraceStats(trace: Trace): TraceStats {
  const { pageSize, pageCount } = trace;
  const mem = Buffer.alloc(pageSize * pageCount);
  const zero = Buffer.alloc(pageSize);
  const zeroKey = md5(zero);
  const keys: string[] = new Array<string>(pageCount).fill(zeroKey);
  const counts = new Map<string, number>([[zeroKey, pageCount]]);
  const out: SnapshotStats[] = [];
  const allDeltas: number[] = [];
  const perInterval: number[] = [];
  let prevT = 0;

  for (const snap of trace.snapshots) {
    const n = snap.pages.length;
    const data = Buffer.from(snap.data.buffer, snap.data.byteOffset, snap.data.length);
    const newKeys: string[] = [];
    const seenInDelta = new Set<string>();
    let changedZero = 0;
    let changedDuplicate = 0;
    let changedInPrevious = 0;
    const deltas: number[] = [];
    let deltaBytes = 0;
    for (let i = 0; i < n; i++) {
      const page = data.subarray(i * pageSize, (i + 1) * pageSize);
      const key = page.equals(zero) ? zeroKey : md5(page);
      newKeys.push(key);
      if (key === zeroKey) changedZero++;
      else if (seenInDelta.has(key)) changedDuplicate++;
      else if ((counts.get(key) ?? 0) > 0) changedInPrevious++;
      seenInDelta.add(key);
      if (snap.index > 0) {
        const p = snap.pages[i] ?? 0;
        const d = deltaSize(mem.subarray(p * pageSize, (p + 1) * pageSize), page);
        deltas.push(d);
        deltaBytes += Math.min(d, pageSize);
      }
    }
    for (let i = 0; i < n; i++) {
      const p = snap.pages[i] ?? 0;
      const key = newKeys[i] ?? zeroKey;
      const old = keys[p] ?? zeroKey;
      const left = (counts.get(old) ?? 1) - 1;
      if (left === 0) counts.delete(old);
      else counts.set(old, left);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      keys[p] = key;
      data.copy(mem, p * pageSize, i * pageSize, (i + 1) * pageSize);
    }
    const zeroPages = counts.get(zeroKey) ?? 0;
    const distinctNonZero = counts.size - (zeroPages > 0 ? 1 : 0);
    const duplicatePages = pageCount - zeroPages - distinctNonZero;
    const dt = snap.tMs - prevT;
    out.push({
      index: snap.index,
      tMs: snap.tMs,
      changedPages: n,
      dirtyRate: snap.index === 0 || dt <= 0 ? Number.NaN : (n * 1000) / dt,
      zeroPages,
      zeroShare: zeroPages / pageCount,
      duplicatePages,
      duplicateShare: duplicatePages / pageCount,
      changedZero,
      changedDuplicate,
      changedInPrevious,
      delta: distribution(deltas),
      deltaBytes,
    });
    if (snap.index > 0) {
      allDeltas.push(...deltas);
      perInterval.push(n);
    }
    prevT = snap.tMs;
  }
  const first = trace.snapshots[0]?.tMs ?? 0;
  const durationMs = prevT - first;
  const totalChanged = perInterval.reduce((a, b) => a + b, 0);
  return {
    pageSize,
    pageCount,
    workload: trace.meta.workload,
    durationMs,
    snapshots: out,
    zeroShare: mean(out.map((s) => s.zeroShare)),
    duplicateShare: mean(out.map((s) => s.duplicateShare)),
    delta: distribution(allDeltas),
    changedPerInterval: distribution(perInterval),
    dirtyRate: durationMs > 0 ? (totalChanged * 1000) / durationMs : Number.NaN,
  };
}

/** Size of the engine's XOR chunk delta from `old` to `next`. */
export function deltaSize(old: Uint8Array, next: Uint8Array): number {
  let chunks = 0;
  for (let off = 0; off < next.length; off += CHUNK) {
    for (let i = off; i < off + CHUNK; i++) {
      if (old[i] !== next[i]) {
        chunks++;
        break;
      }
    }
  }
  return DELTA_MAP + CHUNK * chunks;
}

export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { count: 0, min: Number.NaN, p10: Number.NaN, p50: Number.NaN, p90: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const s = Float64Array.from(values).sort();
  const q = (f: number): number => s[Math.min(s.length - 1, Math.floor(f * (s.length - 1) + 0.5))] ?? Number.NaN;
  return { count: s.length, min: s[0] ?? Number.NaN, p10: q(0.1), p50: q(0.5), p90: q(0.9), max: s[s.length - 1] ?? Number.NaN, mean: mean(values) };
}

/** A plain-text report (the CLI prints it). */
export function formatTraceStats(st: TraceStats): string {
  const pct = (x: number): string => (Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`);
  const num = (x: number, d = 0): string => (Number.isNaN(x) ? '-' : x.toFixed(d));
  const lines = [
    `workload ${st.workload}: ${st.pageCount} pages of ${st.pageSize} B (${((st.pageCount * st.pageSize) / 2 ** 20).toFixed(0)} MiB), ${st.snapshots.length} snapshots over ${(st.durationMs / 1000).toFixed(2)} s of guest time`,
    `zero pages ${pct(st.zeroShare)}  duplicate pages ${pct(st.duplicateShare)}  (means over snapshots)`,
    `dirty rate ${num(st.dirtyRate)} pages/s  changed pages per interval: median ${num(st.changedPerInterval.p50)} (p10 ${num(st.changedPerInterval.p10)}, p90 ${num(st.changedPerInterval.p90)})`,
    `delta size per changed page: median ${num(st.delta.p50)} B (p10 ${num(st.delta.p10)}, p90 ${num(st.delta.p90)}, mean ${num(st.delta.mean)}) of ${st.pageSize} B`,
    '',
    '  snap     t(s)  changed  pages/s   zero%    dup%  chg-zero  chg-dup  chg-in-prev  delta-p50  wire(delta) KiB',
  ];
  for (const s of st.snapshots) {
    lines.push(
      [
        String(s.index).padStart(6),
        (s.tMs / 1000).toFixed(2).padStart(8),
        String(s.changedPages).padStart(8),
        num(s.dirtyRate).padStart(8),
        pct(s.zeroShare).padStart(7),
        pct(s.duplicateShare).padStart(7),
        String(s.changedZero).padStart(9),
        String(s.changedDuplicate).padStart(8),
        String(s.changedInPrevious).padStart(12),
        num(s.delta.p50).padStart(10),
        (s.index === 0 ? '-' : (s.deltaBytes / 1024).toFixed(0)).padStart(16),
      ].join(' '),
    );
  }
  return lines.join('\n');
}

function md5(b: Uint8Array): string {
  return createHash('md5').update(b).digest('base64');
}

function mean(v: readonly number[]): number {
  const f = v.filter((x) => !Number.isNaN(x));
  return f.length === 0 ? Number.NaN : f.reduce((a, b) => a + b, 0) / f.length;
}
