/**
 * bench/dataplane's figures for one path, vm1 → vm2 (run.ts sets the paths
 * up): iperf3 throughput, ping RTT (median and p99 of 1,000 echoes 1 ms
 * apart), request/response rate (`rr.c`, built once into the scratch
 * directory), the overlay's CPU per Gbit/s from /proc/PID/stat, and its
 * wake-ups per echo during the ping (voluntary context switches of all its
 * threads, /proc/PID/task/TID/status: each is a sleep, ended by a wake-up).
 */
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One repetition's figures. */
export interface Figures {
  g1: number;
  g4: number;
  rtt: number;
  p99: number;
  rr1: number;
  rr16: number;
  /** The overlay's CPU (cores) per Gbit/s in the 1-stream run; undefined for kernel paths. */
  cpuPerGbit: number | undefined;
  /** The overlay's processes' sleeps (voluntary context switches, every thread) per ping echo; undefined for kernel paths. */
  wakeupsPerEcho: number | undefined;
}

export interface MeasuresInit {
  vm1: string;
  vm2: string;
  /** The run's scratch directory (rr is built there). */
  work: string;
  seconds: number;
  rrSeconds: number;
  /** Record the scheduler during the ping (`perf sched record -a`) and print the overlay's threads' wake-up delays. */
  sched?: boolean;
  sh: (cmd: string[], check?: boolean) => string;
  inNs: (ns: string, cmd: string[], check?: boolean) => string;
  bg: (ns: string, cmd: string[], log: string) => ChildProcess;
  stopAll: (procs: readonly ChildProcess[], signal: NodeJS.Signals) => Promise<void>;
  until: (what: string, check: () => boolean, timeoutMs?: number) => Promise<void>;
}

export const percentile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** CPU seconds (user + system) used so far by these processes (all their threads), from /proc/PID/stat. */
function cpuSeconds(pids: readonly number[]): number {
  const hz = 100; // USER_HZ: 100 on every Linux ABI Node runs on
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15 of the line)
    } catch {
      // gone: counts nothing more
    }
  }
  return ticks / hz;
}

/** Voluntary context switches so far of every thread of these processes. */
function sleeps(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      try {
        n += Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        // the thread ended
      }
    }
  }
  return n;
}

/**
 * From `perf sched latency`: per thread name of these processes, how often
 * it was switched in and its wake-up delay (runnable → running). On a loaded
 * machine perf may lose events: compare the runs with the sleeps per echo.
 */
function printWakeDelays(report: string, pids: readonly number[]): void {
  const tids = new Set<string>();
  for (const pid of pids) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) tids.add(tid);
    } catch {
      // gone
    }
  }
  const rows = new Map<string, { switches: number; delayMs: number; maxMs: number }>();
  for (const m of report.matchAll(/^[ \t]*(\S[^|\n]*?):(\d+)\s*\|\s*[\d.]+ ms\s*\|\s*(\d+)\s*\|\s*avg:\s*([\d.]+) ms\s*\|\s*max:\s*([\d.]+) ms/gm)) {
    const [, comm, tid, switches, avg, max] = m as unknown as [string, string, string, string, string, string];
    if (!tids.has(tid)) continue;
    const r = rows.get(comm) ?? { switches: 0, delayMs: 0, maxMs: 0 };
    r.switches += Number(switches);
    r.delayMs += Number(avg) * Number(switches);
    r.maxMs = Math.max(r.maxMs, Number(max));
    rows.set(comm, r);
  }
  const line = [...rows].map(([comm, r]) => `${comm} ${r.switches} runs, wake-up delay avg ${((r.delayMs / Math.max(1, r.switches)) * 1000).toFixed(1)} µs, max ${(r.maxMs * 1000).toFixed(0)} µs`);
  process.stdout.write(`\n  sched during the ping: ${line.join('; ')}\n  `);
}

export class Measures {
  readonly #c: MeasuresInit;
  #rrBinary: string | undefined;

  constructor(init: MeasuresInit) {
    this.#c = init;
  }

