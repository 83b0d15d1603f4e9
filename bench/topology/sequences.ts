// Topology inference on sequences, through the real pure pipeline (merge →
// smoothing → normalise/prune → classify → change detection) in virtual
// time: every ordered pair of the seven Patterns classes (a pattern replaced
// by another), each run started after short unrelated traffic (pings along
// a path of 4 VMs for 2 s, then an ARP sweep), plus patterns that start one
// edge at a time, a brief mix before the real pattern, a long ping path
// (announced as a bus) replaced by the pattern, and background traffic
// alone. Seeded bursty per-period rates (±50%) and random background
// traffic at 10% and 30% of the pattern's bytes, 8 and 16 VMs on 4 hosts.
//
// For each measured phase: announced correctly or not, update periods to
// the correct announcement, wrong announcements on the way. Goal: 100%
// correct within 3 smoothing windows, none stuck, no wrong announcement.
//
//   node --import tsx bench/topology/sequences.ts            # at the defaults
//   node --import tsx bench/topology/sequences.ts --grid     # + the parameter grid the defaults were chosen from
//   options: --seeds N (default 1); --smoothing MS --threshold X --hold F --settle S --release R run
//   the sequences at other parameters than the defaults
import { PATTERN_KINDS, type PatternKind } from '../../src/topology/patterns.ts';
import { simulateSequence, startupSequence, type PhaseOutcome, type SequencePhase } from '../../src/topology/sequence-simulation.ts';
import { DEFAULT_VTTIF_PARAMS, parseVttifParams, type VttifParams } from '../../src/topology/vttif.ts';

const GRID = process.argv.includes('--grid');
const seedsArg = process.argv.indexOf('--seeds');
const SEEDS = seedsArg >= 0 ? Number(process.argv[seedsArg + 1]) : 1;
const SHORT: Record<PatternKind, string> = { 'all-to-all': 'a2a', ring: 'ring', bus: 'bus', star: 'star', mesh: 'mesh', tree: 'tree', neighbour: 'nbr' };

interface Case {
  readonly name: string;
  readonly phases: SequencePhase[];
  /** Which phases count (index into phases). */
  readonly measured: number[];
}

function cases(params: VttifParams): { pairs: Map<string, Case>; extras: Case[] } {
  const w = params.smoothingIntervalMs;
  const phaseMs = Math.max(40_000, 5 * w);
  const pairs = new Map<string, Case>();
  for (const a of PATTERN_KINDS) {
    for (const b of PATTERN_KINDS) {
      if (a === b) continue;
      pairs.set(`${a}>${b}`, { name: `${a} → ${b}`, phases: startupSequence(a, b, w), measured: [2, 3] });
    }
  }
  const extras: Case[] = [];
  for (const k of PATTERN_KINDS) {
    extras.push({
      name: `staggered ${k}`,
      phases: [
        { traffic: { kind: 'pings', length: 4 }, durationMs: 2000 },
        { traffic: { kind: 'staggered', pattern: k, spreadMs: w / 2 }, durationMs: phaseMs, expect: k },
      ],
      measured: [1],
    });
    extras.push({
      name: `brief mix → ${k}`,
      phases: [
        { traffic: { kind: 'mix', patterns: ['ring', 'star'] }, durationMs: Math.max(3000, w / 2) },
        { traffic: { kind: 'pattern', pattern: k }, durationMs: phaseMs, expect: k },
      ],
      measured: [1],
    });
    if (k !== 'bus') {
      extras.push({
        name: `long pings (bus) → ${k}`,
        phases: [
          { traffic: { kind: 'pings', length: 6 }, durationMs: phaseMs, expect: 'bus' },
          { traffic: { kind: 'pattern', pattern: k }, durationMs: phaseMs, expect: k },
        ],
        measured: [0, 1],
      });
    }
  }
  extras.push({ name: 'background only', phases: [{ traffic: { kind: 'noise' }, durationMs: 2 * phaseMs }], measured: [0] });
  return { pairs, extras };
}

interface Totals {
  phases: number;
  correct: number;
  withinGoal: number;
  stuck: number;
  wrong: number;
  periods: number[];
  noiseAnnouncements: number;
}

function emptyTotals(): Totals {
  return { phases: 0, correct: 0, withinGoal: 0, stuck: 0, wrong: 0, periods: [], noiseAnnouncements: 0 };
}

