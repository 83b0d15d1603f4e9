/**
 * The hub-failover scenario shared by the privileged test
 * (test/security/hub-failover.priv.test.ts) and the benchmark
 * (bench/failover/hub.ts), root only:
 *
 *   hub (primary), hub2 (standby, trunked to hub), spokes c1, c2, c3 —
 *   `vnet daemon` processes, TLS on loopback — and one namespace VM on each
 *   spoke; an operator's fast-path link c1–c2 (adaptation off, so c1–c3
 *   has none). vm0 (c1) pings vm1 (c2) over the fast path and vm2 (c3)
 *   through a hub.
 *
 * `watchPing` reads a ping's replies as they come (`ping -D -O`), so the
 * caller can wait for "a reply after the fault" instead of sleeping.
 */
import type { ChildProcess } from 'node:child_process';
import type { LinkFacts } from '../../src/control/daemon-control.ts';
import { startNetnsOverlay, type NetnsOverlay } from './netns-overlay.ts';
import { waitFor } from './wait.ts';

interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

export const SPOKES = ['c1', 'c2', 'c3'] as const;

export interface PingWatch {
  /** Replies as they arrived: sequence number, and the time ping stamped them (ms since the epoch). */
  readonly replies: Array<{ seq: number; atMs: number }>;
  /** Replies ping flagged as duplicates ("DUP!"). */
  readonly duplicates: number;
  /** The sequence numbers of those duplicates. */
  readonly duplicateSeqs: readonly number[];
  /** Resolves when ping exits, with its own summary. */
  readonly done: Promise<{ sent: number; received: number; output: string }>;
  readonly child: ChildProcess;
}

/** `ping -D -O -n -i INTERVAL [-c COUNT] IP` in VM `from`'s namespace, read live. */
export function watchPing(o: NetnsOverlay, from: number, ip: string, opts: { intervalS: number; count?: number }): PingWatch {
  const argv = ['ping', '-D', '-O', '-n', '-i', String(opts.intervalS), '-W', '1', ...(opts.count === undefined ? [] : ['-c', String(opts.count)]), ip];
  const child = o.spawn(from, argv);
  const replies: Array<{ seq: number; atMs: number }> = [];
  const duplicateSeqs: number[] = [];
  let output = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    output += d.toString();
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)/.exec(line);
      if (m === null) continue;
      if (line.includes('DUP!')) duplicateSeqs.push(Number(m[2]));
      else replies.push({ seq: Number(m[2]), atMs: Number(m[1]) * 1000 });
    }
  });
  const done = new Promise<{ sent: number; received: number; output: string }>((resolve) => {
    child.once('exit', () => {
      const stats = /(\d+) packets transmitted, (\d+) received/.exec(output);
      resolve({ sent: Number(stats?.[1] ?? Number.NaN), received: Number(stats?.[2] ?? Number.NaN), output });
    });
  });
  return { replies, get duplicates() { return duplicateSeqs.length; }, duplicateSeqs, done, child };
}

/** Whether every one of `spokes` has its backbone link up to `hub` (their admin interfaces, not the controller's view). */
export async function spokesOn(o: NetnsOverlay, hub: string, spokes: readonly string[] = SPOKES): Promise<boolean> {
  for (const s of spokes) {
    const links = (await o.admin(s, '/links')) as LinkFacts[];
    if (!links.some((l) => l.kind === 'backbone' && l.peer === hub && l.state === 'up')) return false;
  }
  return true;
}

/** The overlay of the scenario, up: every spoke on the primary, the standby trunked to it, the fast path c1–c2 carrying its rules. */
export async function startHubFailoverScenario(t: AfterHook): Promise<NetnsOverlay> {
  const o = await startNetnsOverlay(t, {
    hosts: [...SPOKES],
    vms: SPOKES.map((host) => ({ host })),
    policy: '  updatePeriodMs: 200\n  fastPathBudget: 0',
    tools: ['ping'],
    standbyHub: true,
  });
  const model = o.model;
  await model.addFastPathLink('c1', 'c2', 'hub failover scenario: the pair with a fast path', 'test');
  await waitFor(() => model.getLink('c1', 'c2')?.state === 'up', 'fast path c1–c2 up', 20_000);
  await waitFor(() => spokesOn(o, 'hub'), 'every spoke on the primary hub', 20_000);
  await waitFor(() => model.getHost('hub')?.hubState === 'active' && model.getHost('hub2')?.hubState === 'standby', 'the primary active, the standby trunked to it', 20_000);
  await waitFor(() => model.listHosts().every((h) => { const r = model.getRules(h.id); return r !== undefined && r.appliedVersion === r.version; }), 'rules applied', 20_000);
  // Both pairs answer before the fault (ARP resolved, paths learned).
  for (const i of [1, 2]) {
    const r = await o.exec(0, ['ping', '-n', '-c', '3', '-i', '0.1', '-W', '2', o.vms[i]!.ip]);
    if (r.code !== 0) throw new Error(`vm0 cannot reach vm${i} before the fault: ${r.stdout}${r.stderr}`);
  }
  return o;
}
