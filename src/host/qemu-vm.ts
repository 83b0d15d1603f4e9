/**
 * A real Linux guest as a VM of the overlay: QEMU under TCG, the guest
 * kernel and busybox initramfs of scripts/guest-build.sh, its one NIC (an
 * e1000) on the daemon's stream port (`-netdev stream` to the port's Unix
 * socket) or on a TAP device the daemon made and watches through a packet
 * port (`-netdev tap`, qemu-tap.ts), QMP on a socket of its own. The second implementation of
 * `VmRuntime`: it is not moved by the engine but migrates itself (QEMU's own
 * migration, qemu-migration-send.ts / qemu-migration-receive.ts).
 *
 *   boot       QEMU started; QMP connected; the console watched for the
 *              guest's VNET_NET_READY (eth0 has its address) within the boot
 *              deadline
 *   incoming   the destination's copy: the same machine with `-incoming
 *              defer -S` (it waits for `migrate-incoming` and does not run
 *              after it until `cont`)
 *   pause      QMP stop;  resume: QMP cont (a migration still under way is
 *              cancelled first, so the guest runs here again on an abort)
 *   relinquish QMP quit (the VM runs on another host now); close: the same
 *
 * QEMU runs under `setpriv --pdeathsig KILL` (qemu-process.ts): it dies with
 * the daemon. The sockets and QEMU's console log live in the VM's directory.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { formatMac, type Mac } from '../common/mac.ts';
import { connectWithRetry, type GuestImage } from '../migration/qemu/qemu-guest-recorder.ts';
import { QemuProcess } from '../migration/qemu/qemu-process.ts';
import type { QmpClient } from '../migration/qemu/qmp-client.ts';
import { parseQueryMigrate } from '../migration/qemu/qemu-migration-plan.ts';
import { QemuVmError } from './errors.ts';
import type { QemuVmRuntime } from './vm-runtime.ts';

/** Below this the Debian guest kernel dies at boot (qemu-guest-recorder.ts). */
export const MIN_QEMU_MEMORY_MIB = 96;
const NET_READY = 'VNET_NET_READY';
const GUEST_READY = 'VNET_GUEST_READY';

export interface QemuVmSpec {
  readonly name: string;
  readonly mac: Mac;
  /** The daemon's port: its name, and the stream socket QEMU connects to or the TAP device it attaches to (a packet port's). */
  readonly port: string;
  readonly socketPath?: string | undefined;
  readonly tap?: string | undefined;
  readonly memoryMiB: number;
  /** The guest's address on eth0 (ADDR/PREFIX), set by its init. */
  readonly ip?: string | undefined;
  /** The VM's own directory (QMP and migration sockets). */
  readonly dir: string;
  readonly image: GuestImage;
  readonly binary?: string | undefined;
  /** From QEMU's start to the guest's network being up (default 120 s: TCG on a loaded machine is slow). */
  readonly bootTimeoutMs?: number | undefined;
}

export interface QemuVmComponents {
  readonly logger: Logger;
  readonly clock: Clock;
}

/**
 * QEMU's netdev for the VM's NIC: `-netdev stream` to the stream port's
 * socket, or `-netdev tap` on the TAP device a packet port watches (QEMU
 * attaches to the daemon's device; no scripts; no vnet_hdr, so QEMU writes
 * plain frames, each within the MTU). Throws QemuVmError with neither.
 */
export function qemuNetdev(spec: Pick<QemuVmSpec, 'name' | 'socketPath' | 'tap'>): string {
  if (spec.tap !== undefined) return `tap,id=n0,ifname=${spec.tap},script=no,downscript=no,vnet_hdr=off`;
  if (spec.socketPath !== undefined && spec.socketPath !== '') return `stream,id=n0,server=off,addr.type=unix,addr.path=${spec.socketPath}`;
  throw new QemuVmError(`VM ${spec.name}: its NIC needs a stream socket or a TAP device`);
}

/**
 * The QEMU command line of a VM (pure; tests and the benchmark use it).
 * `incoming`: true for `-incoming defer -S`, a URI for a plain `-incoming URI`
 * (runs once loaded). `netdev` replaces the VM's own (the benchmark's
 * baseline puts the guest on a TAP device of a kernel bridge).
 */
export function qemuVmArgs(spec: Pick<QemuVmSpec, 'name' | 'mac' | 'socketPath' | 'tap' | 'memoryMiB' | 'ip' | 'image'>, qmpSocket: string, incoming: boolean | string, netdev?: string): string[] {
  const append = ['console=ttyS0', 'loglevel=5', 'panic=-1', 'vnet.workload=idle', ...(spec.ip !== undefined ? [`vnet.ip=${spec.ip}`] : [])].join(' ');
  return [
    '-accel', 'tcg',
    '-m', `${spec.memoryMiB}M`,
    '-smp', '1',
    '-nographic', '-nodefaults', '-no-user-config',
    '-serial', 'stdio',
    '-monitor', 'none',
    '-no-reboot',
    '-kernel', spec.image.kernel,
    '-initrd', spec.image.initramfs,
    '-append', append,
    '-netdev', netdev ?? qemuNetdev(spec),
    '-device', `e1000,netdev=n0,mac=${formatMac(spec.mac)}`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
    '-name', `vnet-${spec.name}`,
    ...(incoming === true ? ['-incoming', 'defer', '-S'] : typeof incoming === 'string' ? ['-incoming', incoming] : []),
  ];
}

