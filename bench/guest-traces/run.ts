/**
 * Real guest memory figures: records the standard traces (optional) and prints
 * the redundancy and change figures of every trace the migration bench would
 * use (listGuestTraces' default directories: guest/out/traces, bench/traces).
 *
 *   node --import tsx bench/guest-traces/run.ts            figures of existing traces
 *   node --import tsx bench/guest-traces/run.ts --record   first record idle, compile,
 *                                                          memwrite (128 MiB, 41 snapshots
 *                                                          250 ms apart: 10 s of guest time)
 *   … --detail                                             per-snapshot tables too
 *
 * Recording needs root-free QEMU/TCG only (qemu-system-x86, busybox-static,
 * linux-image-amd64, cpio, gzip) and takes about a minute per workload on two cores.
 */
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GUEST_WORKLOADS, REPO_ROOT, recordGuestTrace } from '../../src/migration/qemu/qemu-guest-recorder.ts';
import { loadTrace } from '../../src/migration/qemu/trace-format.ts';
import { DEFAULT_TRACE_DIRS, findTraceFiles } from '../../src/migration/guests/trace-guest.ts';
import { computeTraceStats, formatTraceStats } from '../../src/migration/qemu/trace-stats.ts';

const args = process.argv.slice(2);
const outDir = join(REPO_ROOT, 'guest', 'out', 'traces');

if (args.includes('--record')) {
  mkdirSync(outDir, { recursive: true });
  for (const workload of GUEST_WORKLOADS) {
    const out = join(outDir, `${workload}-128m.trace`);
    process.stdout.write(`recording ${workload} → ${out} … `);
    const r = await recordGuestTrace({ workload, out, memoryMiB: 128, snapshots: 41, intervalMs: 250, warmupMs: 2000 });
    console.log(`${(r.fileBytes / 2 ** 20).toFixed(1)} MiB, boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.wallMs / 1000).toFixed(1)} s`);
  }
}

const paths = await findTraceFiles();
if (paths.length === 0) {
  console.log(`no traces in ${DEFAULT_TRACE_DIRS.join(', ')}; run with --record`);
  process.exit(0);
}

const pct = (x: number): string => (Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`);
const n0 = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(0));
console.log('\ntrace                        MiB  snaps  guest-s   zero%    dup%  dirty pages/s  changed/interval p50  delta p50 B  delta p90 B  delta mean B');
for (const path of paths) {
  const st = computeTraceStats(await loadTrace(path));
  console.log(
    [
      basename(path, '.trace').padEnd(26),
      String(Math.round((st.pageCount * st.pageSize) / 2 ** 20)).padStart(5),
      String(st.snapshots.length).padStart(6),
      (st.durationMs / 1000).toFixed(1).padStart(8),
      pct(st.zeroShare).padStart(7),
      pct(st.duplicateShare).padStart(7),
      n0(st.dirtyRate).padStart(14),
      n0(st.changedPerInterval.p50).padStart(21),
      n0(st.delta.p50).padStart(12),
      n0(st.delta.p90).padStart(12),
      n0(st.delta.mean).padStart(13),
    ].join(' '),
  );
  if (args.includes('--detail')) console.log(`\n${formatTraceStats(st)}\n`);
}
