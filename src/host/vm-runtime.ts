/**
 * A VM as the host runs it: its port on the daemon, its guest (memory, disk,
 * device state as the migration engine sees them) and the controls the
 * migration agent needs around a cutover. One runtime per local VM, keyed by
 * its port name.
 *
 * The first implementation is the model-guest VM: a memory port whose VM is
 * a model guest (src/migration/guests) running a workload profile, small by
 * default, with an optional traffic source (frames the VM sends) that pauses
 * with it. The second is the QEMU VM (qemu-vm.ts): a real guest that QEMU's
 * own migration moves, so it has no engine `guest` but its `qemu`.
 */
import type { Clock } from '../common/clock.ts';
import type { Mac } from '../common/mac.ts';
import type { Guest } from '../migration/guest.ts';
import type { DiskImageSource } from '../migration/drivers/disk-image-exchange.ts';
import type { ImageDisk } from './image-disk.ts';
import type { QemuVm } from './qemu-vm.ts';
import { ModelGuest } from '../migration/guests/memory-guest.ts';
import { scaledProfile, type ProfileName } from '../migration/guests/workload-profiles.ts';

interface VmRuntimeBase {
  /** The VM's name (the port's, unless the deployment names it). */
  readonly name: string;
  readonly mac: Mac;
  /** Its port on the daemon. */
  readonly port: string;
  /** Stop the VM: its guest and whatever it runs beside (traffic). Idempotent. */
  pause(): Promise<void>;
  /** Run it again. Idempotent. */
  resume(): Promise<void>;
  /** The VM left this host (a committed migration): let go of it without running it again. */
  relinquish?(): Promise<void>;
  /** The host stops: give back whatever the runtime holds (a paused VM runs again). */
  close?(): Promise<void>;
  /**
   * Before a migration of this VM begins: bring whatever the VM ran lazily
   * up to now in small steps, yielding to the event loop between them, so
   * the engine's first step does not run it all at once while the daemon's
   * links and channels (the same process) wait.
   */
  catchUp?(signal: AbortSignal): Promise<void>;
}

/** A VM whose memory and disk the migration engine moves (its `guest`). */
export interface EngineVmRuntime extends VmRuntimeBase {
  readonly guest: Guest;
  readonly qemu?: undefined;
  /** Its disk is a base image plus its own writes: a migration sends only the chunks the destination's store lacks (docs/images.md). */
  readonly diskImage?: DiskImageSource | undefined;
  /** Its disk made from an image version, copy-on-write (image-disk.ts): what a migration carries as its description. */
  readonly imageDisk?: ImageDisk | undefined;
}

/** A VM that QEMU's own migration moves, driven over QMP. */
export interface QemuVmRuntime extends VmRuntimeBase {
  readonly qemu: QemuVm;
  readonly guest?: undefined;
}

export type VmRuntime = EngineVmRuntime | QemuVmRuntime;

/** What a VM sends on its own (the unprivileged stand-in for its applications). */
export interface TrafficSource {
  start(): void;
  stop(): void;
}

export interface ModelGuestSpec {
  readonly profile: ProfileName;
  readonly memoryMiB: number;
  readonly diskMiB: number;
  readonly seed?: number | undefined;
  /** A disk of exactly this many blocks whose content is the caller's (an image disk): no disk workload writes to it; `diskMiB` is ignored. */
  readonly diskBlocks?: number | undefined;
}

export const DEFAULT_MODEL_GUEST: ModelGuestSpec = Object.freeze({ profile: 'idle', memoryMiB: 16, diskMiB: 4 });

const PAGES_PER_MIB = 256;

/**
 * A model guest's workload runs when someone looks (the engine's `advance`),
 * so the first look after a long quiet runs all of it: about 15 ms of CPU
 * per second of guest time at the demo's 32 MiB NAS MG. `catchUp` runs it in
 * slices of this much guest time, and yields to the event loop once a turn
 * has taken CATCH_UP_TURN_MS (so it costs a few turns, not hundreds).
 */
