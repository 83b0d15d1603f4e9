/**
 * The scale of the control channel: N hosts speaking the real control
 * protocol over loopback against a real `vnet controller` process, on SQLite
 * and on a 3-member etcd cluster (test/helpers/etcd-cluster.ts).
 *
 *   node --import tsx bench/control/scale.ts [--hosts 100,200,500,1000,2000] [--stores sqlite,etcd]
 *        [--vms 10] [--group 4] [--steady 10] [--moves 5] [--timeout 300] [--learn] [--profile DIR] [--controller-log FILE]
 *
 * Defaults: 1,000 hosts, 10 VMs each, declared in the deployment file (with
 * `--learn`, learned from the hosts' reports instead: each host connecting
 * adds VMs, so every host's rule set changes at every connect), both
 * stores. The hosts are real
 * `ControllerAgent`s (mutual TLS with certificates of the deployment CA,
 * hello with facts, a traffic report and facts every update period, links
 * and rule sets applied whole and acknowledged) over a host without a data
 * plane (scale-host.ts: VMs as ports, an application pattern of host groups
 * for adaptation), all in one child process (scale-clients.ts) so that
 * their CPU is not counted as the controller's. Per run it prints:
 *
 * - connect: time until every host is welcomed, and until every host holds
 *   the whole rule set (a rule for every VM on another host); the
 *   controller's CPU over that time per host welcomed (what a connect
 *   costs, whatever else loads the machine); the terms it led (etcd: more
 *   than one is a lost lease, and a restart of the controller);
 * - update, end to end: a VM moves between two hosts (its port removed on
 *   one, added on the other; both daemons send facts at once) → the
 *   controller learns it, reconciles and pushes → every host's rules agree
 *   with the new location, acknowledged (median and max of `--moves`);
 * - the controller's CPU (its process's utime + stime from /proc, as a share
 *   of one core) and RSS while steady (`--steady` seconds of reports, no
 *   change), and the clients' CPU beside it;
 * - the operator API's response time (GET /api/v1/overview every 250 ms)
 *   through the whole run: median, 99th percentile, max.
 *
 * `--profile DIR` runs the controller with `--cpu-prof` (one profile per run
 * in DIR/<store>-<hosts>/). Figures on a shared 2-core machine are noisy.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const moves = Number(arg('--moves', '5'));
const timeoutS = Number(arg('--timeout', '300'));
/** VMs learned from the hosts' reports (every host connecting changes every host's rules) instead of declared in the deployment. */
const learn = args.includes('--learn');
const profileDir = args.includes('--profile') ? resolve(arg('--profile', 'profiles')) : undefined;
/** `--controller-log FILE`: the controller's log, at info, to FILE.<store>-<hosts>. */
const controllerLog = args.includes('--controller-log') ? resolve(arg('--controller-log', 'controller.log')) : undefined;
const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');
const CLIENTS = resolve(import.meta.dirname, 'scale-clients.ts');

