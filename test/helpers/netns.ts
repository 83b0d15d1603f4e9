/**
 * The network-namespace harness for privileged tests (root).
 *
 * A NetnsHarness creates uniquely named namespaces (`vnt-` + random hex, so
 * parallel runs and leftovers of crashed runs never collide), veth pairs,
 * addresses and tc qdiscs, runs commands inside namespaces with a timeout,
 * and tracks everything it made. `cleanup()` removes all of it (namespaces,
 * host-side links, child processes it started), never throws, and is
 * registered with node:test when the harness is made by `useNetns(t)`.
 *
 *   const ns = await useNetns(t);            // t.after(() => ns.cleanup())
 *   const a = await ns.namespace();
 *   const [x, y] = await ns.vethPair({ ns: a }, {});
 *   await ns.addAddress(a, x, '10.9.0.1/24');
 *   const r = await ns.exec(a, ['ping', '-c', '1', '10.9.0.2'], { timeoutMs: 5000 });
 *
 * Tools a test needs are checked up front with `requireTools`, which throws
 * (never skips): a privileged test that cannot run is a failing test.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export { waitFor } from './wait.ts';

/** Which Debian package provides each tool, for the error message. */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2',
  tc: 'iproute2',
  ping: 'iputils-ping',
  iperf3: 'iperf3',
  ethtool: 'ethtool',
  tincd: 'tinc',
  'qemu-system-x86_64': 'qemu-system-x86',
  busybox: 'busybox-static',
};

function onPath(tool: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const dir of dirs) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** Throws an Error naming every missing tool (and its Debian package), and if not root. Never skips. */
export function requireTools(tools: readonly string[]): void {
  const problems: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) problems.push('not running as root');
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length > 0) {
    problems.push(`missing tools: ${missing.map((t) => (PACKAGE_OF[t] ? `${t} (Debian package ${PACKAGE_OF[t]})` : t)).join(', ')}`);
  }
  if (problems.length > 0) throw new Error(`privileged test cannot run: ${problems.join('; ')}`);
}

/** A short random name: `prefix` + hex; at most 15 bytes so it is valid as an interface name. */
export function uniqueName(prefix = 'vnt-', hexChars = 8): string {
  const name = prefix + randomBytes(Math.ceil(hexChars / 2)).toString('hex').slice(0, hexChars);
  if (Buffer.byteLength(name) > 15) throw new RangeError(`name ${name} longer than 15 bytes`);
  return name;
}

export interface ExecResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this long; default 10 s. */
  timeoutMs?: number;
  /** Resolve with the result even if the command fails (default: throw). */
  allowFailure?: boolean;
}

/** Runs a command (no shell) and collects its output; throws on failure unless `allowFailure`. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('run: empty command'));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: string | null; killed?: boolean }) | null;
      const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
      const result: ExecResult = { code, signal: e?.signal ?? null, stdout, stderr, timedOut: e?.killed === true && e.signal === 'SIGKILL' };
      if (e !== null && opts.allowFailure !== true) {
        const why = result.timedOut ? `timed out after ${timeoutMs} ms` : `exit ${code}${result.signal ? ` (${result.signal})` : ''}`;
        reject(new Error(`\`${argv.join(' ')}\` failed: ${why}: ${stderr.trim() || stdout.trim()}`, { cause: err }));
        return;
      }
      resolve(result);
    });
  });
}

interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

/** A harness whose cleanup is registered on the test context (`t.after`) or suite hook object. */
export async function useNetns(t: AfterHook, prefix = 'vnt-'): Promise<NetnsHarness> {
  const h = new NetnsHarness(prefix);
  t.after(() => h.cleanup());
  return h;
}

export interface VethEnd {
  /** Namespace for this end; the host (the test's own namespace) when undefined. */
  ns?: string;
  /** Interface name; generated when undefined. */
  name?: string;
}

export class NetnsHarness {
  readonly prefix: string;
  readonly #namespaces = new Set<string>();
  readonly #hostLinks = new Set<string>();
  readonly #children = new Set<ChildProcess>();

  constructor(prefix = 'vnt-') {
    this.prefix = prefix;
  }

