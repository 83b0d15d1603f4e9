/**
 * `vnet demo --qemu`: the deployment's first VM is a real Linux guest under
 * QEMU (TCG, scripts/guest-build.sh's kernel and initramfs, 128 MiB) on a
 * stream port of its host's daemon (`-netdev stream` on a Unix socket: no
 * root needed), instead of a memory port with a model guest. It boots in the
 * background (its address on eth0 once up) and stays out of the traffic
 * generator; every host can run it, so `vnet ctl migrate VM --to HOST` moves
 * it by QEMU's own migration over the daemons' mutual-TLS channel.
 *
 * Sockets, QMP and the guests' directories live under WORK_DIR/qemu/HOST.
 */
import { join } from 'node:path';
import { realClock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { parseMac } from '../common/mac.ts';
import type { Daemon } from '../dataplane/daemon.ts';
import { StreamPort } from '../dataplane/stream-port.ts';
import type { MigrationAgent } from '../host/migration-agent.ts';
import { QemuHost } from '../host/qemu-host.ts';
import type { QemuVm } from '../host/qemu-vm.ts';

export class DemoQemu {
  /** The VM that is a real guest. */
  readonly vm: string;
  readonly #log: Logger;
  readonly #dir: string;
  readonly #hosts = new Map<string, QemuHost>();
  readonly #booting: Promise<QemuVm | undefined>[] = [];

  constructor(logger: Logger, workDir: string, vm: string) {
    this.#log = logger;
    this.#dir = join(workDir, 'qemu');
    this.vm = vm;
  }

  /** Host `id`'s QEMU settings (made on first use). */
  host(id: string): QemuHost {
    let h = this.#hosts.get(id);
    if (h === undefined) {
      h = new QemuHost({ logger: this.#log, clock: realClock }, { dir: join(this.#dir, id), bootTimeoutMs: 300_000 });
      this.#hosts.set(id, h);
    }
    return h;
  }

  /** The guest's stream port on `daemon`, and its QEMU booting in the background; the agent can move it once it is up. */
  start(daemon: Daemon, agent: MigrationAgent, vm: { name: string; mac: string; ip?: string | undefined }): void {
    const qemu = this.host(daemon.hostId);
    const port = StreamPort.open({ name: vm.name, mac: parseMac(vm.mac), mtu: 1500, path: qemu.socketPath(vm.name), logger: this.#log });
    daemon.addPort(port, vm.ip);
    const ip = vm.ip === undefined ? undefined : vm.ip.includes('/') ? vm.ip : `${vm.ip}/24`;
    this.#booting.push(qemu.boot({ name: vm.name, mac: port.mac, port: vm.name, socketPath: port.path, memoryMiB: 128, ip }).then(
      (booted) => {
        agent.addVm(booted);
        this.#log.warn({ vm: vm.name, host: daemon.hostId }, 'the QEMU guest is up');
        return booted;
      },
      (err: unknown) => {
        this.#log.error({ err, vm: vm.name }, 'the QEMU guest did not boot');
        return undefined;
      },
    ));
  }

  /** Stop every QEMU: the one booted here and any that arrived by migration. */
  async close(agents: Iterable<MigrationAgent>): Promise<void> {
    for (const b of this.#booting) await (await b)?.close();
    for (const agent of agents) for (const vm of agent.vms) if (vm.qemu !== undefined) await vm.close?.();
  }
}
