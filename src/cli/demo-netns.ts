/**
 * The demo's real-kernel mode (`vnet demo --netns`, root): every VM is a
 * network namespace holding a TAP device that its host's daemon created and
 * moved there, with the VM's MAC and IP. Traffic is real IP: each VM pings
 * its neighbours in the current pattern (paced, so the demo can run for
 * hours on a laptop), and the pattern can change under it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { IPv4, IPv6 } from 'ip-num';
import type { Logger } from '../common/logger.ts';
import { parseMac } from '../common/mac.ts';
import { TapPort } from '../dataplane/tap-port.ts';
import type { Port } from '../dataplane/port.ts';
import { CliPrerequisiteError, IpCommandError } from './errors.ts';

const run = promisify(execFile);

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    throw new IpCommandError(args, (err as { stderr?: string }).stderr?.trim() ?? String(err), { cause: err });
  }
}

export interface NetnsVm {
  name: string;
  mac: string;
  ip: string;
  namespace: string;
  port: Port;
}

/** The VMs' namespaces and TAP devices, and the ping traffic between them. */
export class NetnsVms {
  readonly vms: NetnsVm[] = [];
  readonly #log: Logger;
  readonly #tag = randomBytes(2).toString('hex');
  #pings: ChildProcess[] = [];

  constructor(logger: Logger) {
    this.#log = logger;
  }

  static check(): void {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) throw new CliPrerequisiteError('--netns needs root (network namespaces and TAP devices)');
  }

  /** Create the VM's namespace and a TAP port for it (in our namespace, moved into the VM's once the daemon has it). */
  async create(vm: { name: string; mac: string; ip: string }, index: number): Promise<NetnsVm> {
    const namespace = `vnet-${vm.name}-${this.#tag}`.slice(0, 40);
    await ip(['netns', 'add', namespace]);
    await ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
    const port = TapPort.open({ name: `vd${this.#tag}${index}`.slice(0, 15), mac: parseMac(vm.mac), mtu: 1500, vnetHdr: true, logger: this.#log });
    const entry: NetnsVm = { ...vm, namespace, port };
    this.vms.push(entry);
    return entry;
  }

  /** Move each TAP device into its VM's namespace and give it the VM's address (IPv4 or IPv6), with the prefix all VMs share. */
  async plug(): Promise<void> {
    const all = this.vms.map((vm) => vm.ip);
    for (const vm of this.vms) {
      await ip(['link', 'set', 'dev', vm.port.name, 'netns', vm.namespace]);
      await ip(['-n', vm.namespace, 'addr', 'add', `${vm.ip}/${commonPrefix(vm.ip, all)}`, 'dev', vm.port.name]);
      await ip(['-n', vm.namespace, 'link', 'set', 'dev', vm.port.name, 'up']);
    }
  }

  /** Ping along each edge of the pattern (both directions carry traffic: requests and replies). */
  setPattern(edges: readonly (readonly [number, number])[], payloadBytes: number, intervalS: number): void {
    this.stopTraffic();
    for (const [i, j] of edges) {
      const a = this.vms[i];
      const b = this.vms[j];
      if (a === undefined || b === undefined) continue;
      const child = spawn('ip', ['netns', 'exec', a.namespace, 'ping', '-q', '-i', String(intervalS), '-s', String(payloadBytes), b.ip], { stdio: 'ignore' });
      child.on('error', (err) => this.#log.warn({ err: err.message, from: a.name, to: b.name }, 'ping failed to start'));
      this.#pings.push(child);
    }
  }

  stopTraffic(): void {
    for (const p of this.#pings) p.kill('SIGKILL');
    this.#pings = [];
  }

  /** Stop the traffic and remove the namespaces (the TAP devices go with their daemons' ports). */
  async close(): Promise<void> {
    this.stopTraffic();
    for (const vm of this.vms) await run('ip', ['netns', 'del', vm.namespace]).catch(() => undefined);
  }
}

/**
 * The longest prefix that holds every VM address of `ip`'s family, so all
 * VMs share one subnet: at most /24 for IPv4 and /64 for IPv6, at least /8.
 */
export function commonPrefix(ip: string, ips: readonly string[]): number {
  const v6 = ip.includes(':');
  const bits = v6 ? 128 : 32;
  const values = ips.filter((x) => x.includes(':') === v6).map((x) => (v6 ? IPv6.fromString(x) : IPv4.fromString(x)).getValue());
  for (let p = v6 ? 64 : 24; p >= 8; p--) {
    const shift = BigInt(bits - p);
    if (new Set(values.map((n) => n >> shift)).size <= 1) return p;
  }
  return 8;
}
