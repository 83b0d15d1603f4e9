/**
 * bench/control/failover — the controller's leader killed -9 under traffic
 * (root): a 3-member etcd on loopback, `--replicas` `vnet controller --store
 * etcd://…` processes with a lease of `--ttl` seconds, a hub and four spokes
 * as `vnet daemon` processes, each spoke with a namespace VM on a TAP device
 * (test/helpers/netns-overlay-replicas.ts). vm0 ↔ vm1 and vm2 ↔ vm3 ping
 * each other every 10 ms (1,200-byte payloads, ~120 kB/s a direction), so
 * adaptation adds the fast paths c1–c2 and c3–c4. Then, `--rounds` times:
 * kill -9 the leader, watch, start it again (it follows).
 *
 * Printed per round, from the moment of the kill:
 *   elected     the new leader's "elected leader" log line
 *   welcomed    the first daemon's "connected to the controller" after the kill
 *   converged   every daemon welcomed by the new leader with the versions etcd
 *               holds for it, acknowledged (etcd's desired_versions rows)
 *   stall       the longest interval between two samples showing growth of a
 *               spoke's port counters (its VM's frames in and out, sampled
 *               every 100 ms through the admin interface: ~100 ms when they
 *               never stop), from 1 s before the kill until the watch ends
 *               (past the new leader's adaptation warm-up); beside it the
 *               longest interval between two samples of one daemon (the
 *               sampler's own lateness on a loaded machine bounds what a
 *               stall can show)
 *   flaps       fast-path links removed and re-added on any daemon, and link
 *               or rule sets applied, in that window (goal 0)
 * Goals: elected and welcomed < 3 s at 1 s TTL, converged < 5 s, no flap.
 *
 * A 1 s lease needs etcd's minimum lease TTL at 1 s: the members run with a
 * 50 ms heartbeat and a 500 ms election timeout (etcd raises a shorter lease
 * to 1.5 election timeouts, whole seconds).
 *
 * Usage (root): node --import tsx bench/control/failover.ts [--rounds 3] [--ttl 1] [--replicas 3]
 */
import { readFileSync } from 'node:fs';
import { EtcdClient } from '../../src/controller/store/etcd/etcd-client.ts';
import { startNetnsOverlayWithControllerReplicas, type NetnsOverlayWithControllerReplicas } from '../../test/helpers/netns-overlay-replicas.ts';
import { waitFor } from '../../test/helpers/wait.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): number => {
  const i = args.indexOf(name);
  return Number(i >= 0 ? args[i + 1] : fallback);
};
const rounds = arg('--rounds', '3');
const ttl = arg('--ttl', '1');
const replicas = arg('--replicas', '3');
const UPDATE_MS = 1000;
const SMOOTHING_MS = 2000;
const HOSTS = ['hub', 'c1', 'c2', 'c3', 'c4'];
const SPOKES = HOSTS.slice(1);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Status {
  ports: Array<{ rxFrames: number; txFrames: number }>;
  links: Array<{ peer: string; kind: string; state: string }>;
  linksVersion: number;
  rulesVersion: number;
  controller?: { url?: string; state?: string };
}

interface Sample { at: number; host: string; frames: number; fastPeers: string[]; linksVersion: number; rulesVersion: number }

/** Every daemon's admin /status, every 100 ms, until stopped. */
function sampleDaemons(o: NetnsOverlayWithControllerReplicas): { samples: Sample[]; stop(): Promise<void> } {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const next = performance.now() + 100;
      await Promise.all(HOSTS.map(async (host) => {
        const s = await o.admin(host, '/status').catch(() => undefined) as Status | undefined;
        if (s === undefined) return;
        samples.push({
          at: performance.now(), host, frames: s.ports.reduce((n, p) => n + p.rxFrames + p.txFrames, 0),
          fastPeers: s.links.filter((l) => l.kind === 'fast-path' && l.state === 'up').map((l) => l.peer).sort(),
          linksVersion: s.linksVersion, rulesVersion: s.rulesVersion,
        });
      }));
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  return { samples, async stop() { running = false; await loop; } };
}

