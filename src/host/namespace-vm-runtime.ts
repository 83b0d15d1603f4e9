/**
 * A namespace VM as the migration agent runs it (`vnet daemon`, a TAP port
 * with `netns:`): the namespace's processes (namespace-vm.ts) plus the model
 * guest that stands for its memory and disk (vm-runtime.ts), one VmRuntime.
 *
 *   pause       freeze the namespace's processes, then pause the guest
 *   resume      resume the guest, then thaw the processes
 *   relinquish  (source, after commit) stop looking after the VM, leaving
 *               it frozen: the destination daemon on this kernel thaws it
 *   arrive      (destination, at commit) take the frozen VM over, so that
 *               `resume` thaws it
 *
 * And the destination's port for an arriving VM: its TAP device is still in
 * its namespace, attached by the source daemon; `attachVmTap` finds the
 * namespace holding a device of the port's name (every name under
 * /var/run/netns is tried, as `ip netns` knows them) and attaches one more
 * queue to it, steered so that nothing the VM sends reaches this queue
 * before the source hands the attachment over (tap-port.ts).
 */
import { readdirSync } from 'node:fs';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import type { Mac } from '../common/mac.ts';
import { NetnsNotFoundError, TapDeviceNotFoundError } from '../dataplane/errors.ts';
import { TapPort } from '../dataplane/tap-port.ts';
import type { Guest } from '../migration/guest.ts';
import { NamespaceVm } from './namespace-vm.ts';
import type { EngineVmRuntime } from './vm-runtime.ts';

const NETNS_DIR = '/var/run/netns';

export interface NamespaceGuestVmInit {
  readonly name: string;
  readonly mac: Mac;
  /** Its port on the daemon: the TAP device's name. */
  readonly port: string;
  readonly netns: string;
  readonly guest: Guest;
}

export class NamespaceGuestVm implements EngineVmRuntime {
  readonly name: string;
  readonly mac: Mac;
  readonly port: string;
  readonly netns: string;
  readonly guest: Guest;
  readonly #vm: NamespaceVm;

  /** Throws VmNamespaceNotFoundError, VmNamespaceRefusedError, VmFreezeError (namespace-vm.ts). */
  constructor(components: { clock: Clock; logger: Logger }, init: NamespaceGuestVmInit) {
    this.name = init.name;
    this.mac = init.mac;
    this.port = init.port;
    this.netns = init.netns;
    this.guest = init.guest;
    this.#vm = NamespaceVm.open({ name: init.name, mac: init.mac, netns: init.netns, port: init.port, guest: init.guest, clock: components.clock, logger: components.logger });
  }

  /** The VM that another daemon on this kernel froze and let go of: resume thaws it. */
  static async arrive(components: { clock: Clock; logger: Logger }, init: NamespaceGuestVmInit): Promise<NamespaceGuestVm> {
    const vm = new NamespaceGuestVm(components, init);
    await vm.#vm.adoptPaused();
    return vm;
  }

  get paused(): boolean {
    return this.#vm.paused;
  }

  pause(): Promise<void> {
    return this.#vm.pause();
  }

  resume(): Promise<void> {
    return this.#vm.resume();
  }

  relinquish(): Promise<void> {
    return this.#vm.relinquish();
  }

  close(): Promise<void> {
    return this.#vm.close();
  }
}

/** The namespaces `ip netns` knows (names under /var/run/netns). */
export function knownNamespaces(): string[] {
  try {
    return readdirSync(NETNS_DIR).sort();
  } catch {
    return [];
  }
}

/**
 * Attaches to TAP device `name` in whichever known namespace holds it, steered
 * to the first queue (the source's) until the hand-over; undefined when no
 * namespace holds such a device. Device names are the deployment's and unique
 * on a host; the first namespace that holds one is taken.
 */
export function attachVmTap(opts: { name: string; mac: Mac; mtu: number; logger: Logger }): { port: TapPort; netns: string } | undefined {
  for (const netns of knownNamespaces()) {
    let port: TapPort;
    try {
      port = TapPort.attach({ name: opts.name, mac: opts.mac, mtu: opts.mtu, netns, logger: opts.logger });
    } catch (err) {
      if (err instanceof TapDeviceNotFoundError || err instanceof NetnsNotFoundError) continue;
      throw err;
    }
    try {
      port.steerTo(0);
    } catch (err) {
      void port.close();
      throw err;
    }
    return { port, netns };
  }
  return undefined;
}
