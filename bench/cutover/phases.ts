/**
 * Where each move's cutover time went, from the migration's own spans
 * (`cutover.spans` in the API, src/controller/migration-spans.ts), and what
 * the ping saw around each move: the phases as min / median / p95 / max over
 * the moves of a run, then one line per move with its phases and its ping
 * gaps — at the cutover, and the longest one later (with when it came, and
 * when the migration's fast-path link went).
 *
 *   heard       pause → the controller heard it
 *   final copy  pause → the source handed the final copy to the channel
 *   apply       final copy → the destination applied and verified it
 *   ready trip  applied → the controller heard `ready`
 *   commit      ready heard → the commit point durably written
 *   push        commit written → the rules handed to every daemon's channel
 *   acks        push → the last daemon's acknowledgement
 *   cutover     pause → every daemon acknowledged (the goal: < 50 ms)
 *   resume      every daemon acknowledged → the VM runs on the destination
 */
import type { MigrationView } from '../../src/controller/api-views.ts';
import type { PingFigures } from './probes.ts';
import { explainGap, verdictOf, type GapVerdict, type SchedWatch } from './sched-watch.ts';

export interface MoveFigures {
  migration: MigrationView;
  /** Wall clock, ms: when the move was asked for, and when the migration's fast-path link was gone (undefined: not seen). */
  startedAt: number;
  linkRemovedAt: number | undefined;
  /** Wall clock, ms: until when this move owns the ping (the next move's pause — its transfer included — or the end of the run). */
  until: number;
  /** The pause until the first reply to a request sent after it, ms (vnet-overlay.ts answersAgainMs). */
  answersAgainMs?: number;
}

/** A controller event, in short (wall clock, ms). */
export interface ControllerEvent { at: number; what: string }

/** A gap between printed replies, and the longest round trip of the replies that end it (up to 5): short, the pinger was not scheduled; long, the path stalled. */
interface Gap { ms: number; endsAt: number; rttMs: number }

/** The longest gap between consecutive replies that ends in [from, to). */
function longestGap(ping: PingFigures, from: number, to: number): Gap | undefined {
  let best: Gap | undefined;
  const t = ping.replies.map((r) => r.atMs);
  for (let i = 1; i < t.length; i++) {
    if (t[i]! < from || t[i]! >= to) continue;
    const ms = t[i]! - t[i - 1]!;
    if (best === undefined || ms > best.ms) best = { ms, endsAt: t[i]!, rttMs: Math.max(...ping.replies.slice(i, i + 5).map((r) => r.rttMs)) };
  }
  return best;
}

/** Who ran and who waited over a gap, one line: `ping 2/0 · hub 4/160 starved · …`, and why the gap happened (`path`: the daemons the ping crossed). */
function schedLine(sched: SchedWatch, gap: Gap, paused: number, path: readonly string[]): { line: string; verdict: GapVerdict } {
  const from = gap.endsAt - gap.ms;
  const shares = sched.shares(from, gap.endsAt);
  const verdict = explainGap(shares, gap.ms, gap.rttMs, path);
  const span = shares.length === 0 ? '' : ` (samples +${(shares[0]!.fromMs - paused).toFixed(0)}..+${(shares[0]!.toMs - paused).toFixed(0)})`;
  const who = shares.map((s) => {
    const v = verdictOf(s, gap.ms);
    return `${s.who} ${s.runMs.toFixed(0)}/${s.waitMs.toFixed(0)}${v === 'idle' ? '' : ` ${v}`}`;
  });
  const why = verdict.kind === 'pinger' ? `ping not scheduled (waited ${verdict.waitedMs.toFixed(0)})` : verdict.kind === 'scheduling' ? `scheduling: ${path.join('+')} waited ${verdict.waitedMs.toFixed(0)} runnable` : `not scheduling (${path.join('+')} waited ${verdict.waitedMs.toFixed(0)})`;
  const runnable = sched.runnable(from, gap.endsAt);
  return { line: `gap ${gap.ms.toFixed(0)} ms +${(from - paused).toFixed(0)}..+${(gap.endsAt - paused).toFixed(0)}${span}, rtt ${gap.rttMs.toFixed(0)}${runnable === undefined ? '' : `, up to ${runnable} tasks runnable`}: ${who.join(' · ')} → ${why}`, verdict };
}

type Phase = readonly [name: string, of: (m: MigrationView) => number | null];

const sub = (a: number | null | undefined, b: number | null | undefined): number | null => (a == null || b == null ? null : a - b);

const PHASES: readonly Phase[] = [
  ['heard', (m) => m.cutover?.spans?.pausedHeard ?? null],
  ['final copy', (m) => m.cutover?.spans?.finalSent ?? null],
  ['apply', (m) => sub(m.cutover?.spans?.applied, m.cutover?.spans?.finalSent)],
  ['ready trip', (m) => sub(m.cutover?.spans?.ready, m.cutover?.spans?.applied)],
  ['commit', (m) => sub(m.cutover?.spans?.committed, m.cutover?.spans?.ready)],
  ['push', (m) => sub(m.cutover?.spans?.pushed, m.cutover?.spans?.committed)],
  ['acks', (m) => sub(m.cutover?.spans?.acknowledged, m.cutover?.spans?.pushed)],
  ['cutover', (m) => m.cutover?.timeMs ?? null],
  ['resume', (m) => sub(m.cutover?.spans?.resumed, m.cutover?.spans?.acknowledged)],
];

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const cell = (n: number | null | undefined, w = 8): string => (n == null || Number.isNaN(n) ? '—' : n.toFixed(0)).padStart(w);

