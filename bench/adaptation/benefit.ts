// Adaptation benefit (root): what fast-path links buy a BSP application.
//
//   8 VMs on 4 compute hosts (c1..c4, two each), the hub at another site.
//   VMs      network namespaces, each with a TAP device its host's daemon
//            made and moved there (the daemon's `netns:` port option)
//   daemons  `vnet daemon --config FILE` processes, TLS tunnels on
//            loopback, each with a control channel to the controller
//   WAN      each spoke reaches the hub through its own `vnet relay`
//            (userspace delay relay: this kernel has no netem) adding
//            DELAY ms each way and a bandwidth cap; a fast-path link goes
//            straight from host to host (same site, no relay)
//   controller  in this process (startControllerProcess: SQLite, control
//            channel, VTTIF, adaptation)
//   Patterns `vnet patterns worker` in every VM namespace, over real TCP
//
// Before: the controller runs with fastPathBudget 0 (everything through
// the hub). After: the controller is restarted with a budget of 6 links; a
// ping warm-up along the pattern lets it infer the topology and add the
// fast paths (the pings go on until the workers are connected, so the links
// do not decay while the workers start), then the same Patterns run is
// timed again.
//
//   node --import tsx bench/adaptation/benefit.ts [--delay 12.5] [--bandwidth 100] [--size 65536] [--rounds 30]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { parseDeployment, type Deployment } from '../../src/controller/deployment-file.ts';
import { startControllerProcess, type ControllerProcess } from '../../src/controller/launch.ts';
import type { PatternsReport } from '../../src/patterns/report.ts';
import { patternEdges, type PatternKind } from '../../src/topology/patterns.ts';
import { freePortBelowEphemeral as freePort } from '../../test/helpers/free-port.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');
/** `vnet patterns` / `vnet relay`. */
const TOOLS: string[] = ['node', VNET];
/** One-way delay between each spoke and the hub (RTT twice this). */
const DELAY_MS = arg('delay', 12.5);
const BANDWIDTH_MBIT = arg('bandwidth', 100);
const SIZE = arg('size', 65_536);
const ROUNDS = arg('rounds', 30);
const PATTERNS: PatternKind[] = ['all-to-all', 'ring', 'bus'];
const PERIOD_MS = 500;
const HOSTS = ['c1', 'c2', 'c3', 'c4'];
const VM_COUNT = 8;
const WORKER_PORT = 7700;

const tag = randomBytes(2).toString('hex');
const work = mkdtempSync(join(tmpdir(), 'vnet-benefit-'));
const vmNs = (i: number): string => `vb${tag}-vm${i}`;
const tapName = (i: number): string => `vb${tag}t${i}`;
const vmIp = (i: number): string => `10.77.0.${10 + i}`;
const vmMac = (i: number): string => `02:00:00:00:07:0${i}`;
const hostOfVm = (i: number): string => HOSTS[i >> 1]!;
const procs: ChildProcess[] = [];

function sh(cmd: string[], check = true): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (check && r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr?.trim() || r.status}`);
  return r.stdout ?? '';
}

function bg(cmd: string[], log: string): ChildProcess {
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(join(work, log));
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  procs.push(child);
  return child;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function deployment(budget: number, controlPort: number, ports: Map<string, number>): Readonly<Deployment> {
  return parseDeployment(`name: benefit
