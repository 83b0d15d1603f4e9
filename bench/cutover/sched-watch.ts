/**
 * Whether a process was scheduled (`bench/cutover --moves`): the kernel's
 * per-task scheduler statistics, `/proc/PID/schedstat` — the time the task
 * ran on a CPU and the time it waited runnable on a run queue, both
 * cumulative, in ns — sampled every `everyMs` for the processes that carry
 * a ping (the pinger, each daemon's event-loop thread, the controller: this
 * process). A ping gap can then be laid beside what each of them did over
 * it: waited runnable for most of it (starved: the machine had no CPU for
 * it), ran for most of it (its event loop was busy), or neither (idle: the
 * frame was not in its hands, or the gap is the network's).
 *
 * The counters are cumulative, so a sampler that is itself scheduled late
 * loses no time: the figures over a gap come from the last sample at or
 * before its start to the first at or after its end, a window that may be
 * wider than the gap (reported beside it). The kernel credits a wait when
 * the task gets the CPU, so a wait that began before the window and ended in
 * it counts whole: a process starved across a gap shows a wait longer than
 * the gap, as soon as it ran again (the one that forwarded the reply ending
 * the gap did).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface SchedSample {
  /** Wall clock, ms. */
  atMs: number;
  /** Cumulative ns on a CPU, and runnable waiting for one. */
  runNs: number;
  waitNs: number;
}

/** One process's share of a time window. */
export interface SchedShare {
  who: string;
  runMs: number;
  waitMs: number;
  /** The window the samples cover (at least the one asked for, unless the watch began or ended inside it). */
  fromMs: number;
  toMs: number;
}

/** `/proc/PID/schedstat` → run and wait ns; undefined once the process is gone or the line is not three numbers. */
export function parseSchedstat(text: string): { runNs: number; waitNs: number } | undefined {
  const f = text.trim().split(/\s+/);
  if (f.length !== 3 || !f.every((x) => /^\d+$/.test(x))) return undefined;
  return { runNs: Number(f[0]), waitNs: Number(f[1]) };
}

function read(pid: number, tid = pid): { runNs: number; waitNs: number } | undefined {
  try {
    return parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The daemon's native forwarder thread (`vnet-forwarder`: it carries the frames of the links it serves), if it runs one. */
function forwarderThread(pid: number): number | undefined {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === FORWARDER_THREAD) return Number(tid);
    }
  } catch { /* gone */ }
  return undefined;
}

/** The native forwarder's thread name (native/tap/forwarder). */
export const FORWARDER_THREAD = 'vnet-forwarder';

/** A process's run and wait over [from, to], from its samples (sorted by time); undefined without a sample on each side. */
export function shareOf(who: string, samples: readonly SchedSample[], from: number, to: number): SchedShare | undefined {
  let a: SchedSample | undefined;
  let b: SchedSample | undefined;
  for (const s of samples) {
    if (s.atMs <= from) a = s;
    if (s.atMs >= to && b === undefined) b = s;
  }
  a ??= samples[0];
  b ??= samples[samples.length - 1];
  if (a === undefined || b === undefined || b.atMs <= a.atMs) return undefined;
  return { who, runMs: (b.runNs - a.runNs) / 1e6, waitMs: (b.waitNs - a.waitNs) / 1e6, fromMs: a.atMs, toMs: b.atMs };
}

/** What a share says about a gap of `gapMs`: starved (waited runnable for over half of it), busy (ran over half), or neither. */
export function verdictOf(share: SchedShare, gapMs: number): 'starved' | 'busy' | 'idle' {
  const span = Math.max(gapMs, 1);
  if (share.waitMs >= span / 2) return 'starved';
  if (share.runMs >= span / 2) return 'busy';
  return 'idle';
}

