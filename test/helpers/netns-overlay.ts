/**
 * A whole overlay for privileged tests (root): the controller in this
 * process (SQLite in a temporary directory, mutual TLS on loopback), one
 * `vnet daemon` process per host (the real CLI, TLS tunnels on loopback),
 * and every VM a network namespace holding the TAP device its daemon made
 * (`netns:` port option) with the VM's address on it.
 *
 *   const o = await startNetnsOverlay(t, { hosts: ['c1', 'c2'], vms: [{ host: 'c1' }, { host: 'c2' }], policy: '' });
 *   o.spawn(0, ['ping', '-i', '0.2', o.vms[1]!.ip]);
 *   await waitFor(() => o.model.getTopology().class === 'bus', 'bus announced');
 *
 * With `standbyHub`, a second hub `hub2` is the standby (trunked to `hub`),
 * and every spoke fails over to it.
 *
 * With `ipv6`, every daemon runs in a namespace of its own on an IPv6-only
 * underlay (`ipv6-underlay.ts`: tunnels, the control channel and migration
 * channels on unique-local IPv6 addresses, no IPv4 on those links), and the
 * VMs have IPv6 addresses only.
 *
 * Every daemon has a migration channel listener and an admin interface on an
 * owner-only Unix socket (`admin(host, path)`); a VM's port may carry a model guest
 * (`guest:`, what a live migration moves). A VM with `qemu:` is instead a
 * real guest the daemon boots under QEMU on a stream port, or with `nic:
 * 'tap'` on a TAP device behind a packet port (every spoke then
 * gets `qemu: {dir}` so that it can receive one); it has no namespace, its
 * `ns` is ''. The daemons' logs are kept in the test's directory (`logOf`),
 * or in `VNET_OVERLAY_LOGS=DIR`.
 *
 * Everything (daemons, commands in the VMs, namespaces, the controller, the
 * directory) is removed when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import type { ControllerModel } from '../../src/controller/api-model.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startControllerProcess } from '../../src/controller/launch.ts';
import { requireTools, useNetns, waitFor, type ExecResult, type NetnsHarness } from './netns.ts';
import { freePortBelowEphemeral as freePort } from './free-port.ts';
import { adminRequest } from './admin-client.ts';
import { OVERLAY_LOG_LEVEL, startControllerChild, type ControllerChild } from './controller-child.ts';
import { ipv6Underlay, type Ipv6Underlay } from './ipv6-underlay.ts';
import { lifoAfter, type AfterHook } from './teardown.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

export interface OverlayVm {
  name: string;
  host: string;
  mac: string;
  /** The VM's address (IPv4, or IPv6 with `ipv6`), without prefix. */
  ip: string;
  /** Its namespace ('' for a QEMU VM). */
  ns: string;
  /** Its TAP device's name (a QEMU VM's stream port's). */
  dev: string;
  /** A real guest under QEMU. */
  qemu: boolean;
}

/** What both variants give (the controller in this process, or a `vnet controller` child). */
export interface NetnsOverlayBase {
  readonly vms: readonly OverlayVm[];
  /** The controller's SQLite file (WAL: readers may open it while the controller runs). */
  readonly dbPath: string;
  readonly harness: NetnsHarness;
  /** With `ipv6`: the underlay (each host's namespace and address). */
  readonly underlay: Ipv6Underlay | undefined;
  /** Runs a command in VM `i`'s namespace; killed when the test ends. */
  spawn(i: number, argv: readonly string[]): ChildProcess;
  exec(i: number, argv: readonly string[], timeoutMs?: number): Promise<ExecResult>;
  /** GET `path` (/ports, /counters, /status…) from host `host`'s admin interface. */
  admin(host: string, path: string): Promise<unknown>;
  /** Host `host`'s `vnet daemon` process (to kill or stop it). */
  daemon(host: string): ChildProcess;
  /** Host `host`'s daemon log (pino JSON lines). */
  logOf(host: string): string;
  /** The numeric `field` of the last line of host `host`'s log whose message is `msg`, if logged yet. */
  logged(host: string, msg: string, field: string): number | undefined;
  /** Host `host`'s QEMU directory (sockets of its QEMU VMs). */
  qemuDir(host: string): string;
}