function account(t: Totals, o: PhaseOutcome, goalPeriods: number): void {
  if (o.expect === undefined) {
    t.noiseAnnouncements += o.events.length;
    return;
  }
  t.phases++;
  t.wrong += o.wrong;
  if (!o.correct) {
    t.stuck++;
    return;
  }
  t.correct++;
  t.periods.push(o.periodsToCorrect!);
  if (o.periodsToCorrect! <= goalPeriods) t.withinGoal++;
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))]!;
}

function runAll(params: VttifParams, n: number, bg: number, print: boolean): Totals {
  const totals = emptyTotals();
  const goal = Math.ceil((3 * params.smoothingIntervalMs) / params.updatePeriodMs);
  const { pairs, extras } = cases(params);
  const cell = new Map<string, string>();
  for (let seed = 1; seed <= SEEDS; seed++) {
    for (const [key, c] of pairs) {
      const out = simulateSequence({ vmCount: n, hostCount: 4, phases: c.phases, params, seed: seed * 7919 + key.length * 31 + n, backgroundFraction: bg });
      for (const i of c.measured) account(totals, out[i]!, goal);
      const b = out[3]!;
      const a = out[2]!;
      const show = (o: PhaseOutcome): string => (o.correct ? String(o.periodsToCorrect) : 'STUCK') + (o.wrong > 0 ? `!${o.wrong}` : '');
      if (seed === 1) cell.set(key, `${show(a)}/${show(b)}`);
    }
    for (const c of extras) {
      const out = simulateSequence({ vmCount: n, hostCount: 4, phases: c.phases, params, seed: seed * 104_729 + c.name.length * 13 + n, backgroundFraction: bg });
      for (const i of c.measured) account(totals, out[i]!, goal);
      if (print && seed === 1) {
        const m = c.measured.map((i) => out[i]!);
        const text = m.map((o) => (o.expect === undefined ? `${o.events.length} announcements` : (o.correct ? `${o.periodsToCorrect} p` : 'STUCK') + (o.wrong > 0 ? ` (${o.wrong} wrong: ${o.events.filter((e) => e.topology.class !== o.expect).map((e) => e.topology.class).join(',')})` : ''))).join(' / ');
        extraLines.push(`  ${c.name.padEnd(28)} ${text}`);
      }
    }
  }
  if (print) {
    console.log(`\n## ${n} VMs, background ${Math.round(bg * 100)}% — cell: periods to the first pattern / to the second (A → B), !k = k wrong announcements`);
    console.log(`${'A \\ B'.padEnd(6)}${PATTERN_KINDS.map((k) => SHORT[k].padStart(10)).join('')}`);
    for (const a of PATTERN_KINDS) {
      console.log(`${SHORT[a].padEnd(6)}${PATTERN_KINDS.map((b) => (a === b ? '—' : cell.get(`${a}>${b}`)!).padStart(10)).join('')}`);
    }
    console.log('other sequences (periods to the correct announcement):');
    for (const l of extraLines) console.log(l);
    extraLines.length = 0;
    printTotals(totals, goal);
  }
  return totals;
}

const extraLines: string[] = [];

function printTotals(t: Totals, goal: number): void {
  console.log(`totals: ${t.phases} measured phases; correct ${t.correct} (${((100 * t.correct) / t.phases).toFixed(1)}%), within 3 windows (${goal} periods) ${t.withinGoal} (${((100 * t.withinGoal) / t.phases).toFixed(1)}%); stuck ${t.stuck}; wrong announcements ${t.wrong}; announcements on background alone ${t.noiseAnnouncements}; periods to correct: median ${quantile(t.periods, 0.5)}, p90 ${quantile(t.periods, 0.9)}, max ${Math.max(...t.periods)}`);
}

function numberArg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

