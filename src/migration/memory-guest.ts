/**
 * The in-memory guest: RAM and disk as page stores (real bytes or compact
 * synthetic descriptors), an optional workload that runs in `advance(now)`,
 * a device-state blob, pause/resume and a CPU-share throttle.
 *
 * Used as the source guest of model migrations, and (without a workload) as
 * the destination guest of every migration: `createEmptyGuest` is the
 * standard GuestFactory.
 */
import type { ContentRepresentation, Guest, GuestDisk, GuestGeometry, GuestMemory, GuestRunState, PageContent } from './guest.ts';
import { createPageStore, type PageStore } from './page-store.ts';
import { DiskWorkload, MemoryWorkload, type DiskWorkloadParams, type MemoryWorkloadParams } from './workload.ts';

export const MIN_THROTTLE = 0.01;
export const DEVICE_STATE_BYTES = 16 * 1024;

class StoreMemory implements GuestMemory {
  readonly store: PageStore;
  constructor(store: PageStore) { this.store = store; }
  get pageCount(): number { return this.store.count; }
  get representation(): ContentRepresentation { return this.store.representation; }
  readPage(index: number): PageContent { return this.store.read(index); }
  writePage(index: number, content: PageContent): void { this.store.write(index, content); }
  setDirtyLogging(on: boolean): void { this.store.setLogging(on); }
  takeDirty(): Uint32Array { return this.store.take(); }
  isDirty(index: number): boolean { return this.store.isDirty(index); }
  dirtyCount(): number { return this.store.dirtyCount(); }
}

class StoreDisk implements GuestDisk {
  readonly store: PageStore;
  constructor(store: PageStore) { this.store = store; }
  get blockCount(): number { return this.store.count; }
  get representation(): ContentRepresentation { return this.store.representation; }
  readBlock(index: number): PageContent { return this.store.read(index); }
  writeBlock(index: number, content: PageContent): void { this.store.write(index, content); }
  setWriteLogging(on: boolean): void { this.store.setLogging(on); }
  takeWrites(): Uint32Array { return this.store.take(); }
}

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

  constructor(init: ModelGuestInit) {
    const blocks = init.blockCount ?? 0;
    this.geometry = Object.freeze({ name: init.name, pageCount: init.pageCount, blockCount: blocks, representation: init.representation });
    this.memory = new StoreMemory(createPageStore(init.pageCount, init.representation));
    this.disk = blocks > 0 ? new StoreDisk(createPageStore(blocks, init.representation)) : undefined;
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
    }
    this.#refreshDevice();
  }

  get runState(): GuestRunState { return this.#state; }
  get throttle(): number { return this.#throttle; }
  /** Guest-time milliseconds the workload has run (wall time while running). */
  get ranMs(): number { return this.#ranMs; }
  get memoryWrites(): number { return this.#memWork?.writes ?? 0; }

  advance(now: number): void {
    const dt = now - this.#last;
    if (dt <= 0) return;
    this.#last = now;
    if (this.#state === 'paused') return;
    this.#ranMs += dt;
    if (this.#memWork !== undefined) this.#memWork.run(this.memory.store, dt, this.#throttle);
    if (this.#diskWork !== undefined && this.disk !== undefined) this.#diskWork.run(this.disk.store, dt, this.#throttle);
  }

  pause(now: number): void {
    this.advance(now);
    this.#state = 'paused';
    this.#refreshDevice();
  }

  resume(now: number): void {
    this.#last = Math.max(this.#last, now);
    this.#state = 'running';
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
