/**
 * The QEMU guests of a daemon's configured ports (`ports[].qemu`): one boot
 * per port, in the background, the same at start and at a configuration
 * reload (daemon-reload.ts, `addConfiguredPort`), and stopped when the port
 * goes (a reload that removes or replaces it, the daemon's close).
 *
 *   boot   QEMU started on the port's stream socket or TAP device; once the
 *          guest's network is up the VM is registered with the migration
 *          agent (it can be migrated from then on). A boot that fails is
 *          logged; the port stays.
 *   stop   a boot under way is waited for (bounded by qemu.bootTimeoutMs),
 *          then QEMU quits (QMP quit, then a kill: qemu-process.ts) and the
 *          migration agent forgets the VM.
 */
import { componentLogger, type Logger } from '../common/logger.ts';
import { PacketPort } from '../dataplane/packet-port.ts';
import type { StreamPort } from '../dataplane/stream-port.ts';
import type { MigrationAgent } from './migration-agent.ts';
import type { QemuHost } from './qemu-host.ts';
import type { QemuVm } from './qemu-vm.ts';

export interface QemuGuestsComponents {
  readonly logger: Logger;
  /** The host's QEMU settings (config `qemu:`). */
  readonly host: QemuHost;
  readonly migrations: MigrationAgent;
}

export class QemuGuests {
  readonly host: QemuHost;
  readonly #log: Logger;
  readonly #migrations: MigrationAgent;
  /** Port name → its guest's boot (undefined once it failed). */
  readonly #boots = new Map<string, Promise<QemuVm | undefined>>();

  constructor(components: QemuGuestsComponents) {
    this.host = components.host;
    this.#log = componentLogger(components.logger, 'qemu-guests');
    this.#migrations = components.migrations;
  }

  /** Ports whose guest was booted here (or is booting) and not stopped since. */
  get ports(): readonly string[] {
    return [...this.#boots.keys()];
  }

  /** Boot the guest of a configured port in the background; resolves to it once its network is up, or undefined when the boot failed. */
  boot(port: StreamPort | PacketPort, memoryMiB: number, ip: string | undefined): Promise<QemuVm | undefined> {
    const nic = port instanceof PacketPort ? { tap: port.ifname } : { socketPath: port.path };
    const booting = this.host.boot({ name: port.name, mac: port.mac, port: port.name, ...nic, memoryMiB, ip }).then(
      (vm) => {
        // Stopped while it booted: not registered, quit at once (stop() waits for this).
        if (this.#boots.get(port.name) !== booting) return vm;
        this.#migrations.addVm(vm);
        return vm;
      },
      (err: unknown) => {
        this.#log.error({ err, port: port.name }, 'the QEMU VM of this port did not boot');
        return undefined;
      },
    );
    this.#boots.set(port.name, booting);
    return booting;
  }

  /** Stop the QEMU of the configured port `name` (waiting for a boot under way); whether one was running. */
  async stop(name: string): Promise<boolean> {
    const booting = this.#boots.get(name);
    if (booting === undefined) return false;
    this.#boots.delete(name);
    const vm = await booting;
    if (vm === undefined) return false;
    if (this.#migrations.vm(name) === vm) this.#migrations.removeVm(name);
    // A VM that migrated away already quit here (relinquish): nothing runs.
    const wasRunning = !vm.gone;
    await vm.close();
    return wasRunning;
  }

  /** Stop every guest (the daemon closes). */
  async close(): Promise<void> {
    for (const name of this.ports) await this.stop(name);
  }
}
