import { localMac } from '../common/mac.ts';
import type { TopologyChangeEvent } from './change-detection.ts';
import type { TopologyClass } from './class-fit.ts';
import { patternEdges, type PatternKind } from './patterns.ts';
import { randomInt, seededRandom, type Random } from './seeded-random.ts';
import type { TrafficEntry, TrafficReport } from './traffic-report.ts';
import { buildRegistryIndex, type VmPlacement } from './vm-registry.ts';
import { INITIAL_VTTIF_STATE, vttifStepValidated, type VttifParams, type VttifState, type VttifStepResult } from './vttif.ts';

/**
 * Sequences of traffic through the real pure pipeline (merge → smoothing →
 * normalise/prune → classify → change detection), in virtual time, the way
 * a new user's deployment sees them: a few pings and an ARP sweep at start-up,
 * then an application's pattern, then another; patterns that start one edge
 * at a time; a brief mix before the real pattern; background traffic; bursty
 * per-period rates. Each phase may name the class it expects, and the run
 * says whether (and when) that class was announced, and what was announced
 * wrongly on the way. Pure and seeded. Used by bench/topology/sequences.ts
 * and test/topology/vttif-sequences.test.ts.
 */

export type PhaseTraffic =
  /** A Patterns graph over the VMs in a fresh seeded random order. */
  | { readonly kind: 'pattern'; readonly pattern: PatternKind }
  /** Its edges start one at a time, in random order, spread over `spreadMs`. */
  | { readonly kind: 'staggered'; readonly pattern: PatternKind; readonly spreadMs: number }
  /** The union of several patterns (each in its own order). */
  | { readonly kind: 'mix'; readonly patterns: readonly PatternKind[] }
  /** ping -i 1 (98-byte echo and reply) along a path of `length` VMs. */
  | { readonly kind: 'pings'; readonly length: number }
  /** One VM ARPs every other VM once (the unicast replies; requests are broadcast). */
  | { readonly kind: 'arp-sweep' }
  /** Background traffic only. */
  | { readonly kind: 'noise' }
  | { readonly kind: 'quiet' };

export interface SequencePhase {
  readonly traffic: PhaseTraffic;
  readonly durationMs: number;
  /** The class that should be announced during this phase (measured when set). */
  readonly expect?: TopologyClass;
}

export interface SequenceParams {
  readonly vmCount: number;
  readonly hostCount: number;
  readonly phases: readonly SequencePhase[];
  readonly params: VttifParams;
  readonly seed: number;
  /** Random background traffic as a fraction of the pattern's bytes (default 0.1). */
  readonly backgroundFraction?: number;
  /** Each entry's bytes vary per period by ±burst (default 0.5: 0.5–1.5×). */
  readonly burst?: number;
  /** Relative jitter of each period's length (default 0.1). */
  readonly periodJitter?: number;
  /** Bytes per second per direction of each pattern edge (default 640,000). */
  readonly edgeBytesPerSecond?: number;
  /** Called after every update (to look inside a run). */
  readonly trace?: (phase: number, period: number, result: VttifStepResult) => void;
}

export interface PhaseOutcome {
  readonly phase: number;
  readonly expect: TopologyClass | undefined;
  /** Announcements made during the phase. */
  readonly events: readonly TopologyChangeEvent[];
  /** The expected class is what stands announced at the end of the phase. */
  readonly correct: boolean;
  /** Update periods from the phase's start to the announcement of the expected class (that then stood). */
  readonly periodsToCorrect: number | undefined;
  /** Announcements during the phase of another class. */
  readonly wrong: number;
  readonly periods: number;
}

const PING_BYTES_PER_SECOND = 98;
const ARP_REPLY_BYTES = 64;
const FRAME_BYTES = 1514;

function shuffled(n: number, random: Random): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

interface ActiveEdge {
  readonly a: number;
  readonly b: number;
  readonly bytesPerSecond: number;
  /** Offset from the phase's start at which it starts (ms). */
  readonly startMs: number;
}

function phaseEdges(t: PhaseTraffic, n: number, rate: number, random: Random): ActiveEdge[] {
  const mapped = (kind: PatternKind): [number, number][] => {
    const order = shuffled(n, random);
    return patternEdges(kind, n).map(([a, b]) => [order[a]!, order[b]!]);
  };
  switch (t.kind) {
    case 'pattern':
      return mapped(t.pattern).map(([a, b]) => ({ a, b, bytesPerSecond: rate, startMs: 0 }));
    case 'staggered': {
      const edges = mapped(t.pattern);
      const starts = shuffled(edges.length, random);
      return edges.map(([a, b], i) => ({ a, b, bytesPerSecond: rate, startMs: (starts[i]! * t.spreadMs) / Math.max(1, edges.length - 1) }));
    }
    case 'mix': {
      const seen = new Set<number>();
      const out: ActiveEdge[] = [];
      for (const kind of t.patterns) {
        for (const [a, b] of mapped(kind)) {
          const key = Math.min(a, b) * n + Math.max(a, b);
          if (!seen.has(key)) out.push({ a, b, bytesPerSecond: rate, startMs: 0 });
          seen.add(key);
        }
      }
      return out;
    }
    case 'pings': {
      const order = shuffled(n, random);
      return Array.from({ length: Math.min(n, t.length) - 1 }, (_, i) => ({ a: order[i]!, b: order[i + 1]!, bytesPerSecond: PING_BYTES_PER_SECOND, startMs: 0 }));
    }
    default:
      return [];
  }
}

