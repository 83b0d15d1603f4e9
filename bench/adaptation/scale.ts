// VTTIF + VADAPT at scale: 1,000 hosts, 10,000 VMs, a sparse matrix (each VM
// talks to ~10 others). Measures the per-update cost of each stage of the
// VTTIF step and of fast-path selection over many updates, the heap held,
// then the reaction time (update periods from a pattern change to the
// topology event) per Patterns graph, and the classification cost of
// structured 10,000-VM graphs.
//
//   node --expose-gc --import tsx bench/adaptation/scale.ts [--updates 40] [--hosts 1000] [--vms 10000] [--partners 10]
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { localMac } from '../../src/common/mac.ts';
import { detectChange, INITIAL_CHANGE_DETECTION } from '../../src/topology/change-detection.ts';
import { classify } from '../../src/topology/classify.ts';
import { selectFastPaths, type HostLink } from '../../src/topology/fast-path-selection.ts';
import { normalise, prune } from '../../src/topology/normalise.ts';
import { simulatePatterns } from '../../src/topology/pattern-simulation.ts';
import { PATTERN_KINDS, patternEdges, type PatternKind } from '../../src/topology/patterns.ts';
import { validateReport } from '../../src/topology/report-validation.ts';
import { seededRandom } from '../../src/topology/seeded-random.ts';
import { smoothMatrix, type SmoothedMatrix } from '../../src/topology/smoothing.ts';
import { mergeReports } from '../../src/topology/traffic-matrix.ts';
import type { TrafficEntry, TrafficReport } from '../../src/topology/traffic-report.ts';
import { buildRegistryIndex, undirectedKey, type VmPlacement } from '../../src/topology/vm-registry.ts';
import { DEFAULT_VTTIF_PARAMS, INITIAL_VTTIF_STATE, vttifStep, type VttifState } from '../../src/topology/vttif.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const HOSTS = arg('hosts', 1000);
const VMS = arg('vms', 10_000);
const PARTNERS = arg('partners', 10);
const UPDATES = arg('updates', 40);
const WARMUP = 5;
const PERIOD_MS = DEFAULT_VTTIF_PARAMS.updatePeriodMs;
const gc = (globalThis as { gc?: () => void }).gc;

function stats(xs: number[]): { min: number; median: number; mean: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return {
    min: s[0]!,
    median: s[s.length >> 1]!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    p99: s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!,
    max: s[s.length - 1]!,
  };
}

function heapMB(): number {
  gc?.();
  return process.memoryUsage().heapUsed / 1e6;
}

// ---- the scale scenario -------------------------------------------------
const random = seededRandom(2026);
const vms: VmPlacement[] = Array.from({ length: VMS }, (_, i) => ({ id: `vm${i}`, mac: localMac(i + 1), host: `host${i % HOSTS}` }));
const registry = buildRegistryIndex(vms);
// Each VM sends to PARTNERS others: half near (VMs of a few "rack-mate" hosts), half anywhere.
const partners: number[][] = vms.map((_, i) => {
  const set = new Set<number>();
  while (set.size < PARTNERS) {
    const near = set.size < PARTNERS / 2;
    const j = near ? (i + HOSTS * (1 + Math.floor(random() * 3)) + Math.floor(random() * 4)) % VMS : Math.floor(random() * VMS);
    if (j !== i) set.add(j);
  }
  return [...set];
});
const baseRate = partners.map((ps) => ps.map(() => 50_000 + Math.floor(random() * 2_000_000))); // B/s per pair

function reportsAt(startMs: number, endMs: number): TrafficReport[] {
  const byHost: TrafficEntry[][] = Array.from({ length: HOSTS }, () => []);
  const seconds = (endMs - startMs) / 1000;
  for (let i = 0; i < VMS; i++) {
    const ps = partners[i]!;
    for (let k = 0; k < ps.length; k++) {
      const bytes = Math.round(baseRate[i]![k]! * seconds * (0.9 + 0.2 * random()));
      byHost[i % HOSTS]!.push({ src: vms[i]!.mac, dst: vms[ps[k]!]!.mac, frames: Math.ceil(bytes / 1500), bytes });
    }
  }
  return byHost.map((entries, h) => ({ host: `host${h}`, startMs, endMs, entries }));
}