/** The wall-clock time of the first line of `file` logged as `msg` at or after `sinceWall`. */
function loggedAt(file: string, msg: string, sinceWall: number): number | undefined {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const e = JSON.parse(line) as { msg?: string; time?: number };
      if (e.msg === msg && typeof e.time === 'number' && e.time >= sinceWall) return e.time;
    } catch { /* a line being written */ }
  }
  return undefined;
}

/** Every daemon welcomed by `controlUrl`, holding the versions etcd has for it, acknowledged. */
async function converged(o: NetnsOverlayWithControllerReplicas, etcd: EtcdClient, controlUrl: string): Promise<boolean> {
  const base = `${o.prefix}/t/desired_versions/`;
  const rows = (await etcd.range(base, `${base.slice(0, -1)}0`)).kvs.map((kv) => JSON.parse(kv.value) as { host: string; links_version: number; rules_version: number; links_acked: number; rules_acked: number });
  for (const host of HOSTS) {
    const s = await o.admin(host, '/status').catch(() => undefined) as Status | undefined;
    const row = rows.find((r) => r.host === host);
    if (s?.controller?.url !== controlUrl || s.controller.state !== 'connected' || row === undefined) return false;
    if (s.linksVersion !== row.links_version || s.rulesVersion !== row.rules_version || row.links_acked !== row.links_version || row.rules_acked !== row.rules_version) return false;
  }
  return true;
}

interface Round { killed: string; next: string; electedMs: number; welcomedMs: number; convergedMs: number; stallMs: number; stallHost: string; sampleGapMs: number; removed: number; readded: number; setsApplied: number }

/** What the samples of [from, to] show: the longest stall of a spoke's counters, fast paths removed and re-added, sets applied. */
function judge(samples: readonly Sample[], from: number, to: number): Pick<Round, 'stallMs' | 'stallHost' | 'sampleGapMs' | 'removed' | 'readded' | 'setsApplied'> {
  let stallMs = 0;
  let sampleGapMs = 0;
  let stallHost = '';
  let removed = 0;
  let readded = 0;
  let setsApplied = 0;
  for (const host of HOSTS) {
    const mine = samples.filter((s) => s.host === host && s.at >= from && s.at <= to);
    const first = mine[0];
    if (first === undefined) continue;
    let grewAt = first.at;
    const gone = new Set<string>();
    for (let i = 1; i < mine.length; i++) {
      const [a, b] = [mine[i - 1]!, mine[i]!];
      const since = b.at - grewAt;
      sampleGapMs = Math.max(sampleGapMs, b.at - a.at);
      if (SPOKES.includes(host) && (b.frames > a.frames || i === mine.length - 1) && since > stallMs) { stallMs = since; stallHost = host; }
      if (b.frames > a.frames) grewAt = b.at;
      for (const p of a.fastPeers) if (!b.fastPeers.includes(p)) { removed++; gone.add(p); }
      for (const p of b.fastPeers) if (!a.fastPeers.includes(p) && gone.has(p)) readded++;
      setsApplied += (b.linksVersion !== a.linksVersion ? 1 : 0) + (b.rulesVersion !== a.rulesVersion ? 1 : 0);
    }
  }
  return { stallMs, stallHost, sampleGapMs, removed, readded, setsApplied };
}

