/**
 * bench/dataplane — TCP throughput and ping RTT between two VMs in network
 * namespaces, through each overlay side by side in one run:
 *
 *   veth        vm1 ── veth ── vm2                         (the limit)
 *   vxlan       kernel VXLAN over the underlay veth
 *   tinc-tcp    tinc 1.0, switch mode, TCPOnly = yes        (closest peer: userspace L2 over TCP)
 *   tinc-udp    tinc 1.0, switch mode, UDP, default cipher
 *   vnet-tcp    vnet daemons, TAP ports, TCP tunnel, on the event loop (nativeForwarding: false)
 *   vnet-tcp-native       the same with the native forwarder (the default: adaptive busy polling; nativeForwarding: {}, docs/daemon.md)
 *   vnet-tcp-native-sleep the same, never spinning (nativeForwarding: { adaptivePoll: false }; the default before adaptive polling)
 *   vnet-tcp-native-busy  the same, spinning 50 µs before sleeping (nativeForwarding: { busyPollUs: 50 })
 *   vnet-tls    vnet daemons, TAP ports, mutual-TLS tunnel, on the event loop (nativeForwarding: false)
 *   vnet-tls-native       the same with the native forwarder: the link switches to native records (docs/wire-protocol.md)
 *   vnet-tls-native-sleep the same, never spinning
 *   vnet-tls-native-busy  the same, spinning 50 µs before sleeping
 *   vnet-vxlan  vnet daemons, TAP ports, VXLAN tunnel (UDP 4789, VMs at MTU 1450 like kernel VXLAN's)
 *   ovs-vxlan   Open vSwitch, userspace datapath, on both hosts, VXLAN (ovs-vtep.ts; VMs on veths, MTU 1450)
 *   vnet-ovs    a vnet daemon (h1, TAP port) and Open vSwitch (h2, userspace datapath) over VXLAN
 *
 * Figures per path: iperf3 throughput (1 and 4 streams); ping RTT, median
 * and p99 of 1,000 echoes 1 ms apart; request/response transactions per
 * second (`rr`, rr.c: 64-byte ping-pong over 1 and 16 TCP connections);
 * the overlay's own CPU per Gbit/s during the 1-stream run (utime + stime of
 * its processes from /proc/PID/stat; the kernel paths have none to show); and
 * its sleeps per echo during the ping (voluntary context switches of all its
 * threads: each sleep ends in a wake-up, the cost busy polling removes).
 *
 * Layout: host namespaces h1, h2 joined by an underlay veth (10.200.0.0/24);
 * VM namespaces vm1, vm2 each holding the overlay's interface (10.9.N.0/24).
 * Every address lives in namespaces this program creates and removes.
 *
 * Usage (root): node --import tsx bench/dataplane/run.ts [--reps 3] [--seconds 5] [--only vnet-tcp,tinc-tcp] [--profile] [--rr-seconds 3] [--interleave] [--sched] [--pin-overlay CPUS]
 *
 * --pin-overlay CPUS: the overlay's own processes (tincd, vnet daemons) run
 * on these CPUs only (`taskset -c CPUS`), the VMs' processes wherever the
 * scheduler puts them. To run everything on one CPU instead (the VMs too),
 * start the whole bench under `taskset -c 0`: every process it starts
 * inherits that. README, "Thread placement".
 *
 * --sched: the ping runs under `perf sched record -a`; printed per thread name
 * of the overlay (vnet-forwarder, node, tincd): runs and wake-up delay.
 *
 * --interleave: the paths take turns, one repetition each per round (set up
 * and torn down every round), so that a busy moment of a shared machine hits
 * every path rather than one; the medians are over the rounds.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, appendFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startOvsVtep, type OvsVtep } from './ovs-vtep.ts';
import { Measures, median, type Figures } from './measures.ts';

const { values: opts } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'rr-seconds': { type: 'string', default: '3' },
    'pin-overlay': { type: 'string' },
    interleave: { type: 'boolean', default: false },
    sched: { type: 'boolean', default: false },
  },
});
const REPS = Number(opts.reps);
const SECONDS = Number(opts.seconds);
const RR_SECONDS = Number(opts['rr-seconds']);
const ROOT = resolve(import.meta.dirname, '../..');
const VNET = join(ROOT, 'bin/vnet.js');
const tag = Math.random().toString(36).slice(2, 6);
const NS = { h1: `vb-h1-${tag}`, h2: `vb-h2-${tag}`, vm1: `vb-vm1-${tag}`, vm2: `vb-vm2-${tag}` };
const work = mkdtempSync(join(tmpdir(), 'vnet-bench-'));
let removed = false; // the scratch directory, at teardown
/** An overlay process's command, under `taskset` with --pin-overlay. */
const overlay = (cmd: string[]): string[] => (opts['pin-overlay'] === undefined ? cmd : ['taskset', '-c', opts['pin-overlay'], ...cmd]);

