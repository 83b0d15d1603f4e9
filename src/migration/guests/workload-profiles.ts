/**
 * Workload profiles named after the seed workloads, and the scenarios the
 * benchmark runs them in. Every number says where it came from. The seeds
 * are slide transcripts: where they give a figure we use it; where they only
 * show a chart without numbers, the value is our estimate, chosen to match
 * the chart's shape, and marked "estimate".
 */
import type { DiskWorkloadParams, MemoryWorkloadParams } from './workload.ts';

export type ProfileName = 'idle' | 'kernel-compile' | 'tpc-w' | 'specjbb' | 'npb-mg' | 'oltp';

export interface WorkloadProfile {
  readonly name: ProfileName;
  readonly description: string;
  readonly memory: MemoryWorkloadParams;
  readonly disk: DiskWorkloadParams;
  /** Where each parameter came from. */
  readonly sources: Readonly<Record<string, string>>;
}

export const PROFILES: Readonly<Record<ProfileName, WorkloadProfile>> = {
  idle: {
    name: 'idle',
    description: 'an idle Linux guest: timers, logging, a little page cache churn',
    memory: { dirtyRate: 40, wssShare: 0.02, hotShare: 0.002, locality: 0.9, zeroShare: 0.75, dupShare: 0.05, bytesPerWrite: 128, rewriteShare: 0.1 },
    disk: { writeRate: 1, wssShare: 0.01, zeroShare: 0.5, ioCoupling: 0 },
    sources: {
      dirtyRate: 'estimate: tens of pages/s for an idle kernel (timer wheel, slab, journald)',
      wssShare: 'estimate: kernel data and a few daemons, ~2% of RAM',
      hotShare: 'estimate: a handful of kernel pages rewritten every tick',
      locality: 'estimate: nearly all writes to the same few pages',
      zeroShare: 'estimate: free RAM of a freshly booted guest is zero-filled; the real idle trace (guest/) shows most of RAM zero',
      dupShare: 'estimate: a few shared library pages',
      bytesPerWrite: 'estimate: counters and list heads, a cache line or two',
      rewriteShare: 'estimate',
      disk: 'estimate: a log line a second',
      ioCoupling: 'estimate: log writes go through the page cache; nothing in an idle guest waits for them',
    },
  },
  'kernel-compile': {
    name: 'kernel-compile',
    description: 'CloudNet: Linux kernel compile (gcc processes, page cache of sources and objects)',
    memory: { dirtyRate: 9000, wssShare: 0.35, hotShare: 0.05, locality: 0.75, zeroShare: 0.15, dupShare: 0.12, bytesPerWrite: 512, rewriteShare: 0.25 },
    disk: { writeRate: 200, wssShare: 0.05, zeroShare: 0.5, ioCoupling: 0.1 },
    sources: {
      dirtyRate: 'CloudNet slide 15 (smart stop, 1.7 GB VM): ~15,000-21,000 pages dirtied per iteration of a few seconds at its share of 465 Mbit/s; 9,000 writes/s',
      wssShare: 'estimate: source tree, objects and compiler heaps in the page cache, about a third of 1.7 GB',
      hotShare: 'CloudNet slide 15: dirtied pages plateau near 20,000 pages (~5% of 1.7 GB)',
      locality: 'estimate: most writes to the compilers\' heaps and stacks (the hot set)',
      zeroShare: 'CloudNet slide 13 (redundancy, % of RAM: zeroes): chart without numbers; estimate, kernel compile the least redundant of the three',
      dupShare: 'CloudNet slide 13 (non-zero duplicates): estimate; source files sit both in the page cache and in gcc buffers',
      bytesPerWrite: 'CloudNet slide 14 (page diff size histogram, kernel compile): mass below 1 KB; 512 B',
      rewriteShare: 'estimate: new compiler processes and object files fill fresh pages',
      disk: 'estimate: object files written at ~0.8 MB/s',
      ioCoupling: 'estimate: gcc does not fsync; only writeback throttling (a full block queue) holds writers back, a tenth of the time',
    },
  },
  'tpc-w': {
    name: 'tpc-w',
    description: 'CloudNet: TPC-W web shop (Tomcat + MySQL), many small updates to a hot buffer pool',
    memory: { dirtyRate: 6000, wssShare: 0.2, hotShare: 0.04, locality: 0.85, zeroShare: 0.35, dupShare: 0.15, bytesPerWrite: 256, rewriteShare: 0.1 },
    disk: { writeRate: 100, wssShare: 0.03, zeroShare: 0.5, ioCoupling: 0.3 },
    sources: {
      dirtyRate: 'estimate, scaled to give CloudNet slide 5 downtimes of a few seconds at ~100 Mbit/s per VM',
      wssShare: 'estimate: the database buffer pool and Tomcat heap, a fifth of RAM',
      hotShare: 'estimate: hot rows and session objects, ~4% of RAM',
      locality: 'estimate: a skewed (hot-item) request mix',
      zeroShare: 'CloudNet slide 13: TPC-W the most redundant of the three (chart, estimate)',
      dupShare: 'CloudNet slide 13 (non-zero duplicates, chart): estimate; cached pages and images held twice',
      bytesPerWrite: 'CloudNet slide 14 (page diff size histogram, TPC-W): most deltas small; 256 B',
      rewriteShare: 'estimate: few whole-page rewrites, mostly in-place row updates',
      disk: 'estimate: database log and table writes, ~0.4 MB/s',
      ioCoupling: 'CloudNet slide 20: TPC-W response time rises under synchronous disk replication when latency is high (commits wait for the log); 0.3 is an estimate',
    },
  },
  specjbb: {
    name: 'specjbb',
    description: 'CloudNet: SPECjbb (Java heap, garbage collection copies whole pages)',
    memory: { dirtyRate: 15000, wssShare: 0.6, hotShare: 0.08, locality: 0.7, zeroShare: 0.1, dupShare: 0.25, bytesPerWrite: 768, rewriteShare: 0.3 },
    disk: { writeRate: 20, wssShare: 0.01, zeroShare: 0.5, ioCoupling: 0 },
    sources: {
      dirtyRate: 'CloudNet slide 5: SPECjbb has the longest pause of the three at every bandwidth: the highest dirty rate; estimate',
      wssShare: 'estimate: the Java heap, most of RAM',
      hotShare: 'estimate: the young generation, ~8% of RAM',
      locality: 'estimate: allocation in the young generation, with old-generation updates',
      zeroShare: 'CloudNet slide 13 (chart, estimate): the heap is allocated, few zero pages',
      dupShare: 'CloudNet slide 13: SPECjbb has many non-zero duplicates (chart, estimate)',
      bytesPerWrite: 'estimate: object updates larger than the database rows of TPC-W',
      rewriteShare: 'estimate: garbage collection copies whole pages',
      disk: 'estimate: SPECjbb barely touches the disk',
      ioCoupling: 'estimate: nothing in SPECjbb waits for the disk',
    },
  },
  'npb-mg': {
    name: 'npb-mg',
    description: 'TLM: NAS Parallel Benchmark MG class D on a 16 GB guest, dirtying faster than the link carries',
    memory: { dirtyRate: 600_000, wssShare: 12.1 / 16, hotShare: 12.1 / 16, locality: 0, zeroShare: 0.2, dupShare: 0.01, bytesPerWrite: 1536, rewriteShare: 0.3 },
    disk: { writeRate: 0, wssShare: 0.01, zeroShare: 0.9, ioCoupling: 0 },
    sources: {
      dirtyRate: 'TLM slides: "can generate over 600,000 dirty pages in a sec."',
      wssShare: 'TLM slides: MG, 16 GB RAM, 12.1 GB working set',
      locality: 'TLM slides: "Very High Memory Update, Low Locality": writes uniform over the working set',
      zeroShare: 'estimate: RAM outside the working set mostly untouched (zero)',
      hotShare: 'TLM slides: low locality: the hot set is the whole working set',
      dupShare: 'estimate: numerical arrays hardly repeat',
      bytesPerWrite: 'estimate: stencil sweeps rewrite long runs of doubles in a page',
      rewriteShare: 'estimate: a sweep overwrites whole pages of a grid level',
      disk: 'estimate: an in-memory benchmark; no disk writes',
      ioCoupling: 'no disk writes',
    },
  },
  oltp: {
    name: 'oltp',
    description: 'write-heavy OLTP database (TPC-C-like): a hot buffer pool and 6 MB/s of log and page writes, commits wait for the disk',
    memory: { dirtyRate: 8000, wssShare: 0.3, hotShare: 0.05, locality: 0.8, zeroShare: 0.25, dupShare: 0.1, bytesPerWrite: 256, rewriteShare: 0.1 },
    disk: { writeRate: 1500, wssShare: 0.05, zeroShare: 0.5, ioCoupling: 0.5 },
    sources: {
      purpose: 'not a seed workload: the write-heavy case CloudNet warns about (slide 20: "Synchronous disk replication reduces application performance if latency is high"), for bench/migration/disk-sync.ts',
      dirtyRate: 'estimate: a TPC-W-like buffer pool (6,000/s) under a heavier update mix',
      wssShare: 'estimate: buffer pool and connection state, ~30% of RAM',
      hotShare: 'estimate: hot rows and index pages, ~5% of RAM',
      locality: 'estimate: skewed (hot warehouse) access',
      zeroShare: 'estimate: between TPC-W and kernel compile',
      dupShare: 'estimate',
      bytesPerWrite: 'estimate: row updates, as TPC-W (CloudNet slide 14)',
      rewriteShare: 'estimate: mostly in-place updates',
      disk: 'estimate: 1,500 4 KiB writes/s (6 MB/s: redo log plus page flushes) over 5% of the disk; a busy 2011-era OLTP VM',
      ioCoupling: 'estimate: half of the work waits for commits (the redo log write) when the write queue is full',
    },
  },
};