  /** Creates a network namespace with a unique name, its loopback up; returns the name. */
  async namespace(): Promise<string> {
    const name = uniqueName(this.prefix);
    await run(['ip', 'netns', 'add', name]);
    this.#namespaces.add(name);
    await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A unique interface name for this harness (e.g. for a TAP device the test creates itself). */
  linkName(): string {
    return uniqueName(this.prefix.replace(/-$/, ''), 10);
  }

  /** Remembers a link in the host namespace so cleanup deletes it (for links made outside the harness). */
  trackHostLink(name: string): void {
    this.#hostLinks.add(name);
  }

  /** Creates a veth pair, each end in its namespace (or the host), both up; returns the two names. */
  async vethPair(a: VethEnd = {}, b: VethEnd = {}): Promise<[string, string]> {
    const nameA = a.name ?? this.linkName();
    const nameB = b.name ?? this.linkName();
    await run(['ip', 'link', 'add', nameA, 'type', 'veth', 'peer', 'name', nameB]);
    this.#hostLinks.add(nameA);
    this.#hostLinks.add(nameB);
    if (a.ns !== undefined) await this.moveLink(nameA, a.ns);
    if (b.ns !== undefined) await this.moveLink(nameB, b.ns);
    await this.linkUp(a.ns, nameA);
    await this.linkUp(b.ns, nameB);
    return [nameA, nameB];
  }

  /** Moves an interface from the host into a namespace (open fds on it, e.g. a TAP's, stay valid). */
  async moveLink(dev: string, ns: string): Promise<void> {
    await run(['ip', 'link', 'set', 'dev', dev, 'netns', ns]);
  }

  async linkUp(ns: string | undefined, dev: string): Promise<void> {
    await run([...ipIn(ns), 'link', 'set', 'dev', dev, 'up']);
  }

  /** Adds an address in CIDR form (`10.0.0.1/24`, `fd00::1/64`). */
  async addAddress(ns: string | undefined, dev: string, cidr: string): Promise<void> {
    const v6 = cidr.includes(':');
    await run([...ipIn(ns), ...(v6 ? ['-6'] : []), 'addr', 'add', cidr, 'dev', dev, ...(v6 ? ['nodad'] : [])]);
  }

  /** Replaces the root qdisc of a device: `qdisc(ns, dev, ['netem', 'delay', '10ms'])`. */
  async qdisc(ns: string | undefined, dev: string, spec: readonly string[]): Promise<void> {
    await this.exec(ns, ['tc', 'qdisc', 'replace', 'dev', dev, 'root', ...spec]);
  }

  /** Runs a command inside a namespace (or the host when ns is undefined). */
  exec(ns: string | undefined, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(ns === undefined ? argv : ['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** Starts a long-running command inside a namespace (its stdin a pipe with `stdin`); it is killed (SIGKILL) at cleanup if still running. */
  spawn(ns: string | undefined, argv: readonly string[], opts: { stdin?: boolean } = {}): ChildProcess {
    const full = ns === undefined ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
    const child = spawn(full[0]!, full.slice(1), { stdio: [opts.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    child.once('error', () => this.#children.delete(child));
    return child;
  }

  /** Interface details from `ip -j link show`, or undefined if the device is not there. */
  async link(ns: string | undefined, dev: string): Promise<IpLink | undefined> {
    const r = await run([...ipIn(ns), '-j', '-d', 'link', 'show', 'dev', dev], { allowFailure: true });
    if (r.code !== 0) return undefined;
    const parsed = JSON.parse(r.stdout) as IpLink[];
    return parsed[0];
  }

  /** Removes everything this harness created; never throws. */
  async cleanup(): Promise<void> {
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      }
    }
    this.#children.clear();
    for (const ns of this.#namespaces) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    this.#namespaces.clear();
    for (const dev of this.#hostLinks) {
      // Gone already when its peer or namespace went; the check keeps this quiet and fast.
      if ((await this.link(undefined, dev)) !== undefined) await run(['ip', 'link', 'del', 'dev', dev], { allowFailure: true });
    }
    this.#hostLinks.clear();
  }
}

/** The parts of `ip -j -d link` output tests look at. */
export interface IpLink {
  ifname: string;
  mtu: number;
  address: string;
  operstate?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

function ipIn(ns: string | undefined): string[] {
  return ns === undefined ? ['ip'] : ['ip', '-n', ns];
}