/** The controller in this process: its model. */
export interface NetnsOverlay extends NetnsOverlayBase {
  readonly model: ControllerModel;
  /** A migration's step rows as the coordinator wrote them (the controller's wall clock), oldest first. */
  migrationSteps(id: string): ReadonlyArray<{ step: string; state: string; atMs: number }>;
}

/** The controller a `vnet controller` process (SQLite file in the test's directory), to kill -9 and restart. */
export interface NetnsOverlayWithControllerProcess extends NetnsOverlayBase {
  readonly controller: ControllerChild;
}

/** A port's model guest (daemon config `ports[].guest`). */
export interface OverlayGuest {
  profile: string;
  memoryMiB: number;
  diskMiB: number;
}

export interface NetnsOverlayInit {
  /** The spokes; a hub named `hub` is added. */
  hosts: readonly string[];
  /** `security`: the port's `security:` in the daemon config, as a YAML flow mapping (e.g. "{ lock: false }"). */
  /** `qemu.nic`: the guest's NIC on a stream port (default), or on a TAP device the daemon watches through a packet port. */
  vms: ReadonlyArray<{ host: string; guest?: OverlayGuest; security?: string; qemu?: { memoryMiB: number; nic?: 'stream' | 'tap' } }>;
  /** Lines of the deployment's `policy:` section (indented by two spaces), or '' for the defaults. */
  policy: string;
  /** Lines of the deployment's `scheduler:` section (indented by two spaces): a scheduling policy instead of placement advice. */
  scheduler?: string;
  /** Tools the test needs besides `ip` (checked up front: missing ones fail the test). */
  tools?: readonly string[];
  /** Add a standby hub named `hub2` (deployment `standbyHub: true`; a trunk to `hub`; every spoke's `standbyHub`). */
  standbyHub?: boolean;
  /**
   * Spokes in sites of their own (host → site id); the rest are in `lab`.
   * Each such site has a declared WAN path to `lab` (and to the others) of
   * `wanRttMs` (default 30) — what placement advice scores; the tunnels
   * themselves stay on loopback.
   */
  sites?: Readonly<Record<string, string>>;
  wanRttMs?: number;
  /** Daemons in namespaces of their own on an IPv6-only underlay; VMs with IPv6 addresses only. */
  ipv6?: boolean;
  /** The tunnels' transport (default tls); tcp: plain TCP links, authenticated with the host certificates (what the native forwarder serves). */
  transport?: 'tcp' | 'tls';
  /** More top-level lines of every daemon's config (e.g. `deadMs: 5000`, `nativeForwarding: { flowTtlMs: 60000 }`). */
  daemonConfig?: readonly string[];
}

export type { AfterHook } from './teardown.ts';

export async function startNetnsOverlay(t: AfterHook, init: NetnsOverlayInit): Promise<NetnsOverlay> {
  const td = lifoAfter(t);
  let model: ControllerModel | undefined;
  let steps: NetnsOverlay['migrationSteps'] = () => [];
  const base = await launchOverlay(td, init, async (c) => {
    const ctl = await startControllerProcess({ logger: silentLogger() }, {
      deployment: parseDeployment(c.deploymentYaml, 'overlay-priv.yaml'), dbPath: c.dbPath, tlsDir: c.certs,
      control: c.control, api: { host: '127.0.0.1', port: 0 }, tokenFile: c.tokenFile,
    });
    td.after(() => ctl.close());
    const m = ctl.controller.model;
    model = m;
    steps = (id) => ctl.controller.store.migrationSteps(id).map((r) => ({ step: r.step, state: r.state, atMs: r.atMs }));
    return { controlUrls: [ctl.controlUrl], connected: (hubs) => hubs.every((id) => m.getHost(id)?.state === 'up'), allUp: () => m.listHosts().every((h) => h.state === 'up') };
  });
  return { ...base, model: model!, migrationSteps: (id) => steps(id) };
}

/**
 * The same overlay with the controller a `vnet controller` child process on
 * fixed loopback ports and a database file, so a test can SIGKILL it and
 * start it again (`controller.kill()`, `controller.restart()`) while the
 * daemons and the VMs go on. Read it through its operator API (`controller.client`).
 */
