/**
 * What a host needs to run QEMU VMs: a directory for their sockets (the
 * stream ports' sockets QEMU connects to, QMP, migration), the QEMU binary,
 * and the guest image (scripts/guest-build.sh, built on first use). The
 * daemon makes one from its config (`qemu:`); it boots the VMs of its
 * configured stream ports and the incoming copies of VMs that arrive.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import type { Mac } from '../common/mac.ts';
import { ensureGuestImage, type GuestImage } from '../migration/qemu/qemu-guest-recorder.ts';
import { QemuVm } from './qemu-vm.ts';

export interface QemuHostInit {
  /** Sockets and per-VM directories (made mode 0700 if missing). */
  readonly dir: string;
  readonly binary?: string | undefined;
  /** The guest kernel and initramfs (default: scripts/guest-build.sh's). */
  readonly image?: GuestImage | undefined;
  readonly bootTimeoutMs?: number | undefined;
}

/** A VM as the host boots it. */
export interface QemuVmRequest {
  readonly name: string;
  readonly mac: Mac;
  readonly port: string;
  /** The stream port's socket, or (a packet port's VM) the TAP device QEMU attaches to. */
  readonly socketPath?: string | undefined;
  readonly tap?: string | undefined;
  readonly memoryMiB: number;
  readonly ip?: string | undefined;
}

export class QemuHost {
  readonly dir: string;
  readonly #components: { logger: Logger; clock: Clock };
  readonly #init: QemuHostInit;
  #image: Promise<GuestImage> | undefined;

  constructor(components: { logger: Logger; clock: Clock }, init: QemuHostInit) {
    this.#components = components;
    this.#init = init;
    this.dir = init.dir;
    mkdirSync(init.dir, { recursive: true, mode: 0o700 });
  }

  /** Where the stream port named `port` listens for its QEMU. */
  socketPath(port: string): string {
    return join(this.dir, `${port}.sock`);
  }

  boot(req: QemuVmRequest): Promise<QemuVm> {
    return this.#spawn(req, false);
  }

  incoming(req: QemuVmRequest): Promise<QemuVm> {
    return this.#spawn(req, true);
  }

  async #spawn(req: QemuVmRequest, incoming: boolean): Promise<QemuVm> {
    this.#image ??= this.#init.image !== undefined ? Promise.resolve(this.#init.image) : ensureGuestImage({ logger: this.#components.logger });
    // A failed build is tried again next time.
    const image = await this.#image.catch((err: unknown) => { this.#image = undefined; throw err; });
    const spec = { ...req, dir: join(this.dir, req.port), image, binary: this.#init.binary, bootTimeoutMs: this.#init.bootTimeoutMs };
    return incoming ? QemuVm.incoming(this.#components, spec) : QemuVm.boot(this.#components, spec);
  }
}