function sh(cmd: string[], check = true): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 120_000 });
  if (check && r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}
const inNs = (ns: string, cmd: string[], check = true): string => sh(['ip', 'netns', 'exec', ns, ...cmd], check);
const bg = (ns: string, cmd: string[], log: string): ChildProcess => {
  const out = join(work, log);
  const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  // A process still talking after the run's scratch directory went (teardown) has nothing left to log to.
  const append = (d: Buffer): void => {
    if (!removed) appendFileSync(out, d);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return child;
};

/** Signal every process and wait until all have exited. */
async function stopAll(procs: readonly ChildProcess[], signal: NodeJS.Signals): Promise<void> {
  for (const p of procs) p.kill(signal);
  await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(0) : p.once('exit', r)))));
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function setupUnderlay(): void {
  for (const ns of Object.values(NS)) sh(['ip', 'netns', 'add', ns]);
  for (const ns of Object.values(NS)) inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  sh(['ip', 'link', 'add', `u1${tag}`, 'netns', NS.h1, 'type', 'veth', 'peer', 'name', `u2${tag}`, 'netns', NS.h2]);
  inNs(NS.h1, ['ip', 'addr', 'add', '10.200.0.1/24', 'dev', `u1${tag}`]);
  inNs(NS.h2, ['ip', 'addr', 'add', '10.200.0.2/24', 'dev', `u2${tag}`]);
  inNs(NS.h1, ['ip', 'link', 'set', `u1${tag}`, 'up']);
  inNs(NS.h2, ['ip', 'link', 'set', `u2${tag}`, 'up']);
}

function teardown(): void {
  for (const ns of Object.values(NS)) sh(['ip', 'netns', 'del', ns], false);
  removed = process.env.VNET_BENCH_KEEP === undefined;
  if (removed) rmSync(work, { recursive: true, force: true });
  else console.log(`logs kept in ${work}`);
}

/** Give each VM namespace its overlay interface an address; returns vm2's address. */
function addressVms(if1: string, if2: string, net: number, mtu?: number): string {
  for (const [ns, ifname, host] of [[NS.vm1, if1, 1], [NS.vm2, if2, 2]] as const) {
    if (mtu !== undefined) inNs(ns, ['ip', 'link', 'set', ifname, 'mtu', String(mtu)]);
    inNs(ns, ['ip', 'addr', 'flush', 'dev', ifname]);
    inNs(ns, ['ip', 'addr', 'add', `10.9.${net}.${host}/24`, 'dev', ifname]);
    inNs(ns, ['ip', 'link', 'set', ifname, 'up']);
  }
  return `10.9.${net}.2`;
}

interface Scenario {
  name: string;
  setup(): Promise<string>; // returns vm2's address
  teardown(): Promise<void>;
  pids?: () => number[];
}

const scenarios: Scenario[] = [];

scenarios.push({
  name: 'veth',
  async setup() {
    sh(['ip', 'link', 'add', `bv1${tag}`, 'netns', NS.vm1, 'type', 'veth', 'peer', 'name', `bv2${tag}`, 'netns', NS.vm2]);
    return addressVms(`bv1${tag}`, `bv2${tag}`, 1);
  },
  async teardown() {
    inNs(NS.vm1, ['ip', 'link', 'del', `bv1${tag}`], false);
  },
});