export async function startNetnsOverlayWithControllerProcess(t: AfterHook, init: NetnsOverlayInit): Promise<NetnsOverlayWithControllerProcess> {
  let controller: ControllerChild | undefined;
  const upIn = async (c: ControllerChild, ids: readonly string[] | undefined): Promise<boolean> => {
    const { hosts } = await c.client.get<{ hosts: Array<{ id: string; state: string }> }>('/api/v1/hosts');
    return hosts.every((h) => ids?.includes(h.id) === false || h.state === 'up');
  };
  const td = lifoAfter(t);
  const base = await launchOverlay(td, init, async (c) => {
    const deploymentFile = join(c.work, 'overlay-priv.yaml');
    writeFileSync(deploymentFile, c.deploymentYaml);
    const child = await startControllerChild(td, {
      deploymentFile, dbPath: c.dbPath, tlsDir: c.certs, tokenFile: c.tokenFile, control: c.control,
      api: { host: '127.0.0.1', port: await freePort() }, logFile: join(c.logDir, 'controller.log'),
    });
    controller = child;
    return { controlUrls: [child.controlUrl], connected: (hubs) => upIn(child, hubs), allUp: () => upIn(child, undefined) };
  });
  return { ...base, controller: controller! };
}

/** How the overlay starts its controller, and asks it who is connected. */
export interface ControllerStart {
  work: string;
  deploymentYaml: string;
  dbPath: string;
  certs: string;
  tokenFile: string;
  control: { host: string; port: number };
  /** Where the daemons' logs go (VNET_OVERLAY_LOGS, else the test's directory). */
  logDir: string;
}

export interface StartedController {
  /** The control channel, or every replica's: the daemons' `controller.urls`. */
  controlUrls: readonly string[];
  /** Whether every host of `hubs` is up. */
  connected(hubs: readonly string[]): boolean | Promise<boolean>;
  /** Whether every registered host is up. */
  allUp(): boolean | Promise<boolean>;
}

/** How long the daemons get to close at the end before they are killed. */
const DAEMON_EXIT_MS = 15_000;