export const PROFILE_NAMES: readonly ProfileName[] = ['idle', 'kernel-compile', 'tpc-w', 'specjbb', 'npb-mg', 'oltp'];

export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly ramBytes: number;
  readonly diskBytes: number;
  readonly bandwidthBps: number;
  readonly rttMs: number;
  /** Migrations sharing the link at once. */
  readonly vms: number;
  readonly source: string;
}

const GiB = 1024 ** 3;

export const SCENARIOS = {
  cloudnet: {
    name: 'cloudnet',
    description: 'four VMs of 1.7 GB RAM and 10 GB disk, together over 465 Mbit/s at 27 ms RTT',
    ramBytes: 1.7 * GiB,
    diskBytes: 10 * GiB,
    bandwidthBps: 465e6,
    rttMs: 27,
    vms: 4,
    source: 'CloudNet slide 19 (cloud burst, Richardson TX to Chicago IL)',
  },
  tlm: {
    name: 'tlm',
    description: 'one 16 GB guest over 10 Gbit/s at 0.2 ms RTT (a data-centre LAN)',
    ramBytes: 16 * GiB,
    diskBytes: 0,
    bandwidthBps: 10e9,
    rttMs: 0.2,
    vms: 1,
    source: 'TLM slides: 16 GB MG guest; link speed not in the transcript (estimate: 10 GbE, under the 2.4 GB/s dirty rate)',
  },
} as const satisfies Record<string, Scenario>;

/** Reference RAM each profile's rates were set for: 1.7 GB (CloudNet VMs) or 16 GB (TLM's MG guest). */
export function profileReferencePages(name: ProfileName): number {
  return name === 'npb-mg' ? SCENARIOS.tlm.ramBytes / 4096 : Math.round(SCENARIOS.cloudnet.ramBytes / 4096);
}

/**
 * A profile shrunk to `pages` of RAM with every rate scaled by the same
 * factor, so that with the link scaled alike the migration has the same
 * shape (iterations, ratios) in a fraction of the work: for tests.
 */
export function scaledProfile(name: ProfileName, pages: number): { profile: WorkloadProfile; factor: number } {
  const p = PROFILES[name];
  const factor = pages / profileReferencePages(name);
  return {
    factor,
    profile: { ...p, memory: { ...p.memory, dirtyRate: p.memory.dirtyRate * factor }, disk: { ...p.disk, writeRate: p.disk.writeRate * factor } },
  };
}