scenarios.push({
  name: 'vxlan',
  async setup() {
    for (const [h, vm, local, remote, dev] of [
      [NS.h1, NS.vm1, '10.200.0.1', '10.200.0.2', `u1${tag}`],
      [NS.h2, NS.vm2, '10.200.0.2', '10.200.0.1', `u2${tag}`],
    ] as const) {
      inNs(h, ['ip', 'link', 'add', `vx${tag}`, 'type', 'vxlan', 'id', '42', 'local', local, 'remote', remote, 'dstport', '4789', 'dev', dev]);
      // The VXLAN device keeps its UDP socket in the host namespace when moved into the VM's.
      inNs(h, ['ip', 'link', 'set', `vx${tag}`, 'netns', vm]);
    }
    return addressVms(`vx${tag}`, `vx${tag}`, 2, 1450);
  },
  async teardown() {
    inNs(NS.vm1, ['ip', 'link', 'del', `vx${tag}`], false);
    inNs(NS.vm2, ['ip', 'link', 'del', `vx${tag}`], false);
  },
});

function tincScenario(name: string, net: number, tcpOnly: boolean): Scenario {
  let procs: ChildProcess[] = [];
  return {
    name,
    pids: () => procs.map((p) => p.pid!).filter(Boolean),
    async setup() {
      const base = join(work, name);
      const hosts = [
        { id: 'h1', ns: NS.h1, vm: NS.vm1, addr: '10.200.0.1' },
        { id: 'h2', ns: NS.h2, vm: NS.vm2, addr: '10.200.0.2' },
      ];
      for (const h of hosts) {
        const dir = join(base, h.id);
        mkdirSync(join(dir, 'hosts'), { recursive: true });
        const conf = [`Name = ${h.id}`, 'Mode = switch', `Interface = tn${net}${tag}`, 'AddressFamily = ipv4', `BindToAddress = ${h.addr}`];
        if (tcpOnly) conf.push('TCPOnly = yes');
        if (h.id === 'h1') conf.push('ConnectTo = h2');
        writeFileSync(join(dir, 'tinc.conf'), conf.join('\n') + '\n');
        writeFileSync(join(dir, 'hosts', h.id), `Address = ${h.addr}\nPort = 655\n${tcpOnly ? 'TCPOnly = yes\n' : ''}`);
        sh(['tincd', '-c', dir, '-K', '2048'], true);
      }
      for (const a of hosts) for (const b of hosts) if (a !== b) writeFileSync(join(base, b.id, 'hosts', a.id), readFileSync(join(base, a.id, 'hosts', a.id)));
      procs = hosts.map((h) => bg(h.ns, overlay(['tincd', '-c', join(base, h.id), '-D', '--pidfile', join(base, h.id, 'pid')]), `${name}-${h.id}.log`));
      for (const h of hosts) {
        await until(`tinc interface in ${h.ns}`, () => inNs(h.ns, ['ip', 'link', 'show', `tn${net}${tag}`], false).length > 0);
        inNs(h.ns, ['ip', 'link', 'set', `tn${net}${tag}`, 'netns', h.vm]);
      }
      const addr = addressVms(`tn${net}${tag}`, `tn${net}${tag}`, net);
      await until(`${name} connected`, () => inNs(NS.vm1, ['ping', '-c', '1', '-W', '1', addr], false).includes('1 received'), 30_000);
      return addr;
    },
    async teardown() {
      await stopAll(procs, 'SIGTERM');
      procs = [];
    },
  };
}
scenarios.push(tincScenario('tinc-tcp', 3, true));
scenarios.push(tincScenario('tinc-udp', 4, false));