sites:
  - { id: user, description: the user's LAN with the hub }
  - { id: cloud, lan: { bandwidthMbit: 1000, rttMs: 0.2 } }
wan:
  - { sites: [user, cloud], bandwidthMbit: ${BANDWIDTH_MBIT}, rttMs: ${2 * DELAY_MS} }
hosts:
  - { id: hub, site: user, hub: true, listen: { transport: tls, host: 127.0.0.1, port: ${ports.get('hub')} } }
${HOSTS.map((h) => `  - { id: ${h}, site: cloud, listen: { transport: tls, host: 127.0.0.1, port: ${ports.get(h)} } }`).join('\n')}
vms:
${Array.from({ length: VM_COUNT }, (_, i) => `  - { name: vm${i}, mac: "${vmMac(i)}", ip: ${vmIp(i)}, host: ${hostOfVm(i)} }`).join('\n')}
controller:
  control: { host: 127.0.0.1, port: ${controlPort} }
policy:
  updatePeriodMs: ${PERIOD_MS}
  smoothingIntervalMs: 2000
  detectionThreshold: 0.25
  fastPathBudget: ${budget}
  fastPathMinBytesPerSec: 20000
`, 'benefit.yaml');
}

async function startController(budget: number, controlPort: number, ports: Map<string, number>): Promise<ControllerProcess> {
  return startControllerProcess({ logger: silentLogger() }, {
    deployment: deployment(budget, controlPort, ports),
    dbPath: join(work, 'vnet.db'),
    tlsDir: join(work, 'certs'),
    control: { host: '127.0.0.1', port: controlPort },
    api: { host: '127.0.0.1', port: 0 },
    tokenFile: join(work, 'api-token'),
  });
}

async function allUp(ctl: ControllerProcess): Promise<void> {
  const model = ctl.controller.model;
  await until('every daemon connected to the controller', () => model.listHosts().every((h) => h.state === 'up'), 60_000);
  // Every daemon at the controller's rules version.
  await until('rules applied everywhere', () => model.listHosts().every((h) => {
    const r = model.getRules(h.id);
    return r !== undefined && r.appliedVersion === r.version;
  }), 30_000);
}

/** Established TCP connections on the workers' port in a VM's namespace. */
function workerConnections(i: number): number {
  return sh(['ip', 'netns', 'exec', vmNs(i), 'ss', '-Htn', 'state', 'established', `( sport = :${WORKER_PORT} or dport = :${WORKER_PORT} )`], false).split('\n').filter((l) => l.trim() !== '').length;
}

/** Run Patterns in the VM namespaces; worker 0's report. `onConnected` runs once every worker has its neighbours connected. */
async function runPatterns(kind: PatternKind, rounds: number, onConnected?: () => void): Promise<PatternsReport> {
  const degree = new Array<number>(VM_COUNT).fill(0);
  for (const [i, j] of patternEdges(kind, VM_COUNT)) {
    degree[i]!++;
    degree[j]!++;
  }
  const peers = Array.from({ length: VM_COUNT }, (_, i) => `${vmIp(i)}:${WORKER_PORT}`).join(',');
  const workers = Array.from({ length: VM_COUNT }, (_, i) => {
    const child = spawn('ip', ['netns', 'exec', vmNs(i), ...TOOLS, 'patterns', 'worker', '-p', kind, '-i', String(i), '--peers', peers,
      '-s', String(SIZE), '-r', String(rounds), '--json', '--connect-timeout', '60000', '--round-timeout', '60000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    return new Promise<string>((res, rej) => {
      child.once('exit', (code) => (code === 0 ? res(out) : rej(new Error(`patterns worker ${i} (${kind}) exited ${code}: ${err.trim().slice(0, 400)}`))));
    });
  });
  let watching = onConnected !== undefined;
  const watcher = (async (): Promise<void> => {
    while (watching) {
      if (degree.every((d, i) => workerConnections(i) >= d)) {
        onConnected?.();
        return;
      }
      await sleep(50);
    }
  })();
  const outs = await Promise.all(workers).finally(() => { watching = false; });
  await watcher;
  const line = outs[0]!.trim().split('\n').pop()!;
  return JSON.parse(line) as PatternsReport;
}

/** Ping along each pattern edge (both ways carry traffic) until stopped: enough for the controller to see the topology. */
function warmUp(kind: PatternKind): () => void {
  const pings = patternEdges(kind, VM_COUNT).map(([i, j]) =>
    spawn('ip', ['netns', 'exec', vmNs(i), 'ping', '-q', '-i', '0.01', '-s', '1200', vmIp(j)], { stdio: 'ignore' }));
  procs.push(...pings);
  return () => { for (const p of pings) p.kill('SIGKILL'); };
}

function neededPairs(kind: PatternKind): Array<[string, string]> {
  const s = new Set<string>();
  for (const [i, j] of patternEdges(kind, VM_COUNT)) {
    const [a, b] = [hostOfVm(i), hostOfVm(j)].sort() as [string, string];
    if (a !== b) s.add(`${a}|${b}`);
  }
  return [...s].sort().map((p) => p.split('|') as [string, string]);
}

interface Result { pattern: PatternKind; before: PatternsReport; after: PatternsReport; links: number; hubFramesDuringAfter: number }

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('benefit needs root (network namespaces, TAP devices)');
  for (const tool of ['ip', 'ping']) if (spawnSync('which', [tool]).status !== 0) throw new Error(`missing tool: ${tool}`);
  const ports = new Map<string, number>();
  for (const h of ['hub', ...HOSTS]) ports.set(h, await freePort());
  const relayPorts = new Map<string, number>();
  for (const h of HOSTS) relayPorts.set(h, await freePort());
  const controlPort = await freePort();
  await ensureDemoCertificates(join(work, 'certs'), ['hub', ...HOSTS]);
  for (let i = 0; i < VM_COUNT; i++) {
    sh(['ip', 'netns', 'add', vmNs(i)]);
    sh(['ip', '-n', vmNs(i), 'link', 'set', 'lo', 'up']);
  }
  let ctl = await startController(0, controlPort, ports);
  const results: Result[] = [];
  try {
    // The WAN: spoke → relay (DELAY each way, capped) → hub.
    for (const h of HOSTS) {
      bg([...TOOLS, 'relay', '--listen', `127.0.0.1:${relayPorts.get(h)}`, '--target', `127.0.0.1:${ports.get('hub')}`,
        '--delay', `${DELAY_MS}ms`, '--bandwidth', `${BANDWIDTH_MBIT}mbit`], `relay-${h}.log`);
    }
    mkdirSync(join(work, 'conf'), { recursive: true });
    for (const h of ['hub', ...HOSTS]) {
      const vms = Array.from({ length: VM_COUNT }, (_, i) => i).filter((i) => hostOfVm(i) === h);
      const lines = [
        `host: ${h}`, `role: ${h === 'hub' ? 'hub' : 'spoke'}`, `site: ${h === 'hub' ? 'user' : 'cloud'}`, 'transport: tls',
        `tls: { dir: ${join(work, 'certs')} }`, `listen: { host: 127.0.0.1, port: ${ports.get(h)} }`,
        ...(h === 'hub' ? [] : [`hub: { host: 127.0.0.1, port: ${relayPorts.get(h)} }`, 'hubId: hub']),
        `controller: { url: "${ctl.controlUrl}" }`,
        'reconnect: { initialMs: 100, maxMs: 1000 }',
        `runDir: ${join(work, 'run')}`, // this run's admin sockets, apart from any other daemon's on the machine
        'ports:',
        ...vms.map((i) => `  - { name: ${tapName(i)}, type: tap, mac: "${vmMac(i)}", netns: ${vmNs(i)} }`),
      ];
      if (vms.length === 0) lines[lines.length - 1] = 'ports: []';
      writeFileSync(join(work, 'conf', `${h}.yaml`), lines.join('\n') + '\n');
    }
    // Relays listening before the spokes dial.
    await sleep(1500);
    for (const h of ['hub', ...HOSTS]) bg(['node', VNET, 'daemon', '--config', join(work, 'conf', `${h}.yaml`)], `daemon-${h}.log`);
    for (let i = 0; i < VM_COUNT; i++) {
      await until(`TAP device in ${vmNs(i)}`, () => sh(['ip', '-n', vmNs(i), 'link', 'show', tapName(i)], false).length > 0, 60_000);
      sh(['ip', '-n', vmNs(i), 'addr', 'add', `${vmIp(i)}/24`, 'dev', tapName(i)]);
      sh(['ip', '-n', vmNs(i), 'link', 'set', 'dev', tapName(i), 'up']);
    }
    await allUp(ctl);
    const rtt = (from: number, to: number): string => /= [\d.]+\/([\d.]+)\//.exec(sh(['ip', 'netns', 'exec', vmNs(from), 'ping', '-c', '5', '-i', '0.2', '-q', vmIp(to)], false))?.[1] ?? '?';
    console.log(`benefit: 8 VMs on 4 hosts, hub at another site (${DELAY_MS} ms each way, ${BANDWIDTH_MBIT} Mbit/s per spoke), Patterns ${SIZE} B messages, ${ROUNDS} rounds`);
    console.log(`  VM ping through the hub (vm0 → vm2, c1 → c2): ${rtt(0, 2)} ms RTT; same host (vm0 → vm1): ${rtt(0, 1)} ms`);

    const before = new Map<PatternKind, PatternsReport>();
    for (const kind of PATTERNS) {
      before.set(kind, await runPatterns(kind, ROUNDS));
      const fast = ctl.controller.model.listLinks().filter((l) => l.kind === 'fast-path').length;
      if (fast !== 0) throw new Error(`budget 0, yet ${fast} fast-path links`);
      console.log(`  before ${kind}: median round ${before.get(kind)!.summary.medianMs.toFixed(1)} ms`);
    }

    // Restart the controller with a budget; the daemons redial it.
    await ctl.close();
    ctl = await startController(6, controlPort, ports);
    await allUp(ctl);
    for (const kind of PATTERNS) {
      const model = ctl.controller.model;
      const stop = warmUp(kind);
      const pairs = neededPairs(kind);
      const t0 = Date.now();
      try {
        await until(`fast-path links for ${kind}`, () => pairs.every(([a, b]) => model.getLink(a, b)?.kind === 'fast-path' && model.getLink(a, b)?.state === 'up'), 30_000);
        await until('fast-path rules applied', () => model.listHosts().every((h) => {
          const r = model.getRules(h.id);
          return r !== undefined && r.appliedVersion === r.version;
        }), 10_000);
      } catch (err) {
        stop();
        throw err;
      }
      const adaptedMs = Date.now() - t0;
      if (kind === PATTERNS[0]) console.log(`  VM ping over the fast path (vm0 → vm2, c1 → c2): ${rtt(0, 2)} ms RTT`);
      // Counters reach the controller once per period: let the warm-up's last frames be counted before the baseline.
      await sleep(2 * PERIOD_MS);
      const hubFrames = (): number => model.listLinks().filter((l) => l.kind === 'backbone').reduce((s, l) => s + l.frames, 0);
      const hub0 = hubFrames();
      // While it runs: any needed fast path missing or not up, and adaptation's decisions.
      const seq0 = model.latestSeq();
      const gaps = new Set<string>();
      const watch = setInterval(() => {
        for (const [a, b] of pairs) if (model.getLink(a, b)?.state !== 'up') gaps.add(`${a}-${b}:${model.getLink(a, b)?.state ?? 'absent'}`);
      }, 100);
      // The warm-up pings go on until the workers are connected, so the links stay while the workers start.
      const after = await runPatterns(kind, ROUNDS, stop).finally(() => { clearInterval(watch); stop(); });
      await sleep(2 * PERIOD_MS);
      const decided = model.listEvents({ since: seq0, types: ['decision'] }).events.flatMap((e) => (e.type === 'decision' && e.payload.decision.kind.startsWith('fast-path') ? [`${e.payload.decision.kind} ${String(e.payload.decision.detail.a)}-${String(e.payload.decision.detail.b)}`] : []));
      if (gaps.size > 0 || decided.length > 0) console.log(`  during after ${kind}: needed fast paths not up: ${[...gaps].join(', ') || 'none'}; decisions: ${decided.join(', ') || 'none'}`);
      const links = model.listLinks().filter((l) => l.kind === 'fast-path').length;
      results.push({ pattern: kind, before: before.get(kind)!, after, links, hubFramesDuringAfter: hubFrames() - hub0 });
      console.log(`  after ${kind}: ${pairs.length} host pairs got fast paths in ${(adaptedMs / 1000).toFixed(1)} s of warm-up; median round ${after.summary.medianMs.toFixed(1)} ms`);
    }
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGINT');
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => { p.once('exit', r); setTimeout(r, 5000); }))));
    await ctl.close();
    for (let i = 0; i < VM_COUNT; i++) sh(['ip', 'netns', 'del', vmNs(i)], false);
  }
  console.log('');
  console.log(`${'pattern'.padEnd(11)} ${'before: mean'.padStart(13)} ${'median'.padStart(9)} ${'after: mean'.padStart(12)} ${'median'.padStart(9)} ${'speedup (median)'.padStart(17)} ${'fast paths'.padStart(11)} ${'backbone frames during after'.padStart(29)}`);
  for (const r of results) {
    const b = r.before.summary;
    const a = r.after.summary;
    console.log(`${r.pattern.padEnd(11)} ${`${b.meanMs.toFixed(1)} ms`.padStart(13)} ${`${b.medianMs.toFixed(1)} ms`.padStart(9)} ${`${a.meanMs.toFixed(1)} ms`.padStart(12)} ${`${a.medianMs.toFixed(1)} ms`.padStart(9)} ${`${(b.medianMs / a.medianMs).toFixed(2)}x`.padStart(17)} ${String(r.links).padStart(11)} ${String(r.hubFramesDuringAfter).padStart(29)}`);
  }
  console.log(`(VNET reported up to 2x; median over ${ROUNDS} rounds of worker 0; round = exchange + barrier)`);
  rmSync(work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  console.error(`logs kept in ${work}`);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (let i = 0; i < VM_COUNT; i++) sh(['ip', 'netns', 'del', vmNs(i)], false);
  process.exitCode = 1;
});
