/**
 * Synchronous disk replication: what it costs the guest. A write-heavy
 * guest (the `oltp` profile: 1,500 block writes/s, half of its work waiting
 * on commits) migrates with its disk replicated synchronously (a write
 * completes only when the destination has acknowledged it; at most
 * `queueDepth` writes outstanding) and, for comparison, asynchronously
 * (writes complete locally at once, DRBD's protocol A), at 1, 10, 27 and
 * 50 ms RTT, in virtual time over an emulated link at CloudNet's per-VM
 * share of 465 Mbit/s. Figures come from running the sender and receiver.
 *
 *   node --import tsx bench/migration/disk-sync.ts [--quick]
 *
 * Per run, over the replication phase (disk switched to replication until
 * the guest pauses): the issue-to-ack latency of the guest's writes (mean,
 * p99), the guest's disk writes per second, the share of that phase the
 * guest spent stalled (write queue full), and the migration's times.
 */
import { ModelGuest } from '../../src/migration/guests/memory-guest.ts';
import { runVirtualMigration } from '../../src/migration/drivers/virtual-time.ts';
import { SmartStop } from '../../src/migration/stop-rules/smart-stop.ts';
import { PROFILES, SCENARIOS } from '../../src/migration/guests/workload-profiles.ts';
import type { DiskReplication } from '../../src/migration/engine/disk-sync.ts';
import type { MigrationResult } from '../../src/migration/engine/migration-result.ts';

export interface DiskSyncRow {
  readonly rttMs: number;
  readonly replication: DiskReplication;
  readonly queueDepth: number;
  readonly r: MigrationResult;
  /** Guest disk writes per second during replication. */
  readonly writesPerSec: number;
  readonly stallShare: number;
  readonly progress: number;
}

export interface DiskSyncBenchOptions {
  readonly quick?: boolean;
  readonly rtts?: readonly number[];
  readonly depths?: readonly number[];
}

const PAGE = 4096;

async function runOne(rttMs: number, replication: DiskReplication, queueDepth: number, quick: boolean): Promise<DiskSyncRow> {
  const p = PROFILES.oltp;
  const cn = SCENARIOS.cloudnet;
  const pages = Math.round((quick ? 0.25 : 1) * 2 ** 30 / PAGE);
  const blocks = Math.round((quick ? 0.5 : 2) * 2 ** 30 / PAGE);
  const bandwidthBps = cn.bandwidthBps / cn.vms;
  const guest = new ModelGuest({ name: `oltp-${replication}-${rttMs}`, pageCount: pages, blockCount: blocks, representation: 'synthetic', memoryWorkload: p.memory, diskWorkload: p.disk, diskQueueDepth: queueDepth, seed: 41 });
  const r = await runVirtualMigration({ guest, rule: new SmartStop(), diskReplication: replication }, { link: { bandwidthBps, rttMs }, batchBytes: 64 * 1024 });
  const ds = r.sender.diskSync;
  const window = (r.sender.pausedAt ?? 0) - (ds?.syncStartedAt ?? 0);
  const writesPerSec = window > 0 && ds !== undefined ? (ds.writes * 1000) / window : 0;
  const stallShare = window > 0 ? guest.diskStallMs / window : 0;
  return { rttMs, replication, queueDepth, r, writesPerSec, stallShare, progress: 1 - (p.disk.ioCoupling ?? 0) * stallShare };
}

function f(v: number, w: number, d = 1): string { return v.toFixed(d).padStart(w); }

export async function runDiskSyncBench(opts: DiskSyncBenchOptions = {}): Promise<DiskSyncRow[]> {
  const quick = opts.quick ?? false;
  const rtts = opts.rtts ?? [1, 10, 27, 50];
  const p = PROFILES.oltp;
  const cn = SCENARIOS.cloudnet;
  console.log(`\n[disk: synchronous vs asynchronous replication] oltp profile (${p.disk.writeRate} writes/s of 4 KiB, I/O coupling ${p.disk.ioCoupling ?? 0}), ${quick ? '0.25 GiB RAM + 0.5 GiB disk' : '1 GiB RAM + 2 GiB disk'}, ${(cn.bandwidthBps / cn.vms / 1e6).toFixed(0)} Mbit/s, smart-stop, queue depth 32`);
  console.log('  RTT(ms)  replication   write latency mean / p99 (ms)   writes/s  vs async  stalled  app progress  mem time(s)  downtime(s)  ok');
  const rows: DiskSyncRow[] = [];
  for (const rtt of rtts) {
    const a = await runOne(rtt, 'asynchronous', 32, quick);
    const s = await runOne(rtt, 'synchronous', 32, quick);
    for (const x of [s, a]) {
      const lat = x.r.sender.diskSync?.latency;
      const latText = x.replication === 'synchronous' ? `${f(lat?.meanMs ?? 0, 8, 2)} / ${f(lat?.p99Ms ?? 0, 7, 2)}` : '       0 (local)  ';
      console.log(`  ${f(rtt, 7, 0)}  ${x.replication.padEnd(12)}  ${latText.padEnd(30)}  ${f(x.writesPerSec, 8, 0)}  ${f(x.writesPerSec / Math.max(1e-9, a.writesPerSec), 8, 2)}  ${f(100 * x.stallShare, 6, 0)}%  ${f(x.progress, 12, 2)}  ${f(x.r.memoryMs / 1000, 11, 1)}  ${f(x.r.downtimeMs / 1000, 11, 2)}  ${x.r.ok ? 'yes' : 'NO'}`);
      if (!x.r.ok) console.log(`    error: ${x.r.error?.message}`);
    }
    rows.push(s, a);
  }
  const depths = opts.depths ?? (quick ? [] : [1, 8, 128]);
  if (depths.length > 0) {
    console.log('\n  queue depth at 27 ms RTT (synchronous): depth, latency mean / p99 (ms), writes/s, stalled');
    for (const d of depths) {
      const x = await runOne(27, 'synchronous', d, quick);
      const lat = x.r.sender.diskSync?.latency;
      console.log(`  ${f(d, 5, 0)}  ${f(lat?.meanMs ?? 0, 8, 2)} / ${f(lat?.p99Ms ?? 0, 7, 2)}  ${f(x.writesPerSec, 8, 0)}  ${f(100 * x.stallShare, 4, 0)}%${x.r.ok ? '' : '  (FAILED)'}`);
      rows.push(x);
    }
  }
  console.log(`  bound: a guest with depth Q can complete at most Q writes per (RTT + transmission + queueing) — 32 writes per 27 ms is ~1,185 writes/s`);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const t0 = performance.now();
  await runDiskSyncBench({ quick: process.argv.includes('--quick') });
  console.log(`\nwall time ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