console.log(`# VTTIF + fast-path selection at scale: ${HOSTS} hosts, ${VMS} VMs, ${PARTNERS} partners per VM, ${UPDATES} updates (+${WARMUP} warm-up)`);
console.log(`# params: ${JSON.stringify(DEFAULT_VTTIF_PARAMS)}; node ${process.version}; gc ${gc ? 'exposed' : 'not exposed (run with --expose-gc for exact heap figures)'}`);
const heapBefore = heapMB();

const stages = ['validate', 'merge', 'smooth', 'normalise+prune', 'classify', 'change detection', 'update: merge → change detection', 'VTTIF total', 'vttifStep (one call)', 'fast-path selection'] as const;
const wall = new Map<string, number[]>(stages.map((s) => [s, []]));
const cpu = new Map<string, number[]>(stages.map((s) => [s, []]));
let smoothed: SmoothedMatrix | undefined;
let detection = INITIAL_CHANGE_DETECTION;
let stepState: VttifState = INITIAL_VTTIF_STATE;
let links: HostLink[] = [];
let now = 1_000_000;
let entriesPerUpdate = 0;
let lastClass = '';
let lastEdges = 0;
let lastRules = 0;
let events = 0;
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
for (let u = 0; u < WARMUP + UPDATES; u++) {
  const reports = reportsAt(now, now + PERIOD_MS);
  entriesPerUpdate = reports.reduce((s, r) => s + r.entries.length, 0);
  now += PERIOD_MS;
  if (process.argv.includes("--gc-each")) gc?.();
  const t: number[] = [];
  const c: number[] = [];
  const mark = (): void => {
    t.push(performance.now());
    c.push(cpuMs());
  };
  mark();
  const valid = reports.map((r) => validateReport(r)).flatMap((v) => (v.ok ? [v.report] : []));
  mark();
  const merged = mergeReports(valid, registry);
  mark();
  smoothed = smoothMatrix(smoothed, merged, registry, now, { smoothingIntervalMs: DEFAULT_VTTIF_PARAMS.smoothingIntervalMs });
  mark();
  const norm = normalise(smoothed);
  const pruned = prune(norm, DEFAULT_VTTIF_PARAMS.pruneFraction);
  mark();
  const topology = classify(pruned, { minConfidence: DEFAULT_VTTIF_PARAMS.minConfidence });
  mark();
  const d = detectChange(detection, norm, topology, now, DEFAULT_VTTIF_PARAMS);
  detection = d.state;
  mark();
  const step = vttifStep(stepState, reports, registry, DEFAULT_VTTIF_PARAMS, now);
  stepState = step.state;
  mark();
  const plan = selectFastPaths(
    { matrix: smoothed, registry, currentLinks: links, hubHost: 'host0' },
    { budget: { maxLinksPerHost: 4, maxLinksTotal: 1000 }, addThresholdBytesPerSecond: 5_000_000, keepThresholdBytesPerSecond: 2_500_000 },
  );
  links = [...plan.links];
  mark();
  if (d.event) events++;
  lastClass = `${topology.class} (confidence ${topology.confidence.toFixed(2)})`;
  lastEdges = pruned.weights.size;
  lastRules = plan.rules.length;
  if (u < WARMUP) continue;
  const rec = (s: string, from: number, to: number): void => {
    wall.get(s)!.push(t[to]! - t[from]!);
    cpu.get(s)!.push(c[to]! - c[from]!);
  };
  stages.slice(0, 6).forEach((s, i) => rec(s, i, i + 1));
  rec('update: merge → change detection', 1, 6);
  rec('VTTIF total', 0, 6);
  rec('vttifStep (one call)', 6, 7);
  rec('fast-path selection', 7, 8);
}
const heapAfter = heapMB();
console.log(`# ${entriesPerUpdate} report entries per update; smoothed matrix ${smoothed!.rates.size} directed edges; pruned graph ${lastEdges} undirected edges → ${lastClass}; ${events} topology event(s); ${links.length} fast-path links, ${lastRules} rules`);
console.log('');
console.log('(validation runs as reports arrive — vttifStep validates and buffers early reports — so the per-update path is merge → change detection)');
console.log(`load average during the run: ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs (wall time includes waiting for a CPU; CPU time is this process's, all threads)`);
console.log('');
console.log('| stage (per update) | wall min ms | wall median ms | wall mean ms | wall p99 ms | CPU mean ms | CPU p99 ms |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const s of stages) {
  const w = stats(wall.get(s)!);
  const x = stats(cpu.get(s)!);
  console.log(`| ${s} | ${w.min.toFixed(1)} | ${w.median.toFixed(1)} | ${w.mean.toFixed(1)} | ${w.p99.toFixed(1)} | ${x.mean.toFixed(1)} | ${x.p99.toFixed(1)} |`);
}
console.log('');
console.log(`heap used: ${heapBefore.toFixed(1)} MB before the run (scenario generated), ${heapAfter.toFixed(1)} MB after (state held: smoothed matrix, baseline, step state) → +${(heapAfter - heapBefore).toFixed(1)} MB`);
console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);