export class QemuVm implements QemuVmRuntime {
  readonly name: string;
  readonly mac: Mac;
  readonly port: string;
  readonly spec: QemuVmSpec;
  readonly qmp: QmpClient;
  readonly process: QemuProcess;
  readonly #log: Logger;
  #gone = false;

  private constructor(spec: QemuVmSpec, process: QemuProcess, qmp: QmpClient, log: Logger) {
    this.name = spec.name;
    this.mac = spec.mac;
    this.port = spec.port;
    this.spec = spec;
    this.process = process;
    this.qmp = qmp;
    this.#log = log;
  }

  /** This runtime migrates itself through QEMU. */
  get qemu(): QemuVm {
    return this;
  }

  /** Boot the guest and wait for its network. Throws QemuVmError (QEMU gone, boot deadline passed). */
  static boot(components: QemuVmComponents, spec: QemuVmSpec): Promise<QemuVm> {
    return QemuVm.#start(components, spec, false);
  }

  /** The destination's copy: started with `-incoming defer -S`, waiting for the migration stream. */
  static incoming(components: QemuVmComponents, spec: QemuVmSpec): Promise<QemuVm> {
    return QemuVm.#start(components, spec, true);
  }

  static async #start(components: QemuVmComponents, spec: QemuVmSpec, incoming: boolean): Promise<QemuVm> {
    const log = componentLogger(components.logger, 'qemu-vm', { vm: spec.name });
    if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < MIN_QEMU_MEMORY_MIB || spec.memoryMiB > 4096) {
      throw new QemuVmError(`VM ${spec.name}: memory ${spec.memoryMiB} MiB is not an integer in [${MIN_QEMU_MEMORY_MIB}, 4096]`);
    }
    mkdirSync(spec.dir, { recursive: true, mode: 0o700 });
    const qmpSocket = join(spec.dir, incoming ? 'qmp-in.sock' : 'qmp.sock');
    rmSync(qmpSocket, { force: true });
    const proc = new QemuProcess(spec.binary ?? 'qemu-system-x86_64', qemuVmArgs(spec, qmpSocket, incoming), log);
    const bootTimeoutMs = spec.bootTimeoutMs ?? 120_000;
    const t0 = components.clock.now();
    let qmp: QmpClient | undefined;
    try {
      proc.start();
      qmp = await connectWithRetry(qmpSocket, proc, components.clock, t0 + bootTimeoutMs, log, undefined);
      if (!incoming) await proc.waitForConsole(spec.ip !== undefined ? NET_READY : GUEST_READY, t0 + bootTimeoutMs - components.clock.now(), bootTimeoutMs);
    } catch (err) {
      await proc.stop(qmp);
      await qmp?.close().catch(() => undefined);
      throw new QemuVmError(`VM ${spec.name}: QEMU did not come up: ${(err as Error).message}`, { cause: err });
    }
    const vm = new QemuVm(spec, proc, qmp, log);
    log.info({ qemuPid: proc.pid, incoming, memoryMiB: spec.memoryMiB, socket: spec.socketPath, tap: spec.tap, startMs: Math.round(components.clock.now() - t0) }, incoming ? 'QEMU waiting for the incoming migration' : 'QEMU guest booted; its network is up');
    return vm;
  }

  /** Whether QEMU has exited (or was let go of). */
  get gone(): boolean {
    return this.#gone || this.qmp.closed;
  }

  async pause(): Promise<void> {
    if (this.gone) return;
    await this.qmp.execute('stop');
  }

  /** Run the guest here: a migration under way is cancelled first (an abort); `cont` after a completed one is allowed by QEMU. */
  async resume(): Promise<void> {
    if (this.gone) throw new QemuVmError(`VM ${this.name}: QEMU is gone`);
    const info = parseQueryMigrate(await this.qmp.execute('query-migrate'));
    if (['setup', 'active', 'pre-switchover', 'device', 'cancelling'].includes(info.status)) {
      const ended = this.qmp.waitForEvent('MIGRATION', { timeoutMs: 30_000, predicate: (e) => e.data.status === 'cancelled' || e.data.status === 'failed' || e.data.status === 'completed' });
      ended.catch(() => undefined);
      if (info.status !== 'cancelling') await this.qmp.execute('migrate_cancel');
      const now = parseQueryMigrate(await this.qmp.execute('query-migrate')).status;
      if (now !== 'cancelled' && now !== 'failed' && now !== 'completed') await ended;
    }
    const status = await this.qmp.execute<{ running: boolean }>('query-status');
    if (!status.running) await this.qmp.execute('cont');
  }

  /** The VM runs on another host now: QEMU quits here. */
  async relinquish(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#gone) return;
    this.#gone = true;
    await this.process.stop(this.qmp);
    await this.qmp.close().catch(() => undefined);
    // The guest's console, last lines (its kernel's warnings and errors: loglevel=5): what an operator looks at after the fact.
    this.#log.info({ console: this.process.outputTail(80).slice(-8000) }, 'QEMU stopped');
  }
}