/**
 * Why a ping gap of `gapMs` whose ending replies took up to `rttMs` happened:
 *   pinger       the round trips stayed short (under half the gap): ping
 *                itself was not scheduled to send or print
 *   scheduling   the path stalled, and the daemons on it (`path`) waited
 *                runnable, together, at least half that round trip: a frame
 *                crosses them one after the other, each one's wait adds up
 *                (a host's wait: its event loop's or its forwarder thread's,
 *                the longer)
 *   unexplained  the path stalled with its daemons scheduled: look at the
 *                network (a rule change, a link, learning, ARP)
 */
export interface GapVerdict { kind: 'pinger' | 'scheduling' | 'unexplained'; waitedMs: number }

export function explainGap(shares: readonly SchedShare[], gapMs: number, rttMs: number, path: readonly string[]): GapVerdict {
  if (rttMs < gapMs / 2) return { kind: 'pinger', waitedMs: shares.find((s) => s.who === 'ping')?.waitMs ?? Number.NaN };
  // A frame crosses a host on its event loop or on its forwarder thread: the longer wait of the two.
  const waitOf = (who: string): number => Math.max(0, ...shares.filter((s) => s.who === who || s.who === `${who}/fwd`).map((s) => s.waitMs));
  const waitedMs = path.reduce((n, who) => n + waitOf(who), 0);
  return { kind: waitedMs >= rttMs / 2 ? 'scheduling' : 'unexplained', waitedMs };
}

/** `/proc/loadavg`'s fourth field, runnable/total: the tasks runnable on the machine at that moment. */
export function parseRunnable(text: string): number | undefined {
  const m = /^\S+ \S+ \S+ (\d+)\/\d+ /.exec(text);
  return m === null ? undefined : Number(m[1]);
}

export interface SchedWatch {
  /** Each watched process's run and wait over [from, to]. */
  shares(from: number, to: number): SchedShare[];
  /** The most tasks runnable on the machine at a sample in [from, to] (what the 2 CPUs were shared by); undefined without one. */
  runnable(from: number, to: number): number | undefined;
  stop(): void;
}

/**
 * Sample the scheduling of each named process's main thread (its event
 * loop) every `everyMs` until `stop()`, and of its native forwarder thread
 * as `NAME/fwd` when it runs one.
 */
export function watchScheduling(pids: Readonly<Record<string, number | undefined>>, everyMs = 20): SchedWatch {
  const series = new Map<string, SchedSample[]>();
  const load: Array<{ atMs: number; runnable: number }> = [];
  const fwd = new Map<string, number | undefined>();
  const fwdLookedAt = new Map<string, number>();
  const sample = (): void => {
    const atMs = Date.now();
    let runnable: number | undefined;
    try { runnable = parseRunnable(readFileSync('/proc/loadavg', 'utf8')); } catch { runnable = undefined; }
    if (runnable !== undefined) load.push({ atMs, runnable });
    const add = (who: string, s: { runNs: number; waitNs: number } | undefined): void => {
      if (s === undefined) return;
      let list = series.get(who);
      if (list === undefined) series.set(who, list = []);
      list.push({ atMs, ...s });
    };
    for (const [who, pid] of Object.entries(pids)) {
      if (pid === undefined) continue;
      add(who, read(pid));
      // Looked for once a second (it starts with the first link it serves, and again after a reload).
      if (atMs - (fwdLookedAt.get(who) ?? 0) >= 1000) { fwdLookedAt.set(who, atMs); fwd.set(who, forwarderThread(pid)); }
      const tid = fwd.get(who);
      if (tid !== undefined) add(`${who}/fwd`, read(pid, tid));
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    shares(from, to) {
      return [...series].map(([who, list]) => shareOf(who, list, from, to)).filter((s): s is SchedShare => s !== undefined);
    },
    runnable(from, to) {
      const r = load.filter((l) => l.atMs >= from && l.atMs <= to).map((l) => l.runnable);
      return r.length === 0 ? undefined : Math.max(...r);
    },
    stop() {
      sample();
      clearInterval(timer);
    },
  };
}
