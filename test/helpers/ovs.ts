/**
 * Open vSwitch for privileged tests: `ovsdb-server` and `ovs-vswitchd`
 * (userspace datapath, no kernel module) run as children of the test, in a
 * temporary directory the test owns — its own database, sockets, pid and log
 * files — and are killed at cleanup, which also removes the directory.
 *
 *   const ovs = await startOvs(t);                 // t.after(() => ovs.stop())
 *   await ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev');
 *   const flows = await ovs.ofctl('dump-flows', br);
 *
 * With `{ netns }` both daemons run inside that network namespace, so the
 * bridges' devices (taps, AF_PACKET ports, the addresses of a userspace
 * tunnel's underlay bridge) live there and leave with it.
 *
 * `requireOvs` throws (never skips) when a tool is missing, naming the
 * Debian package: a privileged test that cannot run is a failing test.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortBelowEphemeral } from './free-port.ts';
import { requireTools, run, uniqueName } from './netns.ts';
import { waitFor } from './wait.ts';

const OVS_TOOLS = ['ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-ofctl'];
const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

/** Throws naming what is missing (root, the tools, Debian package openvswitch-switch). */
export function requireOvs(opts: { root?: boolean } = {}): void {
  const missing = OVS_TOOLS.filter((t) => !['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => canRun(join(d, t))));
  if (!existsSync(SCHEMA)) missing.push(SCHEMA);
  if (missing.length > 0) throw new Error(`privileged test cannot run: missing ${missing.join(', ')} (Debian package openvswitch-switch)`);
  if (opts.root !== false) requireTools([]);
}

function canRun(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export class OvsHarness {
  readonly dir = mkdtempSync(join(tmpdir(), 'vnet-ovs-'));
  readonly dbSocket = join(this.dir, 'db.sock');
  readonly #children: ChildProcess[] = [];
  /** Kernel interfaces the userspace datapath made for us (tap devices that outlive ovs-vswitchd). */
  readonly #interfaces = new Set<string>();
  #vswitchd: ChildProcess | undefined;
  readonly #netns: string | undefined;

  constructor(opts: { netns?: string | undefined } = {}) {
    this.#netns = opts.netns;
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, OVS_RUNDIR: this.dir, OVS_LOGDIR: this.dir, OVS_DBDIR: this.dir, OVS_SYSCONFDIR: this.dir };
  }

  /** A bridge or port name of our own (a kernel tap device in the userspace datapath, so unique; deleted at stop). */
  bridgeName(): string {
    const name = uniqueName('vof', 8);
    this.#interfaces.add(name);
    return name;
  }

  async startDb(): Promise<void> {
    await run(['ovsdb-tool', 'create', join(this.dir, 'conf.db'), SCHEMA]);
    this.#spawn('ovsdb-server', [
      join(this.dir, 'conf.db'),
      `--remote=punix:${this.dbSocket}`,
      // SSL remotes (ovsdb-server/add-remote pssl:…) use what `ovs-vsctl set-ssl` puts in the database.
      '--private-key=db:Open_vSwitch,SSL,private_key', '--certificate=db:Open_vSwitch,SSL,certificate', '--ca-cert=db:Open_vSwitch,SSL,ca_cert',
      `--unixctl=${join(this.dir, 'ovsdb-server.ctl')}`,
      `--pidfile=${join(this.dir, 'ovsdb-server.pid')}`,
      `--log-file=${join(this.dir, 'ovsdb-server.log')}`,
    ]);
    await waitFor(() => existsSync(this.dbSocket), 'ovsdb-server socket', 60_000);
    await this.vsctl('--no-wait', 'init');
  }

  async startSwitch(): Promise<void> {
    this.#vswitchd = this.#spawn('ovs-vswitchd', [
      `unix:${this.dbSocket}`,
      `--unixctl=${join(this.dir, 'ovs-vswitchd.ctl')}`,
      `--pidfile=${join(this.dir, 'ovs-vswitchd.pid')}`,
      `--log-file=${join(this.dir, 'ovs-vswitchd.log')}`,
      '-vconsole:off',
    ]);
    await waitFor(() => existsSync(join(this.dir, 'ovs-vswitchd.ctl')), 'ovs-vswitchd control socket', 60_000);
  }

  /** A netdev (userspace) bridge, its OpenFlow 1.3 only, optionally with controller targets and fail_mode=secure. */
  async addBridge(name: string, controllers: readonly string[] = []): Promise<void> {
    const args = ['add-br', name, '--', 'set', 'bridge', name, 'datapath_type=netdev', 'protocols=OpenFlow13', 'fail_mode=secure'];
    await this.vsctl(...args);
    if (controllers.length > 0) await this.vsctl('set-controller', name, ...controllers);
  }

  /** Make ovsdb-server also listen for SSL on loopback (after `set-ssl`: its key, certificate and CA); resolves with the port. */
  async addSslRemote(port?: number): Promise<number> {
    const p = port ?? await freePortBelowEphemeral();
    await this.#tool('ovs-appctl', ['-t', join(this.dir, 'ovsdb-server.ctl'), 'ovsdb-server/add-remote', `pssl:${p}:127.0.0.1`]);
    return p;
  }

  /** Make ovsdb-server also listen on loopback TCP; resolves with the port. */
  async addTcpRemote(): Promise<number> {
    const port = await freePortBelowEphemeral();
    await this.#tool('ovs-appctl', ['-t', join(this.dir, 'ovsdb-server.ctl'), 'ovsdb-server/add-remote', `ptcp:${port}:127.0.0.1`]);
    return port;
  }

  vsctl(...args: string[]): Promise<string> {
    return this.#tool('ovs-vsctl', [`--db=unix:${this.dbSocket}`, '--timeout=10', ...args]);
  }

  /** ovs-ofctl over the bridge's management socket in our directory. */
  ofctl(command: string, bridge: string, ...args: string[]): Promise<string> {
    return this.#tool('ovs-ofctl', ['-O', 'OpenFlow13', command, `unix:${join(this.dir, `${bridge}.mgmt`)}`, ...args]);
  }

  /** ovs-appctl to ovs-vswitchd (`ovs/route/add`, `tnl/arp/set`, `tnl/ports/show`…). */
  appctl(...args: string[]): Promise<string> {
    return this.#tool('ovs-appctl', ['-t', join(this.dir, 'ovs-vswitchd.ctl'), ...args]);
  }

  /** Kills ovs-vswitchd alone (ovsdb-server stays), for a switch that goes away and comes back. */
  async restartSwitch(): Promise<void> {
    const old = this.#vswitchd;
    if (old !== undefined && old.exitCode === null) {
      const gone = new Promise((r) => old.once('exit', r));
      old.kill('SIGKILL');
      await gone;
    }
    rmSync(join(this.dir, 'ovs-vswitchd.ctl'), { force: true });
    await this.startSwitch();
  }

  async stop(): Promise<void> {
    for (const child of this.#children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    }
    for (const name of this.#interfaces) await run(['ip', 'link', 'del', name], { allowFailure: true });
    rmSync(this.dir, { recursive: true, force: true });
  }

  async #tool(tool: string, args: string[]): Promise<string> {
    const r = await runEnv([tool, ...args], this.env);
    return r.trim();
  }

  #spawn(cmd: string, args: string[]): ChildProcess {
    const argv = this.#netns === undefined ? [cmd, ...args] : ['ip', 'netns', 'exec', this.#netns, cmd, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.resume();
    this.#children.push(child);
    return child;
  }
}

/** Runs an OVS tool with our directory in its environment; rejects with its stderr on failure. */
function runEnv(argv: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const [cmd, ...args] = argv;
  return new Promise((resolve, reject) => {
    execFile(cmd!, args, { env, timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`\`${argv.join(' ')}\` failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

/** ovsdb-server and ovs-vswitchd started in a fresh directory (and in `netns`, if given), stopped when the test ends. */
export async function startOvs(t: AfterHook, opts: { vswitchd?: boolean; netns?: string } = {}): Promise<OvsHarness> {
  requireOvs();
  const ovs = new OvsHarness({ netns: opts.netns });
  t.after(() => ovs.stop());
  await ovs.startDb();
  if (opts.vswitchd !== false) await ovs.startSwitch();
  return ovs;
}
