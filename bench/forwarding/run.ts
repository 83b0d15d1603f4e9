/**
 * Forwarding-table and traffic-counter throughput: the per-frame costs the
 * daemon pays on its hot path, measured in-process with no I/O.
 *
 *   node --import tsx bench/forwarding/run.ts [--seconds 1]
 *
 * Each scenario runs a warm-up, then three trials of as many rounds as fit in
 * a third of the time given, and prints the best trial's operations per
 * second of CPU time (this process's, GC threads included: the machine is
 * shared, and wall time would measure the neighbours), ns per operation, and
 * young-generation collections per million operations (about 0: the path
 * allocates nothing). For scale: 10 Gbit/s of 1500-byte frames is ~0.83 M
 * frames/s; with 64 KiB GSO super-frames it is ~19 k frames/s.
 *
 * The "string-key Map" rows are the peer figure: the obvious implementation
 * (one Map keyed by `${src}|${dst}|${ingress}`), for comparison.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { ManualClock } from '../../src/common/clock.ts';
import { parseRule } from '../../src/dataplane/forwarding-rule.ts';
import { ForwardingTable } from '../../src/dataplane/forwarding-table.ts';
import { BROADCAST_MAC, formatMac, localMac } from '../../src/common/mac.ts';
import { TrafficCounters } from '../../src/dataplane/traffic-counters.ts';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg >= 0 ? Number(process.argv[secondsArg + 1]) : 1;
const N = 1 << 16; // operations per round
const TRIALS = 3; // best of: the least disturbed trial

interface Row {
  name: string;
  opsPerSec: number;
  ops: number;
  startMs: number;
  endMs: number;
}

/** GC start times; delivered asynchronously, so they are matched to scenarios by time at the end. */
const gcTimes: number[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcTimes.push(e.startTime);
});
gcObserver.observe({ entryTypes: ['gc'] });
const rows: Row[] = [];

function measure(name: string, round: () => number, opsPerRound = N): void {
  let sink = 0;
  for (let i = 0; i < 20; i++) sink += round(); // warm-up (JIT)
  let best = 0;
  let allOps = 0;
  const startMs = performance.now();
  for (let trial = 0; trial < TRIALS; trial++) {
    let ops = 0;
    const start = performance.now();
    const cpu0 = process.cpuUsage();
    const deadline = start + (SECONDS * 1000) / TRIALS;
    let now = start;
    while (now < deadline) {
      sink += round();
      ops += opsPerRound;
      now = performance.now();
    }
    const cpu = process.cpuUsage(cpu0);
    best = Math.max(best, ops / ((cpu.user + cpu.system) / 1e6));
    allOps += ops;
  }
  rows.push({ name, opsPerSec: best, ops: allOps, startMs, endMs: performance.now() });
  if (sink === -1) console.log('unreachable');
}

/** A flow workload: parallel arrays of src, dst, ingress, N long. */
function workload(flows: { src: number; dst: number; ingress: number }[], pick: (i: number) => number): { src: Float64Array; dst: Float64Array; ing: Int32Array } {
  const src = new Float64Array(N);
  const dst = new Float64Array(N);
  const ing = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const f = flows[pick(i) % flows.length]!;
    src[i] = f.src;
    dst[i] = f.dst;
    ing[i] = f.ingress;
  }
  return { src, dst, ing };
}

let seed = 42;
/** mulberry32: a small PRNG with good low bits. */
function rnd(n: number): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) % n;
}

// ---- a spoke with 32 VMs, a hub link, 8 fast-path links and 40 rules --------

const VMS = 32;
const REMOTE = 512;
const clock = new ManualClock();
const table = new ForwardingTable({ role: 'spoke', clock });
const portIngress: number[] = [];
for (let v = 0; v < VMS; v++) portIngress.push(table.addPort(`vm${v}`, `vm${v}`));
const hub = table.addLink('hub', 'backbone', 'hub');
const fast: number[] = [];
for (let f = 0; f < 8; f++) fast.push(table.addLink(`fast${f}`, 'fast-path', `fast${f}`));
const vmMac = (v: number): number => localMac(v + 1);
const remoteMac = (r: number): number => localMac(10_000 + r);
table.setRules(
  'controller',
  Array.from({ length: 40 }, (_, i) =>
    // Each placed where its frames come from (the fast-path link it is learned at, or behind the hub): no MAC conflicts.
    parseRule({ id: `fp${i}`, priority: 100 + (i % 5), src: 'any', dst: formatMac(remoteMac(i * 7)), action: { link: `fast${(i * 7) % 8}` } }, 'controller'),
  ),
);
for (let v = 0; v < VMS; v++) table.learn(vmMac(v), portIngress[v]!);
for (let r = 0; r < REMOTE; r++) table.learn(remoteMac(r), r % 3 === 0 ? fast[r % 8]! : hub);

const localFlows = [];
for (let v = 0; v < VMS; v++) for (let w = 0; w < VMS; w++) if (v !== w) localFlows.push({ src: vmMac(v), dst: vmMac(w), ingress: portIngress[v]! });
const outFlows = [];
for (let v = 0; v < VMS; v++) for (let r = 0; r < 64; r++) outFlows.push({ src: vmMac(v), dst: remoteMac((v * 64 + r) % REMOTE), ingress: portIngress[v]! });
const inFlows = [];
for (let r = 0; r < REMOTE; r++) inFlows.push({ src: remoteMac(r), dst: vmMac(r % VMS), ingress: r % 3 === 0 ? fast[r % 8]! : hub });