  /** One repetition: every figure once, the overlay's CPU (`pids`) measured around the 1-stream iperf. */
  async once(pids: readonly number[], addr: string): Promise<Figures> {
    const cpu0 = cpuSeconds(pids);
    const t0 = performance.now();
    const g1 = await this.iperf(addr, 1);
    const cores = (cpuSeconds(pids) - cpu0) / ((performance.now() - t0) / 1000);
    const g4 = await this.iperf(addr, 4);
    const sleeps0 = sleeps(pids);
    const ping = this.pingRtt(addr, this.#c.sched === true ? pids : undefined);
    const wakeups = (sleeps(pids) - sleeps0) / ping.echoes;
    const rr1 = await this.rr(addr, 1);
    const rr16 = await this.rr(addr, 16);
    return { g1, g4, rtt: ping.median, p99: ping.p99, rr1, rr16, cpuPerGbit: pids.length > 0 ? cores / g1 : undefined, wakeupsPerEcho: pids.length > 0 ? wakeups : undefined };
  }

  async iperf(addr: string, streams: number): Promise<number> {
    const c = this.#c;
    const server = c.bg(c.vm2, ['iperf3', '-s', '-1', '-B', addr], 'iperf-server.log');
    try {
      await c.until('iperf3 server listening', () => c.inNs(c.vm2, ['ss', '-ltn']).includes(`${addr}:5201`));
      const r = spawnSync('ip', ['netns', 'exec', c.vm1, 'iperf3', '-c', addr, '-t', String(c.seconds), '-P', String(streams), '-J'], {
        encoding: 'utf8',
        timeout: (c.seconds + 30) * 1000,
      });
      const j = JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bits_per_second: number } } };
      const bps = j.end?.sum_received?.bits_per_second;
      if (r.status !== 0 || bps === undefined) throw new Error(`iperf3 failed: ${j.error ?? r.stderr}`);
      return bps / 1e9;
    } finally {
      server.kill('SIGKILL');
    }
  }

  /** Ping RTT in ms over 1,000 echoes 1 ms apart: the median and the 99th percentile. */
  pingRtt(addr: string, schedPids?: readonly number[]): { median: number; p99: number; echoes: number } {
    const c = this.#c;
    const ping = ['ping', '-c', '1000', '-i', '0.001', '-W', '1', addr];
    const data = join(c.work, 'sched.data');
    const out = schedPids === undefined
      ? c.inNs(c.vm1, ping)
      : c.sh(['perf', 'sched', 'record', '-a', '-q', '-o', data, '--', 'ip', 'netns', 'exec', c.vm1, ...ping]);
    if (schedPids !== undefined) printWakeDelays(c.sh(['perf', 'sched', 'latency', '-p', '-i', data]), schedPids);
    const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    if (times.length < 990) throw new Error(`ping lost echoes (${times.length}/1000): ${out.slice(-300)}`);
    return { median: median(times), p99: percentile(times, 0.99), echoes: times.length };
  }

  /** Request/response transactions per second (64-byte messages) over `conns` TCP connections, vm1 → vm2. */
  async rr(addr: string, conns: number): Promise<number> {
    const c = this.#c;
    const tool = this.#rrTool();
    const server = c.bg(c.vm2, [tool, 'server', addr, '7100', '64'], 'rr-server.log');
    try {
      await c.until('rr server listening', () => c.inNs(c.vm2, ['ss', '-ltn']).includes(`${addr}:7100`));
      const out = c.inNs(c.vm1, [tool, 'client', addr, '7100', '64', String(conns), String(c.rrSeconds)]);
      const tps = Number(out.trim());
      if (!Number.isFinite(tps)) throw new Error(`rr printed ${JSON.stringify(out)}`);
      return tps;
    } finally {
      await c.stopAll([server], 'SIGKILL');
    }
  }

  #rrTool(): string {
    if (this.#rrBinary === undefined) {
      this.#rrBinary = join(this.#c.work, 'rr');
      this.#c.sh(['cc', '-O2', '-o', this.#rrBinary, join(import.meta.dirname, 'rr.c')]);
    }
    return this.#rrBinary;
  }
}