export const CATCH_UP_SLICE_MS = 250;
export const CATCH_UP_TURN_MS = 10;

/** A model guest of `spec`'s size running its profile's workload (rates scaled to its size), starting at `now`. */
export function createModelGuest(name: string, spec: ModelGuestSpec, now: number): ModelGuest {
  const pages = Math.max(1, Math.round(spec.memoryMiB * PAGES_PER_MIB));
  const blocks = spec.diskBlocks ?? Math.max(0, Math.round(spec.diskMiB * PAGES_PER_MIB));
  const { profile } = scaledProfile(spec.profile, pages);
  return new ModelGuest({
    name,
    pageCount: pages,
    blockCount: blocks,
    representation: 'bytes',
    memoryWorkload: profile.memory,
    ...(blocks > 0 && spec.diskBlocks === undefined ? { diskWorkload: profile.disk } : {}),
    seed: spec.seed ?? 1,
    start: now,
  });
}

export interface ModelGuestVmInit {
  readonly name: string;
  readonly mac: Mac;
  readonly port: string;
  readonly guest: Guest;
  readonly traffic?: TrafficSource | undefined;
  readonly diskImage?: DiskImageSource | undefined;
  /** Its disk from an image (overrides `diskImage`), and what to close with it (its replica connections). */
  readonly image?: { readonly disk: ImageDisk; close(): void } | undefined;
}

export class ModelGuestVm implements EngineVmRuntime {
  readonly name: string;
  readonly mac: Mac;
  readonly port: string;
  readonly guest: Guest;
  readonly diskImage: DiskImageSource | undefined;
  readonly imageDisk: ImageDisk | undefined;
  readonly #clock: Clock;
  readonly #closeImage: (() => void) | undefined;
  readonly #traffic: TrafficSource | undefined;
  #trafficOn = false;

  constructor(components: { clock: Clock }, init: ModelGuestVmInit) {
    this.#clock = components.clock;
    this.name = init.name;
    this.mac = init.mac;
    this.port = init.port;
    this.guest = init.guest;
    this.imageDisk = init.image?.disk;
    this.diskImage = init.image?.disk.diskImage ?? init.diskImage;
    this.#closeImage = init.image === undefined ? undefined : () => init.image!.close();
    this.#traffic = init.traffic;
  }

  /**
   * Run the guest's workload up to the time of the call in CATCH_UP_SLICE_MS
   * slices of guest time, giving the event loop a turn whenever `turnMs` of
   * wall time has gone into this turn's slices (bounded: it stops at the time
   * it was called, or when `signal` aborts): the workload's writes are those
   * of one `advance` to that time.
   */
  async catchUp(signal: AbortSignal, turnMs = CATCH_UP_TURN_MS): Promise<void> {
    const guest = this.guest;
    if (!(guest instanceof ModelGuest)) return;
    const target = this.#clock.now();
    while (!signal.aborted && guest.advancedTo < target) {
      const turn = performance.now();
      do guest.advance(Math.min(target, guest.advancedTo + CATCH_UP_SLICE_MS));
      while (guest.advancedTo < target && performance.now() - turn < turnMs);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Start the traffic source (if any) of a running guest. */
  start(): void {
    if (this.guest.runState === 'running' && !this.#trafficOn && this.#traffic !== undefined) {
      this.#traffic.start();
      this.#trafficOn = true;
    }
  }

  async pause(): Promise<void> {
    if (this.#trafficOn) {
      this.#traffic?.stop();
      this.#trafficOn = false;
    }
    if (this.guest.runState === 'running') this.guest.pause(this.#clock.now());
  }

  async resume(): Promise<void> {
    if (this.guest.runState === 'paused') this.guest.resume(this.#clock.now());
    this.start();
  }

  async relinquish(): Promise<void> {
    this.#closeImage?.();
  }

  async close(): Promise<void> {
    this.#closeImage?.();
  }
}
