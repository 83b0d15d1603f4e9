/**
 * A namespace VM: the stand-in for a virtual machine in the privileged tests
 * and `vnet demo --netns`. Its network side is a network namespace holding a
 * TAP device (MAC, IP, routes and TCP sockets all live there); its "CPU" is
 * the processes running in that namespace. Migrating it between two daemons
 * on one kernel leaves the namespace where it is and moves the TAP attachment
 * (src/dataplane/tap-port.ts, `attach` and `handOff`); this runtime gives the
 * migration its pause and resume.
 *
 *   pause    find the namespace's processes (namespace-vm-processes.ts) →
 *            adopt them into the freezer → freeze → look again, and adopt
 *            (frozen at once) any process that got in meanwhile, until a look
 *            finds none new → while paused, look again every `rescanMs`
 *   resume   stop looking → thaw
 *
 * What can get past a pause: a child forked by a frozen process cannot (a
 * frozen process forks nothing; with the cgroup freezer, a child forked at
 * the very moment of the freeze starts in the frozen cgroup). A process that
 * ENTERS the namespace from outside during the pause (`ip netns exec`, setns)
 * runs until the next look, at most `rescanMs`, then is frozen. The kernel's
 * own work in the namespace (ARP, TCP timers and retransmissions) is not a
 * process and goes on, as a paused VM's NIC would not send it: its frames
 * are the ones a hand-over must not lose.
 *
 * Freezer (namespace-vm-freezer.ts): the cgroup v2 freezer where a cgroup2
 * hierarchy is mounted and writable (it is here: hybrid, /sys/fs/cgroup/unified),
 * else SIGSTOP/SIGCONT; `freezer` chooses explicitly.
 */