const overrides = Object.fromEntries(
  ([['smoothingIntervalMs', 'smoothing'], ['detectionThreshold', 'threshold'], ['holdFraction', 'hold'], ['settleLimit', 'settle'], ['releaseFraction', 'release']] as const)
    .map(([key, flag]) => [key, numberArg(flag)] as const)
    .filter(([, v]) => v !== undefined),
);
const started = performance.now();
const p = Object.keys(overrides).length === 0 ? DEFAULT_VTTIF_PARAMS : parseVttifParams(overrides);
console.log(`# sequence benchmark at ${p === DEFAULT_VTTIF_PARAMS ? 'the defaults' : 'parameters given'}: updatePeriodMs ${p.updatePeriodMs}, smoothingIntervalMs ${p.smoothingIntervalMs}, detectionThreshold ${p.detectionThreshold}, persistence ${p.persistence}, holdFraction ${p.holdFraction}, settleLimit ${p.settleLimit}, pruneFraction ${p.pruneFraction}, releaseFraction ${p.releaseFraction}, minConfidence ${p.minConfidence}; seeds ${SEEDS}; node ${process.version}`);
const all = emptyTotals();
for (const n of [8, 16]) {
  for (const bg of [0.1, 0.3]) {
    const t = runAll(p, n, bg, true);
    all.phases += t.phases; all.correct += t.correct; all.withinGoal += t.withinGoal; all.stuck += t.stuck; all.wrong += t.wrong; all.noiseAnnouncements += t.noiseAnnouncements; all.periods.push(...t.periods);
  }
}
console.log('\n## all four settings');
printTotals(all, Math.ceil((3 * p.smoothingIntervalMs) / p.updatePeriodMs));

if (GRID) {
  console.log('\n## grid (8 and 16 VMs, background 10% and 30%, all sequences above; periods to correct in update periods of 1 s)');
  console.log('smoothing  threshold  hold   settle | correct  in 3τ   stuck  wrong  noise | median   p90   max  (s)');
  for (const smoothingIntervalMs of [2000, 5000, 10_000]) {
    for (const detectionThreshold of [0.15, 0.3]) {
      for (const holdFraction of [0.25, 0.35, 0.5, 1]) {
        for (const settleLimit of [0.3, 0.5]) {
          if (detectionThreshold === 0.15 && !(holdFraction === 0.5 && settleLimit === 0.3)) continue; // the threshold only moves baselines: one point suffices
          const params = parseVttifParams({ smoothingIntervalMs, detectionThreshold, holdFraction, settleLimit });
          const t = emptyTotals();
          for (const n of [8, 16]) {
            for (const bg of [0.1, 0.3]) {
              const x = runAll(params, n, bg, false);
              t.phases += x.phases; t.correct += x.correct; t.withinGoal += x.withinGoal; t.stuck += x.stuck; t.wrong += x.wrong; t.noiseAnnouncements += x.noiseAnnouncements; t.periods.push(...x.periods);
            }
          }
          const pct = (x: number): string => `${((100 * x) / t.phases).toFixed(1)}%`.padStart(7);
          console.log(`${String(smoothingIntervalMs).padStart(9)}  ${String(detectionThreshold).padStart(9)}  ${String(holdFraction).padStart(4)}  ${String(settleLimit).padStart(6)} | ${pct(t.correct)} ${pct(t.withinGoal)} ${String(t.stuck).padStart(6)} ${String(t.wrong).padStart(6)} ${String(t.noiseAnnouncements).padStart(6)} | ${String(quantile(t.periods, 0.5)).padStart(6)} ${String(quantile(t.periods, 0.9)).padStart(5)} ${String(Math.max(...t.periods)).padStart(5)}`);
        }
      }
    }
  }
}
if (GRID) {
  console.log('\n## release fraction at the other defaults (pruning: an edge leaves once a view smoothed with τ × release has it under the prune fraction; 0 = off)');
  console.log('release | correct  in 3τ   stuck  wrong  noise | median   p90   max');
  for (const releaseFraction of [0, 0.25, 0.33, 0.5, 0.75, 1]) {
    const params = parseVttifParams({ releaseFraction });
    const t = emptyTotals();
    for (const n of [8, 16]) {
      for (const bg of [0.1, 0.3]) {
        const x = runAll(params, n, bg, false);
        t.phases += x.phases; t.correct += x.correct; t.withinGoal += x.withinGoal; t.stuck += x.stuck; t.wrong += x.wrong; t.noiseAnnouncements += x.noiseAnnouncements; t.periods.push(...x.periods);
      }
    }
    const pct = (x: number): string => `${((100 * x) / t.phases).toFixed(1)}%`.padStart(7);
    console.log(`${String(releaseFraction).padStart(7)} | ${pct(t.correct)} ${pct(t.withinGoal)} ${String(t.stuck).padStart(6)} ${String(t.wrong).padStart(6)} ${String(t.noiseAnnouncements).padStart(6)} | ${String(quantile(t.periods, 0.5)).padStart(6)} ${String(quantile(t.periods, 0.9)).padStart(5)} ${String(Math.max(...t.periods)).padStart(5)}`);
  }
}
console.log(`\n# ${((performance.now() - started) / 1000).toFixed(1)} s`);