/** Run the phases through the pipeline; one outcome per phase. */
export function simulateSequence(sim: SequenceParams): PhaseOutcome[] {
  const random = seededRandom(sim.seed);
  const n = sim.vmCount;
  const vms: VmPlacement[] = Array.from({ length: n }, (_, i) => ({ id: `vm${i}`, mac: localMac(i + 1), host: `host${i % sim.hostCount}` }));
  const registry = buildRegistryIndex(vms);
  const hosts = [...new Set(vms.map((v) => v.host))];
  const rate = sim.edgeBytesPerSecond ?? 640_000;
  const background = sim.backgroundFraction ?? 0.1;
  const burst = sim.burst ?? 0.5;
  const jitter = sim.periodJitter ?? 0.1;
  const period = sim.params.updatePeriodMs;
  let state: VttifState = INITIAL_VTTIF_STATE;
  let now = 1_000_000;
  let announced: TopologyClass | undefined;
  const outcomes: PhaseOutcome[] = [];
  sim.phases.forEach((phase, index) => {
    const edges = phaseEdges(phase.traffic, n, rate, random);
    const phaseStart = now;
    const events: TopologyChangeEvent[] = [];
    let periods = 0;
    let correctAt: number | undefined;
    let arpDone = false;
    while (now - phaseStart < phase.durationMs) {
      const length = Math.round(period * (1 + jitter * (2 * random() - 1)));
      const start = now;
      const end = now + length;
      const bytes = new Map<number, number>();
      const add = (src: number, dst: number, b: number): void => {
        if (b > 0) bytes.set(src * n + dst, (bytes.get(src * n + dst) ?? 0) + b);
      };
      let patternBytes = 0;
      for (const e of edges) {
        const from = Math.max(start, phaseStart + e.startMs);
        const seconds = Math.max(0, end - from) / 1000;
        for (const [s, d] of [[e.a, e.b], [e.b, e.a]] as const) {
          const b = e.bytesPerSecond * seconds * (1 + burst * (2 * random() - 1));
          add(s, d, b);
          if (e.bytesPerSecond === rate) patternBytes += b;
        }
      }
      if (phase.traffic.kind === 'arp-sweep' && !arpDone) {
        arpDone = true;
        const asker = randomInt(random, n);
        for (let v = 0; v < n; v++) if (v !== asker) add(v, asker, ARP_REPLY_BYTES);
      }
      const noiseBase = phase.traffic.kind === 'noise' ? rate * 2 * n * (length / 1000) : patternBytes;
      if (background > 0 && noiseBase > 0) {
        const picks = Math.min(n * (n - 1), 4 * n);
        const weights: [number, number, number][] = [];
        let sum = 0;
        for (let i = 0; i < picks; i++) {
          const s = randomInt(random, n);
          let d = randomInt(random, n - 1);
          if (d >= s) d++;
          const w = random();
          weights.push([s, d, w]);
          sum += w;
        }
        for (const [s, d, w] of weights) add(s, d, (noiseBase * background * w) / sum);
      }
      const byHost = new Map<string, TrafficEntry[]>(hosts.map((h) => [h, []]));
      for (const [key, b] of bytes) {
        const src = vms[Math.floor(key / n)]!;
        const dst = vms[key % n]!;
        const total = Math.max(64, Math.round(b));
        byHost.get(src.host)!.push({ src: src.mac, dst: dst.mac, frames: Math.max(1, Math.ceil(total / FRAME_BYTES)), bytes: total });
      }
      const reports: TrafficReport[] = [...byHost].map(([host, entries]) => ({ host, startMs: start, endMs: end, entries }));
      now = end;
      const r = vttifStepValidated(state, reports, registry, sim.params, now);
      state = r.state;
      periods++;
      sim.trace?.(index, periods, r);
      if (r.event !== undefined) {
        events.push(r.event);
        announced = r.event.topology.class;
        if (announced === phase.expect) correctAt ??= periods;
        else correctAt = undefined;
      }
    }
    const correct = phase.expect !== undefined && announced === phase.expect;
    // Announced in an earlier phase and still standing (e.g. a superset that was already there): correct from the start.
    if (correct && correctAt === undefined && events.length === 0) correctAt = 0;
    outcomes.push({
      phase: index,
      expect: phase.expect,
      events,
      correct,
      periodsToCorrect: correct ? correctAt : undefined,
      wrong: phase.expect === undefined ? events.length : events.filter((e) => e.topology.class !== phase.expect).length,
      periods,
    });
  });
  return outcomes;
}

/** The sequence a new user's deployment sees: short pings along a path and an ARP sweep, then `first`, then `second`. */
export function startupSequence(first: PatternKind, second: PatternKind | undefined, windowMs: number, pingMs = 2000): SequencePhase[] {
  const phaseMs = Math.max(40_000, 5 * windowMs);
  return [
    { traffic: { kind: 'pings', length: 4 }, durationMs: pingMs },
    { traffic: { kind: 'arp-sweep' }, durationMs: 1000 },
    { traffic: { kind: 'pattern', pattern: first }, durationMs: phaseMs, expect: first },
    ...(second !== undefined ? [{ traffic: { kind: 'pattern', pattern: second }, durationMs: phaseMs, expect: second } as const] : []),
  ];
}