import { join } from 'node:path';
import type { Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { formatMac, type Mac } from '../common/mac.ts';
import type { Guest } from '../migration/guest.ts';
import { VmFreezeError, VmNamespaceNotFoundError, VmNamespaceRefusedError } from './errors.ts';
import { cgroup2Mount, CgroupFreezer, SignalFreezer, type Freezer, type FreezerKind } from './namespace-vm-freezer.ts';
import { namespaceId, pidsInNamespace, sameNamespace, type NamespaceId } from './namespace-vm-processes.ts';

export interface NamespaceVmInit {
  /** The VM's name (for logs). */
  name: string;
  /** The MAC of its NIC (the TAP device in the namespace). */
  mac: Mac;
  /** Its network namespace: a name under /var/run/netns. */
  netns: string;
  /** Its port on the daemon (the TAP device's name); default `name`. */
  port?: string;
  /** The model guest standing for its memory and disk: paused after the processes, resumed before them (needs `clock`). */
  guest?: Guest;
  clock?: Clock;
  logger: Logger;
  /** 'auto' (default): the cgroup v2 freezer if usable, else signals. */
  freezer?: FreezerKind | 'auto';
  /** The cgroup made for the VM with the cgroup freezer; default <cgroup2 mount>/vnet-vms/<netns>. */
  cgroupDir?: string;
  /** While paused, how often to look for processes that entered the namespace (default 20 ms). */
  rescanMs?: number;
  /** Bound on the processes' stopping (default 10 s): a process in uninterruptible sleep may hold a freeze up. */
  freezeTimeoutMs?: number;
}

const NETNS_DIR = '/var/run/netns';

export class NamespaceVm {
  readonly name: string;
  readonly mac: Mac;
  readonly netns: string;
  readonly port: string;
  readonly guest: Guest | undefined;

  readonly #clock: Clock | undefined;
  readonly #ns: NamespaceId;
  readonly #freezer: Freezer;
  readonly #log: Logger;
  readonly #rescanMs: number;
  #paused = false;
  #rescan: NodeJS.Timeout | undefined;
  /** pause, resume and close run one at a time, in call order. */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(init: NamespaceVmInit, ns: NamespaceId, freezer: Freezer) {
    this.name = init.name;
    this.mac = init.mac;
    this.netns = init.netns;
    this.port = init.port ?? init.name;
    this.guest = init.guest;
    this.#clock = init.clock;
    this.#ns = ns;
    this.#freezer = freezer;
    this.#rescanMs = init.rescanMs ?? 20;
    this.#log = componentLogger(init.logger, 'namespace-vm', { vm: init.name, netns: init.netns });
  }

  /**
   * The VM in namespace `netns` (which must exist). Throws
   * VmNamespaceNotFoundError, VmNamespaceRefusedError (this process's own
   * namespace), VmFreezeError / VmFreezePermissionError (no usable freezer).
   */
  static open(init: NamespaceVmInit): NamespaceVm {
    if (init.guest !== undefined && init.clock === undefined) throw new TypeError('NamespaceVm: a guest needs a clock');
    if (init.netns === '' || init.netns.includes('/') || init.netns === '.' || init.netns === '..') throw new VmNamespaceNotFoundError(init.netns);
    const ns = namespaceId(join(NETNS_DIR, init.netns));
    if (ns === undefined) throw new VmNamespaceNotFoundError(init.netns);
    const own = namespaceId('/proc/self/ns/net');
    if (own !== undefined && sameNamespace(own, ns)) throw new VmNamespaceRefusedError(init.netns, 'it is this process\'s own network namespace');
    const timeoutMs = init.freezeTimeoutMs ?? 10_000;
    const freezer = NamespaceVm.#makeFreezer(init, timeoutMs);
    const vm = new NamespaceVm(init, ns, freezer);
    vm.#log.info({ mac: formatMac(init.mac), freezer: freezer.kind }, 'namespace VM opened');
    return vm;
  }

  static #makeFreezer(init: NamespaceVmInit, timeoutMs: number): Freezer {
    const want = init.freezer ?? 'auto';
    if (want === 'signal') return new SignalFreezer(timeoutMs);
    const mount = cgroup2Mount();
    if (mount === undefined) {
      if (want === 'cgroup') throw new VmFreezeError('no cgroup v2 hierarchy is mounted');
      return new SignalFreezer(timeoutMs);
    }
    try {
      return init.cgroupDir !== undefined
        ? new CgroupFreezer(mount, init.cgroupDir, timeoutMs)
        : new CgroupFreezer(mount, join(mount, 'vnet-vms', init.netns), timeoutMs, { removeEmptyParent: true });
    } catch (err) {
      if (want === 'cgroup') throw err;
      return new SignalFreezer(timeoutMs);
    }
  }

  /** How this VM's processes are frozen. */
  get freezer(): FreezerKind {
    return this.#freezer.kind;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** The pids of the processes in the VM's namespace now. */
  pids(): number[] {
    return pidsInNamespace(this.#ns);
  }

  /** Freezes every process in the namespace; resolves once they are all stopped. Idempotent. Throws VmFreezeError / VmFreezePermissionError (the VM then runs). */
  pause(): Promise<void> {
    return this.#serial(async () => {
      if (this.#paused) return;
      if (this.#closed) throw new VmFreezeError(`namespace VM ${this.name} is closed`);
      try {
        this.#freezer.adopt(this.pids());
        await this.#freezer.freeze();
        this.#paused = true;
        // Whoever got in between the look and the freeze: adopted now, frozen at once.
        for (let round = 0; round < 100 && (await this.#lookAgain()) > 0; round++);
      } catch (err) {
        this.#paused = false;
        await this.#freezer.thaw().catch(() => undefined);
        throw err;
      }
      this.#rescan = setInterval(() => {
        this.#lookAgain().catch((err: unknown) => this.#log.warn({ err }, 'cannot freeze a process that entered the paused VM\'s namespace'));
      }, this.#rescanMs);
      this.#rescan.unref();
      if (this.guest?.runState === 'running') this.guest.pause(this.#clock!.now());
      this.#log.info({ pids: this.pids().length }, 'namespace VM paused');
    });
  }

  /** Lets the VM's processes run again. Idempotent. */
  resume(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#paused) return;
      clearInterval(this.#rescan);
      this.#rescan = undefined;
      if (this.guest?.runState === 'paused') this.guest.resume(this.#clock!.now());
      await this.#freezer.thaw();
      this.#paused = false;
      this.#log.info('namespace VM resumed');
    });
  }

  /**
   * The VM arrived from another daemon on this kernel, which froze it and let
   * go of it (`relinquish`): take its processes as they are, frozen, so that
   * `resume` thaws them. Idempotent.
   */
  adoptPaused(): Promise<void> {
    return this.#serial(async () => {
      if (this.#paused) return;
      if (this.#closed) throw new VmFreezeError(`namespace VM ${this.name} is closed`);
      this.#freezer.adopt(this.pids());
      this.#paused = true;
      if (this.guest?.runState === 'running') this.guest.pause(this.#clock!.now());
      this.#log.info({ pids: this.pids().length }, 'namespace VM taken over paused');
    });
  }

  /**
   * The VM left for another daemon on this kernel: stop looking after it,
   * leaving its processes frozen (the destination thaws them) and its cgroup
   * in place. The runtime is closed afterwards. Never throws.
   */
  relinquish(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      this.#closed = true;
      clearInterval(this.#rescan);
      this.#rescan = undefined;
      this.#log.info({ paused: this.#paused }, 'namespace VM relinquished');
    });
  }

  /** Resumes if paused and gives the processes back (their cgroups); the namespace and its processes stay. Never throws. */
  close(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      this.#closed = true;
      clearInterval(this.#rescan);
      this.#rescan = undefined;
      this.#paused = false;
      await this.#freezer.dispose();
    });
  }

  /** Adopts processes new in the namespace (frozen at once while paused); how many there were. */
  async #lookAgain(): Promise<number> {
    if (!this.#paused) return 0;
    const before = this.pids();
    this.#freezer.adopt(before);
    await this.#freezer.settle();
    const after = this.pids();
    return after.filter((p) => !before.includes(p)).length;
  }

  #serial(op: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(op);
    this.#queue = next.catch(() => undefined);
    return next;
  }
}