const cleanups: Array<() => Promise<void> | void> = [];
const results: Round[] = [];
let pingSummary = '';
try {
  const o = await startNetnsOverlayWithControllerReplicas({ after: (fn) => { cleanups.push(fn); } }, {
    hosts: SPOKES, vms: SPOKES.map((host) => ({ host })), tools: ['ping'],
    policy: `  updatePeriodMs: ${UPDATE_MS}\n  smoothingIntervalMs: ${SMOOTHING_MS}\n  fastPathBudget: 4\n  fastPathMinBytesPerSec: 20000`,
    replicas, leaseTtlS: ttl, etcdTiming: { heartbeatMs: 50, electionTimeoutMs: 500 },
  });
  const etcd = new EtcdClient({ endpoints: o.etcd.endpoints });
  cleanups.push(() => etcd.close());
  const pings = [[0, 1], [1, 0], [2, 3], [3, 2]].map(([from, to]) => o.spawn(from!, ['ping', '-n', '-i', '0.01', '-s', '1200', o.vms[to!]!.ip]));
  let pingOut = '';
  for (const p of pings) p.stdout?.on('data', (d: Buffer) => { pingOut += d.toString(); });
  const fastPeers = async (host: string): Promise<string[]> => ((await o.admin(host, '/status')) as Status).links.filter((l) => l.kind === 'fast-path' && l.state === 'up').map((l) => l.peer);
  await waitFor(async () => (await fastPeers('c1')).includes('c2') && (await fastPeers('c3')).includes('c4'), 'adaptation\'s fast paths c1–c2 and c3–c4 up', 60_000);
  const sampler = sampleDaemons(o);

  for (let round = 0; round < rounds; round++) {
    const leader = await o.controllers.awaitLeader();
    await waitFor(() => converged(o, etcd, leader.controlUrl), `every daemon converged on ${leader.name} before the kill`, 60_000);
    // A second of samples before the kill.
    await sleep(1000);
    const killWall = Date.now();
    const killAt = performance.now();
    await leader.process.kill();
    const next = await o.controllers.awaitLeader((n) => n !== leader.name, 30_000);
    await waitFor(() => converged(o, etcd, next.controlUrl), `every daemon converged on ${next.name}`, 30_000);
    const convergedMs = performance.now() - killAt;
    // Watch on past the new leader's adaptation warm-up (three smoothing intervals), when removals could start.
    await sleep(3 * SMOOTHING_MS + 2 * UPDATE_MS);
    const electedWall = loggedAt(o.logOf(next.name), 'elected leader', killWall);
    const welcomes = HOSTS.map((h) => loggedAt(o.logOf(h), 'connected to the controller', killWall)).filter((x): x is number => x !== undefined);
    results.push({
      killed: leader.name, next: next.name,
      electedMs: electedWall === undefined ? Number.NaN : electedWall - killWall,
      welcomedMs: welcomes.length === 0 ? Number.NaN : Math.min(...welcomes) - killWall,
      convergedMs,
      ...judge(sampler.samples, killAt - 1000, performance.now()),
    });
    await leader.process.restart();
  }
  await sampler.stop();
  for (const p of pings) p.kill('SIGINT');
  await Promise.all(pings.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
  pingSummary = [...pingOut.matchAll(/(\d+) packets transmitted, (\d+) received/g)].map((m) => `${m[2]}/${m[1]}`).join(', ');
} finally {
  for (const fn of cleanups.reverse()) await fn();
}

const ms = (n: number): string => (Number.isNaN(n) ? '—' : n.toFixed(0));
console.log(`lease TTL ${ttl} s, ${replicas} replicas, etcd 3 members (heartbeat 50 ms, election 500 ms); 5 daemons; update period ${UPDATE_MS} ms; counters sampled every 100 ms`);
console.log(`${'round'.padEnd(6)} ${'killed → new'.padEnd(13)} ${'elected ms'.padStart(10)} ${'welcomed ms'.padStart(11)} ${'converged ms'.padStart(12)} ${'stall ms (spoke)'.padStart(17)} ${'sampling gap ms'.padStart(15)} ${'fast paths removed/re-added'.padStart(27)} ${'sets applied'.padStart(12)}`);
for (const [i, r] of results.entries()) {
  console.log(`${String(i + 1).padEnd(6)} ${`${r.killed} → ${r.next}`.padEnd(13)} ${ms(r.electedMs).padStart(10)} ${ms(r.welcomedMs).padStart(11)} ${ms(r.convergedMs).padStart(12)} ${`${ms(r.stallMs)} (${r.stallHost})`.padStart(17)} ${ms(r.sampleGapMs).padStart(15)} ${`${r.removed}/${r.readded}`.padStart(27)} ${String(r.setsApplied).padStart(12)}`);
}
console.log(`pings answered (per direction, received/sent): ${pingSummary}`);
const worst = (f: (r: Round) => number): number => Math.max(...results.map(f));
const acted = worst((r) => Math.max(r.electedMs, r.welcomedMs));
console.log(`goals: new leader acts < 3000 ms: ${acted < 3000 ? 'met' : 'NOT met'} (worst ${ms(acted)});`
  + ` converged < 5000 ms: ${worst((r) => r.convergedMs) < 5000 ? 'met' : 'NOT met'} (worst ${ms(worst((r) => r.convergedMs))});`
  + ` no flap: ${worst((r) => r.removed + r.readded + r.setsApplied) === 0 ? 'met' : 'NOT met'}`);
