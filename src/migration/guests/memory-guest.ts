/**
 * The in-memory guest: RAM and disk as page stores (real bytes or compact
 * synthetic descriptors), an optional workload that runs in `advance(now)`,
 * a device-state blob, pause/resume and a CPU-share throttle.
 *
 * Used as the source guest of model migrations, and (without a workload) as
 * the destination guest of every migration: `createEmptyGuest` is the
 * standard GuestFactory.
 */
import type { ContentRepresentation, Guest, GuestGeometry, GuestRunState } from '../guest.ts';
import { DEFAULT_DISK_QUEUE_DEPTH } from '../guest.ts';
import { createPageStore } from './page-store.ts';
import { DiskGate } from './disk-gate.ts';
import { StoreDisk, StoreMemory } from './store-views.ts';
import { DiskWorkload, MemoryWorkload, type DiskWorkloadParams, type MemoryWorkloadParams } from './workload.ts';

export const MIN_THROTTLE = 0.01;
export const DEVICE_STATE_BYTES = 16 * 1024;

export interface ModelGuestInit {
  readonly name: string;
  readonly pageCount: number;
  readonly blockCount?: number;
  readonly representation: ContentRepresentation;
  readonly memoryWorkload?: MemoryWorkloadParams;
  readonly diskWorkload?: DiskWorkloadParams;
  readonly seed?: number;
  /** Time (ms) at which the guest starts running; default 0. */
  readonly start?: number;
  /** Start paused (a destination waiting for its state). */
  readonly paused?: boolean;
  /** Outstanding synchronous disk writes the guest allows (default DEFAULT_DISK_QUEUE_DEPTH = 32). */
  readonly diskQueueDepth?: number;
}

export class ModelGuest implements Guest {
  readonly geometry: GuestGeometry;
  readonly memory: StoreMemory;
  readonly disk: StoreDisk | undefined;
  readonly #memWork: MemoryWorkload | undefined;
  readonly #diskWork: DiskWorkload | undefined;
  #state: GuestRunState = 'running';
  #throttle = 1;
  #last: number;
  #device: Uint8Array = new Uint8Array(DEVICE_STATE_BYTES);
  /** Guest time the workload has actually run (ms at full share equivalent not applied). */
  #ranMs = 0;
  /** The write gate, and a disk write it refused (the guest is stalled since `at`). */
  readonly #gate: DiskGate<{ block: number; at: number }>;
  #stallMs = 0;
  #coupling = 0;

  constructor(init: ModelGuestInit) {
    const blocks = init.blockCount ?? 0;
    this.geometry = Object.freeze({ name: init.name, pageCount: init.pageCount, blockCount: blocks, representation: init.representation });
    this.memory = new StoreMemory(createPageStore(init.pageCount, init.representation));
    this.#gate = new DiskGate({
      advance: (now) => this.advance(now),
      running: () => this.#state === 'running',
      last: () => this.#last,
      issue: (w) => { if (this.#diskWork !== undefined && this.disk !== undefined) this.#diskWork.write(this.disk.store, w.block); },
    });
    this.disk = blocks > 0 ? new StoreDisk(createPageStore(blocks, init.representation), Math.max(1, Math.floor(init.diskQueueDepth ?? DEFAULT_DISK_QUEUE_DEPTH)), this.#gate) : undefined;
    const seed = init.seed ?? 1;
    this.#last = init.start ?? 0;
    if (init.paused === true) this.#state = 'paused';
    if (init.memoryWorkload !== undefined) {
      this.#memWork = new MemoryWorkload(init.memoryWorkload, init.pageCount, seed);
      this.#memWork.fill(this.memory.store);
    }
    if (init.diskWorkload !== undefined && this.disk !== undefined) {
      this.#diskWork = new DiskWorkload(init.diskWorkload, blocks, seed);
      this.#diskWork.fill(this.disk.store);
      this.#coupling = Math.min(1, Math.max(0, init.diskWorkload.ioCoupling ?? 0));
    }
    this.#refreshDevice();
  }

  get runState(): GuestRunState { return this.#state; }
  get throttle(): number { return this.#throttle; }
  /** Guest-time milliseconds the workload has run (wall time while running). */
  get ranMs(): number { return this.#ranMs; }
  /** The time (ms, the clock `advance` is given) up to which the workload has run. */
  get advancedTo(): number { return this.#last; }
  get memoryWrites(): number { return this.#memWork?.writes ?? 0; }
  /** Disk writes the workload has issued (written locally). */
  get diskWrites(): number { return this.#diskWork?.writes ?? 0; }
  /** Running time (ms) the guest spent with a disk write waiting for the gate. */
  get diskStallMs(): number { return this.#stallMs; }
  /** Whether a disk write is waiting for the gate now. */
  get diskStalled(): boolean { return this.#gate.waiting !== undefined; }

  /**
   * Runs the workload from the last call up to `now`. Disk first: with a
   * gate, each due write asks it at its own time; the first refusal stalls
   * the disk from then on (no new disk writes) and slows memory progress by
   * the I/O coupling for the stalled part of the interval.
   */
  advance(now: number): void {
    const dt = now - this.#last;
    if (dt <= 0) return;
    const from = this.#last;
    this.#last = now;
    if (this.#state === 'paused') return;
    this.#ranMs += dt;
    let stalled = 0;
    const work = this.#diskWork;
    const disk = this.disk;
    if (work !== undefined && disk !== undefined) {
      const gate = this.#gate;
      if (!gate.gated) {
        work.run(disk.store, dt, this.#throttle);
      } else if (gate.retry(from)) {
        const refused = work.runGated(from, dt, this.#throttle, (b, at) => {
          if (!gate.admit(b, at)) return false;
          work.write(disk.store, b);
          return true;
        });
        if (refused !== undefined) {
          gate.hold(refused);
          stalled = now - refused.at;
        }
      } else {
        stalled = dt;
      }
    }
    this.#stallMs += stalled;
    if (this.#memWork !== undefined) this.#memWork.run(this.memory.store, dt - this.#coupling * stalled, this.#throttle);
  }

  pause(now: number): void {
    this.advance(now);
    this.#state = 'paused';
    this.#refreshDevice();
  }

  resume(now: number): void {
    this.#last = Math.max(this.#last, now);
    this.#state = 'running';
    // A write held back while paused goes now if it can.
    this.#gate.retry(this.#last);
  }

  setThrottle(share: number): void {
    this.#throttle = Math.min(1, Math.max(MIN_THROTTLE, Number.isFinite(share) ? share : 1));
  }

  readDeviceState(): Uint8Array { return this.#device.slice(); }
  writeDeviceState(state: Uint8Array): void { this.#device = state.slice(); }

  #refreshDevice(): void {
    if (this.#memWork === undefined) return;
    // A deterministic blob that changes as the guest runs: registers, timers.
    const v = new DataView(this.#device.buffer);
    v.setFloat64(0, this.#ranMs);
    v.setUint32(8, this.#memWork.writes >>> 0);
  }
}

/** The standard destination factory: an empty, paused-until-resumed guest of the announced shape. */
export function createEmptyGuest(geometry: GuestGeometry): Guest {
  return new ModelGuest({ name: geometry.name, pageCount: geometry.pageCount, blockCount: geometry.blockCount, representation: geometry.representation, paused: true });
}