/** vnet daemons on h1 and h2; with `ovsPeer` (VXLAN only) h2 is an Open vSwitch VTEP instead of a daemon. */
function vnetScenario(name: string, net: number, transport: 'tcp' | 'tls' | 'vxlan', ovsPeer = false, extra: string[] = []): Scenario {
  let procs: ChildProcess[] = [];
  let ovs: OvsVtep | undefined;
  return {
    name,
    pids: () => procs.map((p) => p.pid!).filter(Boolean),
    async setup() {
      const base = join(work, name);
      mkdirSync(base, { recursive: true });
      if (transport === 'tls') {
        sh(['node', VNET, 'certs', 'init', '--dir', join(base, 'certs')]);
        for (const h of ['h1', 'h2']) sh(['node', VNET, 'certs', 'host', '--dir', join(base, 'certs'), '--host', h]);
      } else {
        // Plain TCP off loopback is authenticated: the deployment link key (frames stay in clear).
        sh(['node', VNET, 'certs', 'link-key', '--dir', join(base, 'certs')]);
      }
      const port = (vm: string, i: number): string =>
        `  - { name: vn${net}${tag}, type: tap, mac: "02:00:00:00:${net.toString(16).padStart(2, '0')}:0${i}", netns: ${vm} }`;
      // runDir: this run's admin sockets, apart from any other daemon's on the machine.
      const common = [
        `transport: ${transport === 'tls' ? 'tls' : 'tcp'}`,
        `runDir: ${join(base, 'run')}`,
        transport === 'tls' ? `tls: { dir: ${join(base, 'certs')} }` : `tunnel: { linkKeyFile: ${join(base, 'certs', 'link.key')} }`,
        'members: [h1, h2]',
        ...extra,
      ];
      // VXLAN: two hubs (no TCP link between them) whose only tunnel is the VXLAN one.
      const vxlan = (self: string, peer: string, other: string): string[] =>
        [`vxlan: { trustedUnderlay: true, vni: 42, listen: { host: ${self} }, vteps: [{ peer: ${peer}, host: ${other} }] }`];
      const h2 = transport === 'vxlan'
        ? ['host: h2', 'role: hub', 'listen: { host: 10.200.0.2, port: 7000 }', ...vxlan('10.200.0.2', 'h1', '10.200.0.1')]
        : ['host: h2', 'role: spoke', 'hub: { host: 10.200.0.1, port: 7000 }', 'hubId: h1'];
      const h1 = ['host: h1', 'role: hub', 'listen: { host: 10.200.0.1, port: 7000 }', ...(transport === 'vxlan' ? vxlan('10.200.0.1', 'h2', '10.200.0.2') : [])];
      writeFileSync(join(base, 'h1.yaml'), [...h1, ...common, 'ports:', port(NS.vm1, 1)].join('\n') + '\n');
      writeFileSync(join(base, 'h2.yaml'), [...h2, ...common, 'ports:', port(NS.vm2, 2)].join('\n') + '\n');
      const prof = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/results')}`] : [];
      procs = [bg(NS.h1, overlay(['node', ...prof, VNET, 'daemon', '--config', join(base, 'h1.yaml')]), `${name}-h1.log`)];
      if (!ovsPeer) procs.push(bg(NS.h2, overlay(['node', ...prof, VNET, 'daemon', '--config', join(base, 'h2.yaml')]), `${name}-h2.log`));
      else {
        // The daemon's outer UDP checksums must be finished for OVS's userspace datapath (a veth leaves them to offload).
        inNs(NS.h1, ['ethtool', '-K', `u1${tag}`, 'tx', 'off']);
        ovs = await startOvsVtep({ host: NS.h2, vm: NS.vm2, vmIf: `vn${net}${tag}`, underlay: `u2${tag}`, address: '10.200.0.2/24', remote: '10.200.0.1', vni: 42 });
      }
      for (const vm of [NS.vm1, NS.vm2]) await until(`vnet port in ${vm}`, () => inNs(vm, ['ip', 'link', 'show', `vn${net}${tag}`], false).length > 0);
      const addr = addressVms(`vn${net}${tag}`, `vn${net}${tag}`, net, transport === 'vxlan' ? 1450 : undefined);
      await until(`${name} connected`, () => inNs(NS.vm1, ['ping', '-c', '1', '-W', '1', addr], false).includes('1 received'), 30_000);
      return addr;
    },
    async teardown() {
      await stopAll(procs, 'SIGINT');
      procs = [];
      if (ovsPeer) inNs(NS.h1, ['ethtool', '-K', `u1${tag}`, 'tx', 'on'], false);
      await ovs?.stop();
      ovs = undefined;
    },
  };
}
scenarios.push(vnetScenario('vnet-tcp', 5, 'tcp', false, ['nativeForwarding: false']));
scenarios.push(vnetScenario('vnet-tcp-native', 10, 'tcp', false, ['nativeForwarding: {}']));
scenarios.push(vnetScenario('vnet-tcp-native-sleep', 14, 'tcp', false, ['nativeForwarding: { adaptivePoll: false }']));
scenarios.push(vnetScenario('vnet-tcp-native-busy', 11, 'tcp', false, ['nativeForwarding: { busyPollUs: 50 }']));
scenarios.push(vnetScenario('vnet-tls', 6, 'tls', false, ['nativeForwarding: false']));
scenarios.push(vnetScenario('vnet-tls-native', 12, 'tls', false, ['nativeForwarding: {}']));
scenarios.push(vnetScenario('vnet-tls-native-sleep', 15, 'tls', false, ['nativeForwarding: { adaptivePoll: false }']));
scenarios.push(vnetScenario('vnet-tls-native-busy', 13, 'tls', false, ['nativeForwarding: { busyPollUs: 50 }']));
scenarios.push(vnetScenario('vnet-vxlan', 7, 'vxlan'));