/** The run's longest ping gap (the row's "max gap"), where it fell and why, one line; undefined without one. */
export function longestGapNote(moves: readonly MoveFigures[], ping: PingFigures, sched: SchedWatch, pingerHost = 'c3'): string | undefined {
  const gap = longestGap(ping, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
  if (gap === undefined) return undefined;
  const i = moves.findLastIndex((m) => pauseOf(m) <= gap.endsAt - gap.ms);
  const m = moves[i];
  if (m === undefined) return `longest gap ${gap.ms.toFixed(0)} ms, before the first move: ${schedLine(sched, gap, gap.endsAt - gap.ms, [pingerHost, 'hub', moves[0]?.migration.from ?? 'c1']).line}`;
  const paused = pauseOf(m);
  const path = gap.endsAt - paused < 1000 ? [pingerHost, 'hub', m.migration.from, m.migration.to] : [pingerHost, 'hub', m.migration.to];
  return `longest gap ${gap.ms.toFixed(0)} ms, move ${i + 1}: ${schedLine(sched, gap, paused, path).line}`;
}

/** The source's pause: the controller heard it `pausedHeard` ms later (`pausedAt`); the move's start if it never paused. */
function pauseOf(m: MoveFigures): number {
  return m.migration.cutover?.pausedAt == null ? m.startedAt : m.migration.cutover.pausedAt - (m.migration.cutover.spans?.pausedHeard ?? 0);
}

/** The phase summary and one line per move, as printed lines. */
export function phaseReport(moves: readonly MoveFigures[], ping: PingFigures, events: readonly ControllerEvent[] = [], sched?: SchedWatch, pingerHost = 'c3'): string[] {
  const out: string[] = [];
  const lateKinds = new Map<GapVerdict['kind'], number>();
  out.push(`cutover phases over ${moves.length} moves (ms; daemons' moments on their wall clocks, one machine):`);
  out.push(`${'phase'.padEnd(12)}${'min'.padStart(8)}${'median'.padStart(8)}${'p95'.padStart(8)}${'max'.padStart(8)}`);
  for (const [name, of] of PHASES) {
    const v = moves.map((m) => of(m.migration)).filter((x): x is number => x !== null).sort((a, b) => a - b);
    out.push(v.length === 0 ? `${name.padEnd(12)}${cell(null)}` : `${name.padEnd(12)}${cell(v[0])}${cell(quantile(v, 0.5))}${cell(quantile(v, 0.95))}${cell(v[v.length - 1])}`);
  }
  out.push(`${'move'.padEnd(5)}${PHASES.map(([n]) => n.slice(0, 7).padStart(8)).join('')}  ${'again'.padStart(8)}${'gap@cut'.padStart(8)}${'late gap'.padStart(9)}${'rtt'.padStart(6)}${'at'.padStart(7)}${'link −'.padStart(8)}  acks (ms after the pause)`);
  for (const [i, m] of moves.entries()) {
    const paused = pauseOf(m);
    const atCut = longestGap(ping, paused, paused + 1000);
    const late = longestGap(ping, paused + 1000, m.until);
    const acks = Object.entries(m.migration.cutover?.spans?.acks ?? {}).map(([h, t]) => `${h}+${t}`).join(' ');
    out.push(`${String(i + 1).padEnd(5)}${PHASES.map(([, of]) => cell(of(m.migration))).join('')}  ${cell(m.answersAgainMs)}${cell(atCut?.ms)}${cell(late?.ms, 9)}${cell(late?.rttMs, 6)}${cell(sub(late?.endsAt, paused), 7)}${cell(sub(m.linkRemovedAt, paused))}  ${acks}`);
    // A gap of more than 100 ms: who was scheduled over it, and what the controller did from 300 ms before it to its end.
    const cutPath = [pingerHost, 'hub', m.migration.from, m.migration.to];
    if (atCut !== undefined && atCut.ms > 100 && sched !== undefined) out.push(`       at the cut: ${schedLine(sched, atCut, paused, cutPath).line}`);
    if (late !== undefined && late.ms > 100 && sched !== undefined) {
      const { line, verdict } = schedLine(sched, late, paused, [pingerHost, 'hub', m.migration.to]);
      lateKinds.set(verdict.kind, (lateKinds.get(verdict.kind) ?? 0) + 1);
      out.push(`       late: ${line}`);
    }
    if (late !== undefined && late.ms > 100) {
      for (const e of events) if (e.at >= late.endsAt - late.ms - 300 && e.at <= late.endsAt) out.push(`       ${String(e.at - paused).padStart(6)} ms  ${e.what}`);
    }
  }
  const cut = moves.map((m) => m.migration.cutover?.timeMs).filter((x): x is number => typeof x === 'number');
  const under = cut.filter((x) => x < 50).length;
  if (sched !== undefined) {
    out.push('under a gap over 100 ms: each process\'s ms on a CPU / ms waiting runnable for one, credited when it got the CPU (/proc/PID/schedstat; "starved": waited over half the gap, "busy": ran over half), then why: ping not scheduled (the round trips short), scheduling (the round trips long and the daemons on the path waited, together, at least half of it), or not scheduling (look at the network)');
    out.push(`late gaps over 100 ms: ${[...lateKinds].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'} (of ${moves.length} moves)`);
  }
  out.push(`cutover < 50 ms in ${under} of ${cut.length} moves; "again": the pause until the first reply to a ping sent after it; "gap@cut": the longest ping gap ending in the second after the pause; "late gap": the longest ping gap from 1 s after the pause to the next move's pause (its memory transfer included), "at" when it ended "rtt" the longest round trip of the replies that ended it (short: ping itself was not scheduled; long: the path stalled), and "link −" when the migration's fast-path link went (ms after the pause)`);
  return out;
}