/** `t` tears down last-registered first (`lifoAfter`): daemons, then the controller, the namespaces, the work directory. */
export async function launchOverlay(t: AfterHook, init: NetnsOverlayInit, startCtl: (c: ControllerStart) => Promise<StartedController>): Promise<NetnsOverlayBase> {
  requireTools(['ip', ...(init.tools ?? [])]);
  const work = mkdtempSync(join(tmpdir(), 'vnet-overlay-priv-'));
  const daemons: ChildProcess[] = [];
  const daemonOf = new Map<string, ChildProcess>();
  // Registered first, so it runs last: after the daemons and the controller are gone.
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const harness = await useNetns(t, 'vo-');
  const hubs = init.standbyHub === true ? ['hub', 'hub2'] : ['hub'];
  const hosts = [...hubs, ...init.hosts];
  const ports = new Map<string, number>();
  for (const h of [...hosts, 'control']) ports.set(h, await freePort());
  for (const h of hosts) {
    ports.set(`${h}/migration`, await freePort());
  }
  const adminSocket = (h: string): string => join(work, 'run', h, 'admin.sock');
  const logDir = process.env.VNET_OVERLAY_LOGS ?? join(work, 'logs');
  mkdirSync(logDir, { recursive: true });
  const anyQemu = init.vms.some((v) => v.qemu !== undefined);
  const certs = join(work, 'certs');
  await ensureDemoCertificates(certs, hosts);
  const underlay = init.ipv6 === true ? await ipv6Underlay(harness, hosts) : undefined;
  const at = (h: string): string => `"${underlay?.address(h) ?? '127.0.0.1'}"`;
  const transport = init.transport ?? 'tls';

  const vms: OverlayVm[] = [];
  for (const [i, vm] of init.vms.entries()) {
    const hex = i.toString(16).padStart(2, '0');
    const qemu = vm.qemu !== undefined;
    const ip = underlay === undefined ? `10.98.0.${10 + i}` : `fd00:98::${(10 + i).toString(16)}`;
    vms.push({ name: `vm${i}`, host: vm.host, mac: `02:00:00:00:0a:${hex}`, ip, ns: qemu ? '' : await harness.namespace(), dev: harness.linkName(), qemu });
  }
  const deploymentYaml = `name: overlay-priv
${sitesYaml(init)}
hosts:
${hosts.map((h) => `  - { id: ${h}, site: ${init.sites?.[h] ?? 'lab'}${h === 'hub' ? ', hub: true' : h === 'hub2' ? ', standbyHub: true' : ''}, listen: { transport: ${transport}, host: ${at(h)}, port: ${ports.get(h)} } }`).join('\n')}
vms:
${vms.map((v) => `  - { name: ${v.name}, mac: "${v.mac}", ip: "${v.ip}", host: ${v.host} }`).join('\n')}
${init.policy === '' ? '' : `policy:\n${init.policy}\n`}${init.scheduler === undefined ? '' : `scheduler:\n${init.scheduler}\n`}`;
  const ctl = await startCtl({ work, deploymentYaml, dbPath: join(work, 'vnet.db'), certs, tokenFile: join(work, 'api-token'), control: { host: underlay?.controllerAddress ?? '127.0.0.1', port: ports.get('control')! }, logDir });
  t.after(async () => {
    const running = (p: ChildProcess): boolean => p.exitCode === null && p.signalCode === null;
    const exits = daemons.filter(running).map((p) => new Promise((r) => p.once('exit', r)));
    for (const p of daemons) { p.kill('SIGCONT'); p.kill('SIGINT'); }
    // Bounded: a daemon whose close hangs (a migration left half-way by a failed test) is killed, so the file ends now, not at its timeout.
    const bound = new Promise<'late'>((r) => setTimeout(() => r('late'), DAEMON_EXIT_MS).unref());
    if (await Promise.race([Promise.all(exits), bound]) === 'late') {
      const late = daemons.filter(running);
      process.stderr.write(`netns overlay: ${late.map((p) => [...daemonOf].find(([, c]) => c === p)?.[0] ?? p.pid).join(', ')} still running ${DAEMON_EXIT_MS} ms after SIGINT: killed\n`);
      for (const p of late) p.kill('SIGKILL');
      await Promise.all(exits);
    }
  });

  // While the overlay starts: a daemon that exits fails the wait at once, and a failed wait carries every daemon's last log lines.
  const launchWait = async <T>(check: () => T | Promise<T>, what: string, timeoutMs: number): Promise<NonNullable<T>> => {
    try {
      return await waitFor(async () => {
        const gone = [...daemonOf].find(([, p]) => p.exitCode !== null || p.signalCode !== null);
        if (gone !== undefined) throw new Error(`daemon ${gone[0]} exited (${gone[1].exitCode ?? gone[1].signalCode}) while waiting for ${what}`);
        return check();
      }, what, timeoutMs);
    } catch (err) {
      const tails = hosts.map((h) => {
        let text = '';
        try { text = readFileSync(join(logDir, `${h}.log`), 'utf8'); } catch { text = '(no log)'; }
        const p = daemonOf.get(h);
        return `--- ${h} (${p === undefined ? 'not started' : `exit ${p.exitCode ?? p.signalCode ?? 'running'}`}):\n${text.split('\n').slice(-15).join('\n')}`;
      });
      throw new Error(`${(err as Error).message}\n${tails.join('\n')}`, { cause: err });
    }
  };
  for (const h of hosts) {
    // With a standby hub, the hubs first: spokes that found the primary not yet listening would start on the standby.
    if (h === init.hosts[0] && init.standbyHub === true) {
      await launchWait(() => ctl.connected(hubs), 'the hubs connected to the controller', 30_000);
    }
    const mine = vms.filter((v) => v.host === h);
    const lines = [
      `host: ${h}`, `role: ${hubs.includes(h) ? 'hub' : 'spoke'}`, `transport: ${transport}`, `tls: { dir: ${certs} }`,
      `listen: { host: ${at(h)}, port: ${ports.get(h)} }`,
      // hub2 (the standby) names the primary as its hub: the trunk.
      ...(h === 'hub' ? [] : [`hub: { host: ${at('hub')}, port: ${ports.get('hub')} }`, 'hubId: hub']),
      ...(hubs.includes(h) || init.standbyHub !== true ? [] : [`standbyHub: { host: ${at('hub2')}, port: ${ports.get('hub2')}, id: hub2 }`]),
      `migration: { host: ${at(h)}, port: ${ports.get(`${h}/migration`)} }`,
      `admin: { socket: ${adminSocket(h)} }`,
      `controller: { urls: [${ctl.controlUrls.map((u) => `"${u}"`).join(', ')}] }`, 'reconnect: { initialMs: 100, maxMs: 1000 }',
      ...(anyQemu && h !== 'hub' ? [`qemu: { dir: ${join(work, `q-${h}`)} }`] : []),
      ...(init.daemonConfig ?? []),
      mine.length === 0 ? 'ports: []' : 'ports:',
      ...mine.map((v) => {
        const q = init.vms[vms.indexOf(v)]?.qemu;
        if (q !== undefined) return `  - { name: ${v.dev}, type: ${q.nic === 'tap' ? 'packet' : 'stream'}, mac: "${v.mac}", ip: ${v.ip}/24, qemu: { memoryMiB: ${q.memoryMiB} } }`;
        const g = init.vms[vms.indexOf(v)]?.guest;
        const guest = g === undefined ? '' : `, guest: { profile: ${g.profile}, memoryMiB: ${g.memoryMiB}, diskMiB: ${g.diskMiB} }`;
        const security = init.vms[vms.indexOf(v)]?.security;
        return `  - { name: ${v.dev}, type: tap, mac: "${v.mac}", ip: "${v.ip}/${underlay === undefined ? 24 : 64}", netns: ${v.ns}${guest}${security === undefined ? '' : `, security: ${security}`} }`;
      }),
    ];
    writeFileSync(join(work, `${h}.yaml`), lines.join('\n') + '\n');
    const out = openSync(join(logDir, `${h}.log`), 'a');
    const argv = ['node', VNET, 'daemon', '--config', join(work, `${h}.yaml`)];
    const inNs = underlay === undefined ? argv : ['ip', 'netns', 'exec', underlay.namespace(h), ...argv];
    // The daemons log to files the tests read (o.logged): at info, whatever level the test runner set for itself.
    const child = spawn(inNs[0]!, inNs.slice(1), { stdio: ['ignore', out, out], env: { ...process.env, VNET_LOG_LEVEL: OVERLAY_LOG_LEVEL } });
    daemons.push(child);
    daemonOf.set(h, child);
  }
  // Each daemon moves its VMs' TAP devices into their namespaces, with the VM's address, and sets them up (`ip:`, `netns:`).
  for (const v of vms) {
    if (v.qemu) continue; // its daemon boots it; it answers once its guest is up
    // A daemon's start (loading the code) took over 30 s at load average 30 on the 2-core machine.
    await launchWait(async () => (await harness.link(v.ns, v.dev))?.flags?.includes('UP'), `the TAP device of ${v.name} up in its namespace`, 120_000);
  }
  await launchWait(() => ctl.allUp(), 'every daemon connected to the controller', 120_000);
  return {
    vms,
    dbPath: join(work, 'vnet.db'),
    harness,
    underlay,
    logOf: (host) => join(logDir, `${host}.log`),
    logged: (host, msg, field) => loggedNumber(join(logDir, `${host}.log`), msg, field),
    qemuDir: (host) => join(work, `q-${host}`),
    spawn: (i, argv) => harness.spawn(vms[i]!.ns, argv),
    exec: (i, argv, timeoutMs = 20_000) => harness.exec(vms[i]!.ns, argv, { timeoutMs, allowFailure: true }),
    daemon: (host) => daemonOf.get(host)!,
    async admin(host, path) {
      const r = await adminRequest(`unix:${adminSocket(host)}`, 'GET', path);
      if (r.status !== 200) throw new Error(`admin ${host} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json;
    },
  };
}

/** The last: with VNET_OVERLAY_LOGS, earlier runs' lines are in the same file. */
function loggedNumber(file: string, msg: string, field: string): number | undefined {
  let found: number | undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.msg === msg && typeof entry[field] === 'number') found = entry[field];
    } catch { /* a line being written */ }
  }
  return found;
}

/** The deployment's `sites:` (and `wan:`, when some spokes are elsewhere). */
function sitesYaml(init: NetnsOverlayInit): string {
  const ids = ['lab', ...new Set(Object.values(init.sites ?? {}))].filter((x, i, all) => all.indexOf(x) === i);
  const wan: string[] = [];
  for (const [i, a] of ids.entries()) {
    for (const b of ids.slice(i + 1)) wan.push(`  - { sites: [${a}, ${b}], bandwidthMbit: 100, rttMs: ${init.wanRttMs ?? 30} }`);
  }
  return `sites:\n${ids.map((id) => `  - { id: ${id} }`).join('\n')}${wan.length === 0 ? '' : `\nwan:\n${wan.join('\n')}`}`;
}