function ovsScenario(): Scenario {
  let vteps: OvsVtep[] = [];
  return {
    name: 'ovs-vxlan',
    async setup() {
      vteps.push(await startOvsVtep({ host: NS.h1, vm: NS.vm1, vmIf: `ov${tag}`, underlay: `u1${tag}`, address: '10.200.0.1/24', remote: '10.200.0.2', vni: 42 }));
      vteps.push(await startOvsVtep({ host: NS.h2, vm: NS.vm2, vmIf: `ov${tag}`, underlay: `u2${tag}`, address: '10.200.0.2/24', remote: '10.200.0.1', vni: 42 }));
      const addr = addressVms(`ov${tag}`, `ov${tag}`, 8, 1450);
      await until('ovs-vxlan connected', () => inNs(NS.vm1, ['ping', '-c', '1', '-W', '1', addr], false).includes('1 received'), 30_000);
      return addr;
    },
    async teardown() {
      for (const v of vteps) await v.stop();
      vteps = [];
    },
  };
}
scenarios.push(ovsScenario());
scenarios.push(vnetScenario('vnet-ovs', 9, 'vxlan', true));

const measures = new Measures({ vm1: NS.vm1, vm2: NS.vm2, work, seconds: SECONDS, rrSeconds: RR_SECONDS, sched: opts.sched, inNs, bg, stopAll, until, sh });