function forwardRound(w: ReturnType<typeof workload>): () => number {
  return () => {
    let n = 0;
    for (let i = 0; i < N; i++) n += table.forward(w.src[i]!, w.dst[i]!, w.ing[i]!).ports.length;
    return n;
  };
}

const single = workload([outFlows[0]!], () => 0);
measure('forward: one flow (last-hit path)', forwardRound(single));
const bursty = workload(outFlows, (i) => Math.floor(i / 32) * 7919); // batches of 32 frames of one flow
measure('forward: 2048 flows, bursts of 32', forwardRound(bursty));
const mixed = workload([...localFlows, ...outFlows, ...inFlows], () => rnd(1 << 30));
measure(`forward: ${localFlows.length + outFlows.length + inFlows.length} flows, random order`, forwardRound(mixed));
const bcast = workload(
  Array.from({ length: VMS }, (_, v) => ({ src: vmMac(v), dst: BROADCAST_MAC, ingress: portIngress[v]! })),
  () => rnd(1 << 30),
);
measure('forward: broadcasts from 32 VMs', forwardRound(bcast));

// misses: every round starts from an empty cache (a rule change) and sends the first frame of every flow
const allFlows = [...localFlows, ...outFlows, ...inFlows];
const cold = { src: Float64Array.from(allFlows, (f) => f.src), dst: Float64Array.from(allFlows, (f) => f.dst), ing: Int32Array.from(allFlows, (f) => f.ingress) };
measure(
  `forward, cache misses (first frame of ${allFlows.length} flows after a rule change, 40 rules)`,
  () => {
    table.removeRule('fp0');
    table.addRule(parseRule({ id: 'fp0', priority: 100, src: 'any', dst: formatMac(remoteMac(0)), action: { link: 'fast0' } }, 'controller'));
    let n = 0;
    for (let i = 0; i < allFlows.length; i++) n += table.forward(cold.src[i]!, cold.dst[i]!, cold.ing[i]!).ports.length;
    return n;
  },
  allFlows.length,
);
const stats = table.stats;

// ---- the peer: one string-keyed Map -----------------------------------------

const naive = new Map<string, { ports: string[] }>();
function naiveRound(w: ReturnType<typeof workload>): () => number {
  return () => {
    let n = 0;
    for (let i = 0; i < N; i++) {
      const key = `${w.src[i]}|${w.dst[i]}|${w.ing[i]}`;
      let e = naive.get(key);
      if (e === undefined) naive.set(key, (e = { ports: [] }));
      n += e.ports.length;
    }
    return n;
  };
}
measure('string-key Map: one flow', naiveRound(single));
measure(`string-key Map: ${localFlows.length + outFlows.length + inFlows.length} flows, random order`, naiveRound(mixed));

// ---- traffic counters --------------------------------------------------------

function counterRound(c: TrafficCounters, w: ReturnType<typeof workload>): () => number {
  return () => {
    for (let i = 0; i < N; i++) c.add(w.src[i]!, w.dst[i]!, 1500);
    return 0;
  };
}
measure('counters.add: one pair (last-pair path)', counterRound(new TrafficCounters({ startMs: 0 }), single));
measure('counters.add: 2048 pairs, bursts of 32', counterRound(new TrafficCounters({ startMs: 0 }), bursty));
measure('counters.add: 3552 pairs, random order', counterRound(new TrafficCounters({ startMs: 0 }), mixed));
const naiveCounts = new Map<string, { frames: number; bytes: number }>();
measure('string-key Map counters: 3552 pairs, random order', () => {
  for (let i = 0; i < N; i++) {
    const key = `${mixed.src[i]}|${mixed.dst[i]}`;
    let e = naiveCounts.get(key);
    if (e === undefined) naiveCounts.set(key, (e = { frames: 0, bytes: 0 }));
    e.frames++;
    e.bytes += 1500;
  }
  return 0;
});
const snapCounters = new TrafficCounters({ startMs: 0 });
let snapMs = 0;
let snapPairs = 0;
for (let i = 1; i <= 20; i++) {
  counterRound(snapCounters, mixed)();
  const t0 = performance.now();
  snapPairs = snapCounters.snapshotAndReset(i).entries.length;
  if (i > 10) snapMs += (performance.now() - t0) / 10; // mean of the last ten (warm)
}

// ---- report ------------------------------------------------------------------

await new Promise((resolve) => setTimeout(resolve, 100)); // let the GC observer deliver
gcObserver.disconnect();

console.log(`forwarding bench: node ${process.version}, ${SECONDS}s per scenario, best of ${TRIALS} trials, per CPU-second`);
const width = Math.max(...rows.map((r) => r.name.length));
for (const r of rows) {
  const mops = (r.opsPerSec / 1e6).toFixed(2).padStart(7);
  const ns = (1e9 / r.opsPerSec).toFixed(1).padStart(7);
  const gcs = ((gcTimes.filter((t) => t >= r.startMs && t <= r.endMs).length / r.ops) * 1e6).toFixed(2).padStart(6);
  console.log(`  ${r.name.padEnd(width)}  ${mops} M ops/s  ${ns} ns/op  ${gcs} GCs/M ops`);
}
console.log(`  snapshotAndReset of ${snapPairs} pairs (warm, mean of 10): ${snapMs.toFixed(2)} ms`);
console.log(`  table stats: macConflicts ${table.stats.macConflicts}, hits ${stats.hits}, misses ${stats.misses}, invalidations ${stats.invalidations}`);