const pct = (xs: number[], p: number): number => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!);
const s = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—');
let lastError: string | undefined;
let lastStatus: unknown;
const until = async (what: string, cond: () => boolean, ms: number): Promise<boolean> => {
  const start = Date.now();
  const end = start + ms;
  let said = start;
  while (!cond()) {
    if (Date.now() - said >= 15_000) {
      said = Date.now();
      const st = lastStatus as ClientsStatus | undefined;
      console.log(`  … ${what}: ${((said - start) / 1000).toFixed(0)} s, ${st?.welcomed ?? 0} welcomed, ${st?.wholeRules ?? 0} holding the whole rule set`);
    }
    if (Date.now() > end) {
      console.log(`  ${what}: not within ${ms / 1000} s${lastError === undefined ? '' : ` (an agent's last error: ${lastError})`}; clients: ${JSON.stringify(lastStatus)}`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
};

/** utime + stime of a process, in ms, and its RSS in MiB (Linux /proc). */
function processUsage(pid: number): { cpuMs: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs: ticks * 10, rssMiB: Number(rss?.[1] ?? 0) / 1024 };
}

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
  steadyCpu: number;
  clientsCpu: number;
  rssMiB: number;
  api: number[];
  fastPathEnds: number;
  /** Terms the controller led (etcd: each beyond the first is a lost lease and a restart). */
  terms: number;
  /** Controller CPU from the first dial to every host holding its rules, per host welcomed. */
  connectCpuMs: number;
}

async function run(store: 'sqlite' | 'etcd', hosts: number, pkiDir: string, etcd: EtcdCluster | undefined): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-bench-scale-'));
  const result: RunResult = { store, hosts, welcomedMs: NaN, convergedMs: NaN, moveMs: [], steadyCpu: NaN, clientsCpu: NaN, rssMiB: NaN, api: [], fastPathEnds: 0, terms: 0, connectCpuMs: NaN };
  let controller: ChildProcess | undefined;
  let clients: ChildProcess | undefined;
  let probing = true;
  try {
    const topo = join(dir, 'deploy.yaml');
    writeFileSync(topo, deployment(hosts));
    const control = await freePortBelowEphemeral();
    const api = await freePortBelowEphemeral();
    const tokenFile = join(dir, 'token');
    const storeArgs = store === 'sqlite' ? ['--db', join(dir, 'vnet.db')] : ['--store', `etcd://${etcd!.endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',')}/scale-${hosts}-${Date.now()}`, '--replica-name', 'c1'];
    const node = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profileDir, `${store}-${hosts}`)];
    controller = spawn('node', [...node, VNET, 'controller', '-t', topo, '--tls-dir', pkiDir, ...storeArgs,
      '--control', `127.0.0.1:${control}`, '--api', `127.0.0.1:${api}`, '--token-file', tokenFile], { stdio: ['ignore', controllerLog === undefined ? 'ignore' : openSync(`${controllerLog}.${store}-${hosts}`, 'w'), 'pipe'], env: { ...process.env, VNET_LOG_LEVEL: controllerLog === undefined ? 'warn' : 'info' } });
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
    const exited = (): boolean => controller?.exitCode !== null;
    const startWait = Date.now();
    while (token === undefined && !exited() && Date.now() - startWait < 60_000) {
      token = await readTokenFile(tokenFile);
      if (token === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    if (token === undefined) throw new Error('the controller wrote no API token');
    const client = new ControllerClient({ baseUrl: `http://127.0.0.1:${api}`, token, timeoutMs: 60_000 });
    while (await client.get('/api/v1/overview').then(() => false, () => true)) await new Promise((r) => setTimeout(r, 100));
    const probe = (async (): Promise<void> => {
      while (probing) {
        const t0 = performance.now();
        await client.get('/api/v1/overview').catch(() => undefined);
        result.api.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();

    let status: ClientsStatus | undefined;
    let moved: ((ms: number) => void) | undefined;
    const c = fork(CLIENTS, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    clients = c;
    c.on('message', (m: FromClients) => {
      if (m.type === 'status') {
        status = m;
        lastError = m.lastError;
        lastStatus = m;
      }
      else if (m.type === 'moved') moved?.(m.ms);
    });
    const send = (m: ToClients): void => { if (c.connected) c.send(m); };
    const t0 = Date.now();
    const connectCpu0 = processUsage(pid).cpuMs;
    send({ type: 'start', init: { hosts, vmsPerHost, groupSize, controlUrl: `wss://127.0.0.1:${control}${CONTROL_PATH}`, tlsDir: pkiDir } });
    if (await until('all welcomed', () => (status?.welcomed ?? 0) === hosts, timeoutS * 1000)) result.welcomedMs = Date.now() - t0;
    if (await until('all holding the whole rule set', () => (status?.wholeRules ?? 0) === hosts, timeoutS * 1000)) result.convergedMs = Date.now() - t0;
    // CPU the controller spent per host welcomed: what a connect costs, whatever else shares the machine.
    result.connectCpuMs = (processUsage(pid).cpuMs - connectCpu0) / Math.max(1, status?.welcomed ?? 0);

    const cpu0 = processUsage(pid);
    const clients0 = status?.cpuMs ?? 0;
    const steady0 = Date.now();
    await new Promise((r) => setTimeout(r, steadyS * 1000));
    const cpu1 = processUsage(pid);
    const wall = Date.now() - steady0;
    result.steadyCpu = (cpu1.cpuMs - cpu0.cpuMs) / wall;
    result.clientsCpu = ((status?.cpuMs ?? 0) - clients0) / wall;
    result.rssMiB = cpu1.rssMiB;
    result.fastPathEnds = status?.fastPathEnds ?? 0;

    for (let k = 0; k < moves && hosts > 2; k++) {
      const from = 1 + ((k * groupSize) % (hosts - 1));
      const to = from + 1 <= hosts - 1 ? from + 1 : 1;
      const took = new Promise<number>((r) => { moved = r; });
      send({ type: 'move', mac: scaleVmMac(from, 0), from, to });
      const ms = await Promise.race([took, new Promise<number>((r) => setTimeout(() => r(NaN), timeoutS * 1000))]);
      if (Number.isNaN(ms)) {
        console.log(`  move ${k + 1}: not converged within ${timeoutS} s`);
        break;
      }
      result.moveMs.push(ms);
      await new Promise((r) => setTimeout(r, 1500));
    }
    probing = false;
    await probe;
    send({ type: 'stop' });
    await new Promise<void>((r) => { c.once('exit', () => r()); c.once('disconnect', () => r()); });
  } finally {
    probing = false;
    clients?.kill('SIGKILL');
    if (controller !== undefined && controller.exitCode === null) {
      const gone = new Promise((r) => controller!.once('exit', r));
      controller.kill('SIGINT');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 30_000))]);
      if (controller.exitCode === null) controller.kill('SIGKILL');
    }
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
  console.log(`# ${Math.max(...sizes)} host certificates issued in ${s(performance.now() - t0)}; ${vmsPerHost} VMs a host (${learn ? 'learned' : 'declared'}), groups of ${groupSize}`);
  for (const store of stores) {
    for (const hosts of sizes) {
      console.log(`# ${store}, ${hosts} hosts …`);
      const r = await run(store, hosts, pkiDir, etcd);
      results.push(r);
      console.log(`  welcomed ${s(r.welcomedMs)}, converged ${s(r.convergedMs)}, controller CPU ${r.connectCpuMs.toFixed(0)} ms a host connected, VM move → all acked: median ${s(pct(r.moveMs, 0.5))} max ${s(Math.max(...r.moveMs))} (${r.moveMs.length}/${moves}), ` +
        `controller ${(r.steadyCpu * 100).toFixed(0)}% of a core, ${r.rssMiB.toFixed(0)} MiB, clients ${(r.clientsCpu * 100).toFixed(0)}%, API median ${pct(r.api, 0.5).toFixed(0)} ms p99 ${pct(r.api, 0.99).toFixed(0)} ms max ${Math.max(...r.api).toFixed(0)} ms, fast-path ends ${r.fastPathEnds}, terms led ${r.terms}`);
    }
  }
} finally {
  await etcd?.stop();
  rmSync(pkiDir, { recursive: true, force: true });
}
console.log('\n| store | hosts | VMs | all welcomed | all converged | CPU a connect | VM move, end to end (median / max) | controller CPU (steady) | RSS | clients CPU | API median / p99 / max | terms |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.store} | ${r.hosts} | ${r.hosts * vmsPerHost} | ${s(r.welcomedMs)} | ${s(r.convergedMs)} | ${r.connectCpuMs.toFixed(0)} ms | ${s(pct(r.moveMs, 0.5))} / ${r.moveMs.length > 0 ? s(Math.max(...r.moveMs)) : '—'} | ` +
    `${(r.steadyCpu * 100).toFixed(0)}% | ${r.rssMiB.toFixed(0)} MiB | ${(r.clientsCpu * 100).toFixed(0)}% | ${pct(r.api, 0.5).toFixed(0)} / ${pct(r.api, 0.99).toFixed(0)} / ${Math.max(...r.api).toFixed(0)} ms | ${r.terms} |`);
}
