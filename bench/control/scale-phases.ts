/**
 * What the control-channel scale bench (scale.ts) measures per phase of a
 * run (connect, converge, steady, moves): the controller process's CPU and
 * RSS (/proc), the operator API's response times, the controller's
 * event-loop lag (its `vnet_controller_event_loop_lag_seconds` histogram,
 * scraped at each phase's ends), and the sessions the clients saw dropped;
 * and, at the end of a run, why sessions ended as the controller logged it.
 */
import { readFileSync } from 'node:fs';

/** utime + stime of a process, in ms, and its RSS in MiB (Linux /proc). */
export function processUsage(pid: number): { cpuMs: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs: ticks * 10, rssMiB: Number(rss?.[1] ?? 0) / 1024 };
}

export const pct = (xs: readonly number[], p: number): number =>
  (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!);

export const secs = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—');

/** Cumulative bucket counts of one histogram in a Prometheus text exposition, by `le`. */
export function histogramBuckets(text: string, name: string): Map<number, number> {
  const buckets = new Map<number, number>();
  const re = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return buckets;
}

/** A counter's values by one label, from a Prometheus text exposition. */
export function counterByLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`^${name}\\{[^}]*${label}="([^"]+)"[^}]*\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) out[m[1]!] = Number(m[2]);
  return out;
}

/** What a histogram's buckets say of the samples between two scrapes: how many, the bucket its median and 99th percentile fall in, and the highest bucket reached. */
export function lagBetween(before: Map<number, number>, after: Map<number, number>): { samples: number; p50: number; p99: number; max: number } {
  const les = [...after.keys()].sort((a, b) => a - b);
  const d = les.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const n = d.at(-1) ?? 0;
  const at = (q: number): number => les[d.findIndex((c) => c >= q * n)] ?? NaN;
  const maxAt = d.findIndex((c) => c === n);
  return { samples: n, p50: at(0.5), p99: at(0.99), max: les[maxAt] ?? NaN };
}

const le = (s: number): string => (s === Infinity ? '>30 s' : s >= 1 ? `≤${s} s` : `≤${Math.round(s * 1000)} ms`);

export interface PhaseFigures {
  name: string;
  wallMs: number;
  /** Controller CPU as a share of one core over the phase. */
  cpu: number;
  rssMiB: number;
  api: number[];
  lag: ReturnType<typeof lagBetween>;
  /** Sessions the clients saw dropped during the phase, by why. */
  drops: Record<string, number>;
  /** The longest a client process's own loop was held during the phase (its stalls are the bench's, not the controller's). */
  clientsLagMs: number;
}

export function phaseLine(p: PhaseFigures): string {
  const drops = Object.entries(p.drops).filter(([, n]) => n > 0);
  return `  ${p.name.padEnd(8)} ${secs(p.wallMs).padStart(9)}: controller ${(p.cpu * 100).toFixed(0)}% of a core, ${p.rssMiB.toFixed(0)} MiB; ` +
    `API p50/p95/max ${pct(p.api, 0.5).toFixed(0)}/${pct(p.api, 0.95).toFixed(0)}/${p.api.length > 0 ? Math.max(...p.api).toFixed(0) : '—'} ms (${p.api.length}); ` +
    `loop lag p50 ${le(p.lag.p50)}, p99 ${le(p.lag.p99)}, max ${le(p.lag.max)}; ` +
    `clients' loops held ${p.clientsLagMs.toFixed(0)} ms at most; sessions dropped ${drops.reduce((n, [, k]) => n + k, 0)}${drops.length > 0 ? ` (${drops.map(([w, n]) => `${n}× ${w}`).join(', ')})` : ''}`;
}

/** Differences of two tallies by key (what happened between two statuses). */
export function tallyBetween(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

/** Sums tallies by key (several client processes). */
export function tallySum(tallies: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tallies) for (const [k, v] of Object.entries(t)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * Why sessions and connections ended, as the controller logged it (its info
 * log, one JSON object a line): sessions closed by reason, connections cut as
 * silent by the heartbeat, connections refused by error code.
 */
export function controllerLogTally(path: string): { disconnected: Record<string, number>; silent: number; refused: Record<string, number> } {
  const out = { disconnected: {} as Record<string, number>, silent: 0, refused: {} as Record<string, number> };
  let text = '';
  try { text = readFileSync(path, 'utf8'); } catch { return out; }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: { msg?: string; why?: string; code?: string };
    try { j = JSON.parse(line) as typeof j; } catch { continue; }
    if (j.msg === 'daemon disconnected') {
      const why = (j.why ?? '?').replace(/^closed \((\d+).*\)$/, 'closed ($1)');
      out.disconnected[why] = (out.disconnected[why] ?? 0) + 1;
    } else if (j.msg === 'control connection silent: terminating') out.silent++;
    else if (j.msg === 'control connection refused') out.refused[j.code ?? '?'] = (out.refused[j.code ?? '?'] ?? 0) + 1;
  }
  return out;
}