interface Result extends Figures {
  name: string;
  error?: string;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/dataplane needs root (network namespaces, TAP devices)');
  for (const tool of ['ip', 'iperf3', 'ping', 'tincd', 'cc', ...(opts['pin-overlay'] === undefined ? [] : ['taskset'])]) if (spawnSync('which', [tool]).status !== 0) throw new Error(`missing tool: ${tool}`);
  const only = opts.only?.split(',');
  const chosen = scenarios.filter((s) => only === undefined || only.includes(s.name));
  setupUnderlay();
  const results: Result[] = [];
  const f = (xs: number[], digits: number): string => xs.map((x) => x.toFixed(digits)).join('/');
  const measured = new Map<string, Figures[]>(chosen.map((s) => [s.name, []]));
  const errors = new Map<string, string>();
  // --interleave: every path once per round (set up, measured, torn down), so that the rows of a round ran back to back.
  const rounds = opts.interleave ? REPS : 1;
  const perRound = opts.interleave ? 1 : REPS;
  try {
    for (let round = 0; round < rounds; round++) {
      for (const s of chosen) {
        if (errors.has(s.name)) continue;
        process.stdout.write(`${s.name}: `);
        try {
          const addr = await s.setup();
          const reps: Figures[] = [];
          for (let r = 0; r < perRound; r++) {
            reps.push(await measures.once(s.pids?.() ?? [], addr));
            process.stdout.write('.');
          }
          measured.get(s.name)!.push(...reps);
          const pick = (k: 'g1' | 'g4' | 'rtt' | 'p99' | 'rr1' | 'rr16'): number[] => reps.map((x) => x[k]);
          const cpu = reps.map((x) => x.cpuPerGbit).filter((x): x is number => x !== undefined);
          const wake = reps.map((x) => x.wakeupsPerEcho).filter((x): x is number => x !== undefined);
          process.stdout.write(` 1 stream ${f(pick('g1'), 2)} Gbit/s, 4 streams ${f(pick('g4'), 2)}, rtt ${f(pick('rtt'), 3)} ms (p99 ${f(pick('p99'), 3)}), rr ${f(pick('rr1'), 0)}/s (16: ${f(pick('rr16'), 0)})${cpu.length > 0 ? `, cpu/Gbit ${f(cpu, 2)}, sleeps/echo ${f(wake, 2)}` : ''}\n`);
        } catch (err) {
          errors.set(s.name, (err as Error).message);
          process.stdout.write(`FAILED: ${(err as Error).message}\n`);
        } finally {
          await s.teardown();
        }
      }
    }
  } finally {
    teardown();
  }
  for (const s of chosen) {
    const reps = measured.get(s.name)!;
    const pick = (k: 'g1' | 'g4' | 'rtt' | 'p99' | 'rr1' | 'rr16'): number => (reps.length > 0 ? median(reps.map((x) => x[k])) : NaN);
    const cpu = reps.map((x) => x.cpuPerGbit).filter((x): x is number => x !== undefined);
    const wake = reps.map((x) => x.wakeupsPerEcho).filter((x): x is number => x !== undefined);
    const error = errors.get(s.name);
    results.push({
      name: s.name, g1: pick('g1'), g4: pick('g4'), rtt: pick('rtt'), p99: pick('p99'), rr1: pick('rr1'), rr16: pick('rr16'),
      cpuPerGbit: cpu.length > 0 ? median(cpu) : undefined, wakeupsPerEcho: wake.length > 0 ? median(wake) : undefined, ...(error === undefined ? {} : { error }),
    });
  }
  const by = (n: string): Result | undefined => results.find((r) => r.name === n);
  const veth = by('veth');
  console.log(`\nbench/dataplane: medians of ${REPS} runs, iperf3 ${SECONDS} s, ping: 1,000 echoes 1 ms apart, rr: ${RR_SECONDS} s of 64-byte request/response (${new Date().toISOString()})\n`);
  console.log('| path | 1 stream Gbit/s | 4 streams Gbit/s | ping RTT ms median | p99 | rr/s 1 conn | rr/s 16 conns | rr 1 conn / veth | CPU cores per Gbit/s | sleeps per echo |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const toVeth = veth === undefined ? '—' : (r.rr1 / veth.rr1).toFixed(2);
    const cpu = r.cpuPerGbit === undefined ? '—' : r.cpuPerGbit.toFixed(2);
    const wake = r.wakeupsPerEcho === undefined ? '—' : r.wakeupsPerEcho.toFixed(2);
    console.log(`| ${r.name} | ${r.g1.toFixed(2)} | ${r.g4.toFixed(2)} | ${r.rtt.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.rr1.toFixed(0)} | ${r.rr16.toFixed(0)} | ${toVeth} | ${cpu} | ${wake} |${r.error ? ` error: ${r.error}` : ''}`);
  }
  const ratio = (a: string, b: string): void => {
    const x = by(a);
    const y = by(b);
    if (x === undefined || y === undefined) return;
    console.log(`${a} / ${b}: 1 stream ${(x.g1 / y.g1).toFixed(2)}x, 4 streams ${(x.g4 / y.g4).toFixed(2)}x, RTT ${(x.rtt / y.rtt).toFixed(2)}x (p99 ${(x.p99 / y.p99).toFixed(2)}x), rr ${(x.rr1 / y.rr1).toFixed(2)}x (16 conns ${(x.rr16 / y.rr16).toFixed(2)}x)`);
  };
  console.log('');
  ratio('vnet-tcp', 'tinc-tcp');
  ratio('vnet-tcp-native', 'tinc-tcp');
  ratio('vnet-tcp-native-sleep', 'tinc-tcp');
  ratio('vnet-tcp-native-busy', 'tinc-tcp');
  ratio('vnet-tcp-native', 'vnet-tcp-native-sleep');
  ratio('vnet-tcp-native', 'vnet-tcp');
  ratio('vnet-tls', 'tinc-tcp');
  ratio('vnet-tls-native', 'tinc-tcp');
  ratio('vnet-tls-native-sleep', 'tinc-tcp');
  ratio('vnet-tls-native-busy', 'tinc-tcp');
  ratio('vnet-tls-native', 'vnet-tls-native-sleep');
  ratio('vnet-tls-native', 'vnet-tls');
  ratio('vnet-tcp', 'tinc-udp');
  ratio('vnet-tcp', 'vxlan');
  ratio('vnet-tls', 'vxlan');
  ratio('vnet-vxlan', 'vxlan');
  ratio('ovs-vxlan', 'vxlan');
  ratio('vnet-ovs', 'vxlan');
}

await main();
