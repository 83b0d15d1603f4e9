/**
 * What the cutover benchmark watches while a VM moves: a ping from a VM on a
 * third host every 10 ms, and a continuous checked TCP stream
 * (stream-check.ts). Both run in network namespaces the benchmark made.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

const STREAM_CHECK = resolve(import.meta.dirname, 'stream-check.ts');

export interface PingFigures {
  sent: number;
  received: number;
  lost: number;
  /** Longest time between two consecutive replies, ms. */
  maxGapMs: number;
  /**
   * Every reply: its sequence number, when ping printed it (wall clock, ms
   * since the epoch) and its round trip. A gap between printed replies whose
   * round trips stay short is ping's own scheduling, not the path's: a
   * stalled path shows as long round trips.
   */
  replies: Array<{ seq: number; atMs: number; rttMs: number }>;
}

export interface StreamFigures {
  bytes: number;
  intact: boolean;
  error: string | undefined;
  /** An echo stream's longest silence and its edges (wall clock, ms). */
  gap?: { ms: number; fromMs: number; toMs: number };
}

/**
 * Whoever owns the probes (a test's context, a benchmark's cleanups): each
 * probe registers the kill of its processes, so a run that fails before
 * `stop()` leaves no stream or ping behind — a live child's pipes would
 * hold a test file's event loop open until its timeout.
 */
export interface ProbeOwner {
  after(fn: () => void): void;
}

function owned(owner: ProbeOwner | undefined, ...children: ChildProcess[]): void {
  owner?.after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
}

function collect(child: ChildProcess): { out: () => string; exited: Promise<void> } {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { out: () => out, exited };
}

/** `ping -D -i 0.01` from `ns` to `ip` for `count` echoes (or until `stop()`); parse replies' timestamps. */
export function startPing(ns: string, ip: string, count: number, owner?: ProbeOwner): { done: Promise<PingFigures>; stop(): void; pid: number | undefined } {
  const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-D', '-n', '-i', '0.01', '-W', '1', '-c', String(count), ip], { stdio: ['ignore', 'pipe', 'pipe'] });
  owned(owner, child);
  const c = collect(child);
  const done = c.exited.then((): PingFigures => {
    const text = c.out();
    const replies = [...text.matchAll(/^\[(\d+\.\d+)\] .*icmp_seq=(\d+).*time=([\d.]+) ms/gm)].map((m) => ({ seq: Number(m[2]), atMs: Number(m[1]) * 1000, rttMs: Number(m[3]) }));
    const times = replies.map((r) => r.atMs);
    let maxGapMs = 0;
    for (let i = 1; i < times.length; i++) maxGapMs = Math.max(maxGapMs, times[i]! - times[i - 1]!);
    const stats = /(\d+) packets transmitted, (\d+) received/.exec(text);
    const sent = stats === null ? count : Number(stats[1]);
    const received = stats === null ? times.length : Number(stats[2]);
    return { sent, received, lost: sent - received, maxGapMs, replies };
  });
  // SIGINT: ping prints its summary and exits.
  // `ip netns exec` execs ping: the child's pid is ping's (sched-watch.ts reads its scheduling).
  return { done, pid: child.pid, stop: () => { if (child.exitCode === null) child.kill('SIGINT'); } };
}

/**
 * From `pausedAt` until the first reply to an echo request sent at or after
 * it, ms — what the VXLAN row measures with a probe sent after the move. A
 * request's send moment is its reply's print moment (ping -D) less its round
 * trip; NaN if none was answered.
 */
export function answersAgainMs(ping: PingFigures, pausedAt: number): number {
  const first = ping.replies.find((r) => r.atMs - r.rttMs >= pausedAt);
  return first === undefined ? Number.NaN : first.atMs - pausedAt;
}

/** A checked TCP stream from `fromNs` bounced off the echo service at `toIp:port` (a QEMU guest's port 7); `stop()` ends it and reads the verdict. */
export function startEchoStream(fromNs: string, toIp: string, port: number, kbps = 800, owner?: ProbeOwner): { stop(): Promise<StreamFigures> } {
  const client = spawn('ip', ['netns', 'exec', fromNs, process.execPath, '--import', 'tsx', STREAM_CHECK, 'echo', toIp, String(port), String(kbps)], { stdio: ['ignore', 'pipe', 'pipe'] });
  owned(owner, client);
  const c = collect(client);
  return {
    async stop(): Promise<StreamFigures> {
      client.kill('SIGTERM');
      await c.exited;
      return verdictOf(c.out(), c.out());
    },
  };
}

function verdictOf(serverOut: string, clientOut: string): StreamFigures {
  const line = serverOut.split('\n').find((l) => l.startsWith('{'));
  if (line === undefined) return { bytes: 0, intact: false, error: `no verdict from the stream check (${clientOut.trim() || 'no output'})` };
  const v = JSON.parse(line) as { bytes: number; ok: boolean; error?: string; gap?: { ms: number; fromMs: number; toMs: number } };
  return {
    bytes: v.bytes, intact: v.ok && !clientOut.includes('stream error'), error: v.error ?? (clientOut.includes('stream error') ? clientOut.trim() : undefined),
    ...(v.gap !== undefined ? { gap: v.gap } : {}),
  };
}

/** A checked TCP stream from `fromNs` to `toIp:port` (server in `toNs`); `stop()` ends it and reads the verdict. */
export async function startStream(toNs: string, fromNs: string, toIp: string, port: number, kbps = 800, owner?: ProbeOwner): Promise<{ stop(): Promise<StreamFigures>; serverPids(): number[] }> {
  const server = spawn('ip', ['netns', 'exec', toNs, process.execPath, '--import', 'tsx', STREAM_CHECK, 'serve', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  owned(owner, server);
  const s = collect(server);
  for (let i = 0; i < 400 && !s.out().includes('listening'); i++) await new Promise((r) => setTimeout(r, 25));
  if (!s.out().includes('listening')) throw new Error(`stream server did not start: ${s.out()}`);
  const client = spawn('ip', ['netns', 'exec', fromNs, process.execPath, '--import', 'tsx', STREAM_CHECK, 'send', toIp, String(port), String(kbps)], { stdio: ['ignore', 'pipe', 'pipe'] });
  owned(owner, client);
  const cl = collect(client);
  return {
    serverPids: () => (server.pid === undefined ? [] : [server.pid]),
    async stop(): Promise<StreamFigures> {
      client.kill('SIGTERM');
      await cl.exited;
      const deadline = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await s.exited;
      clearTimeout(deadline);
      return verdictOf(s.out(), cl.out());
    },
  };
}
