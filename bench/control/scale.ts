/**
 * The scale of the control channel: N hosts speaking the real control
 * protocol over loopback against a real `vnet controller` process, on SQLite
 * and on a 3-member etcd cluster (test/helpers/etcd-cluster.ts).
 *
 *   node --import tsx bench/control/scale.ts [--hosts 100,200,500,1000,2000] [--stores sqlite,etcd]
 *        [--vms 10] [--group 4] [--steady 10] [--moves 10] [--timeout 300] [--learn]
 *        [--procs 3] [--per-address 50] [--ramp 64] [--profile DIR] [--controller-log FILE] [--no-rule-patches]
 *
 * Defaults: 1,000 hosts, 10 VMs each, declared in the deployment file (with
 * `--learn`, learned from the hosts' reports instead: each host connecting
 * adds VMs, so every host's rule set changes at every connect), both
 * stores. The hosts are real `ControllerAgent`s (mutual TLS with
 * certificates of the deployment CA, hello with facts, a traffic report and
 * facts every update period, links and rule sets applied whole and
 * acknowledged) over a host without a data plane (scale-host.ts: VMs as
 * ports, an application pattern of host groups for adaptation), spread over
 * `--procs` child processes (scale-clients.ts) so that their CPU is not the
 * controller's and a late client is not the controller's fault, each host
 * dialling from a loopback address shared by `--per-address` hosts
 * (127.0.0.2, 127.0.0.3, …) so the controller's per-source limits apply as in
 * a deployment; each process starts its hosts with at most `--ramp` waiting
 * for a welcome at once. Per run it prints, per phase (connect: until every
 * host is welcomed; converge: until every host holds its whole rule set;
 * steady: `--steady` seconds of reports, no change; moves):
 *
 * - the controller's CPU (its process's utime + stime from /proc, as a share
 *   of one core) and RSS, the operator API's response time (GET
 *   /api/v1/overview every 250 ms: p50/p95/max), the controller's event-loop
 *   lag (its histogram, scraped at the phase's ends), the sessions the
 *   clients saw dropped, with why;
 * - welcomed over time (every 10 s), the controller's CPU per host welcomed,
 *   the terms it led (etcd: more than one is a lost lease);
 * - the update, end to end: a VM moves between two hosts (its port removed
 *   on one, added on the other; both daemons send facts at once) → the
 *   controller learns it, reconciles and pushes → every connected host's
 *   rules agree with the new location, acknowledged (p50/p95/max of
 *   `--moves`), and the bytes of rule sets and rule-set patches pushed per
 *   move (`vnet_control_pushed_bytes_total`; `--no-rule-patches`: the hosts
 *   do not list the `rule-patches` feature, and get whole sets as before it);
 * - at the end, why sessions ended and attempts failed, as the clients saw
 *   it and as the controller logged it, and the connections it dropped
 *   before their welcome (`vnet_control_pending_dropped_total`).
 *
 * `--profile DIR` runs the controller with `--cpu-prof` (one profile per run
 * in DIR/<store>-<hosts>/); `--controller-log FILE` keeps its info log as
 * FILE.<store>-<hosts>. Figures on a shared 2-core machine are noisy.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ControllerClient } from '../../src/cli/ctl-client.ts';
import { readTokenFile } from '../../src/controller/api/token-file.ts';
import { CONTROL_PATH } from '../../src/control/control-protocol.ts';
import { caFiles, hostFiles, initCa, issueHostCertificate } from '../../src/pki/certs.ts';
import { startEtcdCluster, type EtcdCluster } from '../../test/helpers/etcd-cluster.ts';
import { freePortBelowEphemeral } from '../../test/helpers/free-port.ts';
import type { ClientsStatus, FromClients, ToClients } from './scale-clients.ts';
import { scaleHostId, scaleListenPort, scaleVmIp, scaleVmMac } from './scale-host.ts';
import {
  controllerLogTally, counterByLabel, histogramBuckets, lagBetween, pct, phaseLine, processUsage, secs, tallyBetween, tallySum, type PhaseFigures,
} from './scale-phases.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : fallback;
};
const sizes = arg('--hosts', '1000').split(',').map(Number);
const stores = arg('--stores', 'sqlite,etcd').split(',') as Array<'sqlite' | 'etcd'>;
const vmsPerHost = Number(arg('--vms', '10'));
const groupSize = Number(arg('--group', '4'));
const steadyS = Number(arg('--steady', '10'));
const moves = Number(arg('--moves', '10'));
const timeoutS = Number(arg('--timeout', '300'));
const procs = Math.max(1, Number(arg('--procs', '3')));
const perAddress = Math.max(1, Number(arg('--per-address', '50')));
const rampPerProc = Math.max(1, Number(arg('--ramp', '64')));
/** VMs learned from the hosts' reports (every host connecting changes every host's rules) instead of declared in the deployment. */
const learn = args.includes('--learn');
/** The hosts act as daemons without rule-set patches: every change of a set is pushed whole. */
const noRulePatches = args.includes('--no-rule-patches');
const profileDir = args.includes('--profile') ? resolve(arg('--profile', 'profiles')) : undefined;
/** `--controller-log FILE`: the controller's info log kept as FILE.<store>-<hosts>. */
const controllerLog = args.includes('--controller-log') ? resolve(arg('--controller-log', 'controller.log')) : undefined;
const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');
const CLIENTS = resolve(import.meta.dirname, 'scale-clients.ts');
const LAG = 'vnet_controller_event_loop_lag_seconds';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function makePki(dir: string, hosts: number): Promise<void> {
  await initCa(dir);
  const files = caFiles(dir);
  const ca = { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
  mkdirSync(join(dir, 'hosts'), { recursive: true });
  for (let i = 0; i < hosts; i++) {
    const pair = await issueHostCertificate(ca, scaleHostId(i));
    const f = hostFiles(dir, scaleHostId(i));
    writeFileSync(f.cert, pair.cert);
    writeFileSync(f.key, pair.key, { mode: 0o600 });
  }
}

function deployment(hosts: number): string {
  const lines = ['name: scale-bench', 'sites:', '  - { id: lab }', 'hosts:'];
  for (let i = 0; i < hosts; i++) {
    lines.push(`  - { id: ${scaleHostId(i)}, site: lab${i === 0 ? ', hub: true' : ''}, listen: { transport: tls, host: 127.0.0.1, port: ${scaleListenPort(i)} } }`);
  }
  if (!learn) {
    lines.push('vms:');
    for (let i = 0; i < hosts; i++) {
      for (let slot = 0; slot < vmsPerHost; slot++) lines.push(`  - { name: vm-${i}-${slot}, mac: "${scaleVmMac(i, slot)}", ip: ${scaleVmIp(i, slot)}, host: ${scaleHostId(i)} }`);
    }
  }
  lines.push('policy:', `  fastPathBudget: ${Math.ceil((hosts - 1) / groupSize)}`, '  autoMigrate: false');
  return `${lines.join('\n')}\n`;
}

interface RunResult {
  store: string;
  hosts: number;
  welcomedMs: number;
  convergedMs: number;
  moveMs: number[];
  phases: PhaseFigures[];
  clientsCpu: number;
  fastPathEnds: number;
  /** Terms the controller led (etcd: each beyond the first is a lost lease and a restart). */
  terms: number;
  /** Controller CPU from the first dial to every host holding its rules, per host welcomed. */
  connectCpuMs: number;
  dropped: number;
  /** Bytes pushed per move (moves phase), by message type: set-rules, patch-rules, set-links. */
  movedBytes: Record<string, number>;
}

/** The clients' processes' statuses, summed. */
class Clients {
  readonly statuses: Array<ClientsStatus | undefined>;
  readonly children: ChildProcess[] = [];
  readonly #agreed = new Map<number, number>();
  #onAgreed: ((id: number) => void) | undefined;

  constructor(n: number) {
    this.statuses = Array.from({ length: n }, () => undefined);
  }

  fork(p: number): ChildProcess {
    const prof = process.env['VNET_SCALE_CLIENT_PROFILE'];
    const c = fork(CLIENTS, [], { execArgv: ['--import', 'tsx', ...(prof === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', prof])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.on('message', (m: FromClients) => {
      if (m.type === 'status') {
        this.statuses[p] = m;
        this.lagMs = Math.max(this.lagMs, m.lagMs);
      }
      else if (m.type === 'agreed') {
        const n = (this.#agreed.get(m.id) ?? 0) + 1;
        this.#agreed.set(m.id, n);
        if (n === this.children.length) this.#onAgreed?.(m.id);
      }
    });
    this.children.push(c);
    return c;
  }

  send(m: ToClients): void {
    for (const c of this.children) if (c.connected) c.send(m);
  }

  /** Resolves with the time until every process says its connected hosts agree with move `id`, or NaN after `ms`. */
  move(m: Extract<ToClients, { type: 'move' }>, ms: number): Promise<number> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(NaN), ms);
      this.#onAgreed = (id) => {
        if (id !== m.id) return;
        clearTimeout(timer);
        resolve(performance.now() - t0);
      };
      this.send(m);
    });
  }

  get welcomed(): number { return this.#sum((s) => s.welcomed); }
  get wholeRules(): number { return this.#sum((s) => s.wholeRules); }
  get cpuMs(): number { return this.#sum((s) => s.cpuMs); }
  get fastPathEnds(): number { return this.#sum((s) => s.fastPathEnds); }
  get drops(): Record<string, number> { return tallySum(this.statuses.map((s) => s?.drops ?? {})); }
  get failures(): Record<string, number> { return tallySum(this.statuses.map((s) => s?.failures ?? {})); }
  /** The longest any client process's own loop was held since `lagSince` was last reset, in ms. */
  lagMs = 0;

  #sum(f: (s: ClientsStatus) => number): number {
    return this.statuses.reduce((n, s) => n + (s === undefined ? 0 : f(s)), 0);
  }
}

const until = async (what: string, clients: Clients, cond: () => boolean, ms: number): Promise<boolean> => {
  const start = Date.now();
  let said = start;
  while (!cond()) {
    if (Date.now() - said >= 15_000) {
      said = Date.now();
      console.log(`  … ${what}: ${((said - start) / 1000).toFixed(0)} s, ${clients.welcomed} welcomed, ${clients.wholeRules} holding the whole rule set`);
    }
    if (Date.now() - start > ms) {
      console.log(`  ${what}: not within ${ms / 1000} s: ${clients.welcomed} welcomed, ${clients.wholeRules} holding the whole rule set`);
      return false;
    }
    await sleep(50);
  }
  return true;
};

async function run(store: 'sqlite' | 'etcd', hosts: number, pkiDir: string, etcd: EtcdCluster | undefined): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-bench-scale-'));
  const result: RunResult = { store, hosts, welcomedMs: NaN, convergedMs: NaN, moveMs: [], phases: [], clientsCpu: NaN, fastPathEnds: 0, terms: 0, connectCpuMs: NaN, dropped: 0, movedBytes: {} };
  let controller: ChildProcess | undefined;
  const clients = new Clients(Math.min(procs, hosts));
  let probing = true;
  const logFile = join(dir, 'controller.log');
  try {
    const topo = join(dir, 'deploy.yaml');
    writeFileSync(topo, deployment(hosts));
    const control = await freePortBelowEphemeral();
    const api = await freePortBelowEphemeral();
    const tokenFile = join(dir, 'token');
    const storeArgs = store === 'sqlite' ? ['--db', join(dir, 'vnet.db')] : ['--store', `etcd://${etcd!.endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',')}/scale-${hosts}-${Date.now()}`, '--replica-name', 'c1'];
    const node = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profileDir, `${store}-${hosts}`)];
    controller = spawn('node', [...node, VNET, 'controller', '-t', topo, '--tls-dir', pkiDir, ...storeArgs,
      '--control', `127.0.0.1:${control}`, '--api', `127.0.0.1:${api}`, '--token-file', tokenFile], { stdio: ['ignore', openSync(logFile, 'w'), 'pipe'], env: { ...process.env, VNET_LOG_LEVEL: 'info' } });
    const pid = controller.pid!;
    // Each term a replica leads starts the controller, which prints its addresses once: more than one is a lost lease.
    let stderrTail = '';
    controller.stderr!.on('data', (d: Buffer) => {
      process.stderr.write(d);
      stderrTail += d.toString();
      const lines = stderrTail.split('\n');
      stderrTail = lines.pop() ?? '';
      result.terms += lines.filter((l) => l.startsWith('controller: control channel')).length;
    });
    let token: string | undefined;
    const startWait = Date.now();
    while (token === undefined && controller.exitCode === null && Date.now() - startWait < 60_000) {
      token = await readTokenFile(tokenFile);
      if (token === undefined) await sleep(100);
    }
    if (token === undefined) throw new Error('the controller wrote no API token');
    const client = new ControllerClient({ baseUrl: `http://127.0.0.1:${api}`, token, timeoutMs: 60_000 });
    while (await client.get('/api/v1/overview').then(() => false, () => true)) await sleep(100);
    const apiTimes: Array<{ at: number; ms: number }> = [];
    const probe = (async (): Promise<void> => {
      while (probing) {
        const t0 = performance.now();
        await client.get('/api/v1/overview').catch(() => undefined);
        apiTimes.push({ at: t0, ms: performance.now() - t0 });
        await sleep(250);
      }
    })();
    const scrape = async (): Promise<string> => {
      const r = await fetch(`http://127.0.0.1:${api}/metrics`, { headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
      return r?.ok === true ? r.text() : '';
    };
    const begin = async (name: string): Promise<() => Promise<void>> => {
      const t0 = performance.now();
      const u0 = processUsage(pid);
      const lag0 = histogramBuckets(await scrape(), LAG);
      const drops0 = clients.drops;
      clients.lagMs = 0;
      return async (): Promise<void> => {
        const t1 = performance.now();
        const u1 = processUsage(pid);
        const lag1 = histogramBuckets(await scrape(), LAG);
        result.phases.push({
          name, wallMs: t1 - t0, cpu: (u1.cpuMs - u0.cpuMs) / (t1 - t0), rssMiB: u1.rssMiB,
          api: apiTimes.filter((a) => a.at >= t0 && a.at < t1).map((a) => a.ms), lag: lagBetween(lag0, lag1), drops: tallyBetween(drops0, clients.drops), clientsLagMs: clients.lagMs,
        });
      };
    };

    const controlUrl = `wss://127.0.0.1:${control}${CONTROL_PATH}`;
    for (let p = 0; p < clients.statuses.length; p++) {
      const first = Math.floor((p * hosts) / clients.statuses.length);
      const next = Math.floor(((p + 1) * hosts) / clients.statuses.length);
      clients.fork(p).send({ type: 'start', init: { hosts, vmsPerHost, groupSize, controlUrl, tlsDir: pkiDir, first, count: next - first, perAddress, ramp: rampPerProc, noRulePatches } } satisfies ToClients);
    }
    const t0 = Date.now();
    const connectCpu0 = processUsage(pid).cpuMs;
    const timeline: string[] = [];
    const sampler = setInterval(() => timeline.push(`${Math.round((Date.now() - t0) / 1000)} s: ${clients.welcomed}`), 10_000);
    let end = await begin('connect');
    if (await until('all welcomed', clients, () => clients.welcomed === hosts, timeoutS * 1000)) result.welcomedMs = Date.now() - t0;
    await end();
    end = await begin('converge');
    if (await until('all holding the whole rule set', clients, () => clients.wholeRules === hosts, timeoutS * 1000)) result.convergedMs = Date.now() - t0;
    await end();
    clearInterval(sampler);
    // CPU the controller spent per host welcomed: what a connect costs, whatever else shares the machine.
    result.connectCpuMs = (processUsage(pid).cpuMs - connectCpu0) / Math.max(1, clients.welcomed);
    console.log(`  welcomed over time: ${timeline.join(', ') || '—'}`);

    end = await begin('steady');
    const clients0 = clients.cpuMs;
    const steady0 = Date.now();
    await sleep(steadyS * 1000);
    result.clientsCpu = (clients.cpuMs - clients0) / (Date.now() - steady0);
    await end();
    result.fastPathEnds = clients.fastPathEnds;

    end = await begin('moves');
    const pushed0 = counterByLabel(await scrape(), 'vnet_control_pushed_bytes_total', 'type');
    for (let k = 0; k < moves && hosts > 2; k++) {
      const from = 1 + ((k * groupSize) % (hosts - 1));
      const to = from + 1 <= hosts - 1 ? from + 1 : 1;
      const ms = await clients.move({ type: 'move', id: k, mac: scaleVmMac(from, k % vmsPerHost), from, to }, timeoutS * 1000);
      if (Number.isNaN(ms)) {
        console.log(`  move ${k + 1}: not acknowledged by every connected host within ${timeoutS} s`);
        break;
      }
      result.moveMs.push(ms);
      await sleep(1500);
    }
    await end();
    probing = false;
    await probe;
    const metrics = await scrape();
    for (const [type, total] of Object.entries(counterByLabel(metrics, 'vnet_control_pushed_bytes_total', 'type'))) {
      result.movedBytes[type] = (total - (pushed0[type] ?? 0)) / Math.max(1, result.moveMs.length);
    }
    for (const p of result.phases) console.log(phaseLine(p));
    const drops = clients.drops;
    result.dropped = Object.values(drops).reduce((n, k) => n + k, 0);
    console.log(`  sessions dropped, as the clients saw it: ${JSON.stringify(drops)}; attempts that failed before a welcome: ${JSON.stringify(clients.failures)}`);
    console.log(`  pending connections the controller dropped: ${JSON.stringify(counterByLabel(metrics, 'vnet_control_pending_dropped_total', 'reason'))}`);
    clients.send({ type: 'stop' });
    await Promise.all(clients.children.map((c) => new Promise<void>((r) => { c.once('exit', () => r()); c.once('disconnect', () => r()); })));
  } finally {
    probing = false;
    for (const c of clients.children) c.kill('SIGKILL');
    if (controller !== undefined && controller.exitCode === null) {
      const gone = new Promise((r) => controller!.once('exit', r));
      controller.kill('SIGINT');
      await Promise.race([gone, sleep(30_000)]);
      if (controller.exitCode === null) controller.kill('SIGKILL');
    }
    console.log(`  the controller's log: ${JSON.stringify(controllerLogTally(logFile))}`);
    if (controllerLog !== undefined) copyFileSync(logFile, `${controllerLog}.${store}-${hosts}`);
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

const pkiDir = mkdtempSync(join(tmpdir(), 'vnet-bench-scale-pki-'));
const etcd = stores.includes('etcd') ? await startEtcdCluster(3) : undefined;
const results: RunResult[] = [];
try {
  const t0 = performance.now();
  await makePki(pkiDir, Math.max(...sizes));
  console.log(`# ${Math.max(...sizes)} host certificates issued in ${secs(performance.now() - t0)}; ${vmsPerHost} VMs a host (${learn ? 'learned' : 'declared'}), groups of 4; ` +
    `clients in ${procs} processes, ${perAddress} hosts a source address, ${rampPerProc} waiting at once a process while starting; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  for (const store of stores) {
    for (const hosts of sizes) {
      console.log(`# ${store}, ${hosts} hosts …`);
      const r = await run(store, hosts, pkiDir, etcd);
      results.push(r);
      console.log(`  welcomed ${secs(r.welcomedMs)}, converged ${secs(r.convergedMs)}, controller CPU ${r.connectCpuMs.toFixed(0)} ms a host connected, ` +
        `VM move → all acked: p50 ${secs(pct(r.moveMs, 0.5))} p95 ${secs(pct(r.moveMs, 0.95))} max ${secs(Math.max(...r.moveMs))} (${r.moveMs.length}/${moves}), ` +
        `clients ${(r.clientsCpu * 100).toFixed(0)}% of a core, fast-path ends ${r.fastPathEnds}, terms led ${r.terms}, ` +
        `pushed a move: ${Object.entries(r.movedBytes).map(([type, b]) => `${type} ${(b / 1024).toFixed(1)} KiB`).join(', ') || '—'}${noRulePatches ? ' (no rule-set patches)' : ''}`);
    }
  }
} finally {
  await etcd?.stop();
  rmSync(pkiDir, { recursive: true, force: true });
}
const steady = (r: RunResult): PhaseFigures | undefined => r.phases.find((p) => p.name === 'steady');
console.log('\n| store | hosts | VMs | all welcomed | all converged | CPU a connect | VM move, end to end (p50 / p95 / max) | controller CPU / RSS (steady) | API p50 / p95 / max (all phases) | sessions dropped | terms |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  const api = r.phases.flatMap((p) => p.api);
  const st = steady(r);
  console.log(`| ${r.store} | ${r.hosts} | ${r.hosts * vmsPerHost} | ${secs(r.welcomedMs)} | ${secs(r.convergedMs)} | ${r.connectCpuMs.toFixed(0)} ms | ` +
    `${secs(pct(r.moveMs, 0.5))} / ${secs(pct(r.moveMs, 0.95))} / ${r.moveMs.length > 0 ? secs(Math.max(...r.moveMs)) : '—'} | ` +
    `${st === undefined ? '—' : `${(st.cpu * 100).toFixed(0)}% / ${st.rssMiB.toFixed(0)} MiB`} | ${pct(api, 0.5).toFixed(0)} / ${pct(api, 0.95).toFixed(0)} / ${api.length > 0 ? Math.max(...api).toFixed(0) : '—'} ms | ${r.dropped} | ${r.terms} |`);
}