if (process.argv.includes('--scale-only')) process.exit(0);

// ---- reaction time per pattern -------------------------------------------
console.log('');
console.log('## Reaction time: update periods from a pattern change to the topology event (16 VMs on 4 hosts, 10% background, 10 seeds)');
console.log('');
console.log('| pattern X | cold start → X mean / max | all-to-all → X mean / max | X → all-to-all mean / max | stable 60 periods: extra events |');
console.log('|---|---:|---:|---:|---:|');
function reaction(from: PatternKind | undefined, to: PatternKind, seed: number): { periods: number; extra: number } {
  const phases = from === undefined ? [{ kind: to, periods: 60 }] : [{ kind: from, periods: 30 }, { kind: to, periods: 30 }];
  const out = simulatePatterns({ vmCount: 16, hostCount: 4, phases, params: DEFAULT_VTTIF_PARAMS, seed });
  const last = phases.length - 1;
  const inPhase = out.filter((p) => p.phase === last && p.event !== undefined);
  return { periods: inPhase.length > 0 ? inPhase[0]!.periodInPhase + 1 : Number.NaN, extra: Math.max(0, inPhase.length - 1) };
}
for (const kind of PATTERN_KINDS) {
  const cells: string[] = [];
  let extra = 0;
  for (const from of [undefined, kind === 'all-to-all' ? 'ring' : 'all-to-all', 'to'] as const) {
    const rs: number[] = [];
    for (let seed = 1; seed <= 10; seed++) {
      if (from === 'to') {
        const other: PatternKind = kind === 'all-to-all' ? 'ring' : 'all-to-all';
        rs.push(reaction(kind, other, seed).periods);
      } else {
        const r = reaction(from as PatternKind | undefined, kind, seed);
        rs.push(r.periods);
        if (from === undefined) extra += r.extra;
      }
    }
    const s = stats(rs);
    cells.push(`${s.mean.toFixed(1)} / ${s.max}`);
  }
  const label = kind === 'all-to-all' ? 'all-to-all (other: ring)' : kind;
  console.log(`| ${label} | ${cells.join(' | ')} | ${extra} |`);
}

// ---- classification of structured graphs at 10,000 VMs --------------------
console.log('');
console.log(`## Classification of ${VMS}-VM Patterns graphs (VMs numbered at random)`);
console.log('');
console.log('| pattern | edges | class | confidence | classify ms |');
console.log('|---|---:|---|---:|---:|');
const perm = Array.from({ length: VMS }, (_, i) => i);
for (let i = perm.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [perm[i], perm[j]] = [perm[j]!, perm[i]!];
}
for (const kind of PATTERN_KINDS.filter((k) => k !== 'all-to-all')) {
  const weights = new Map<number, number>();
  for (const [a, b] of patternEdges(kind, VMS)) weights.set(undirectedKey(perm[a]!, perm[b]!, VMS), 1);
  const t0 = performance.now();
  const t = classify({ ids: registry.ids, weights, maxBytesPerSecond: 1 });
  const ms = performance.now() - t0;
  console.log(`| ${kind} | ${weights.size} | ${t.class} | ${t.confidence.toFixed(3)} | ${ms.toFixed(1)} |`);
}
