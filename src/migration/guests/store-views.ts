/**
 * GuestMemory and GuestDisk over page stores: what the model guest and the
 * trace guest both hand the engine. `checked` bounds-checks every index (a
 * guest whose indices come from the wire, like the trace guest, wants it);
 * the disk's write gate belongs to the guest that owns the workload.
 */
import type { ContentRepresentation, DiskWriteGate, GuestDisk, GuestMemory, PageContent } from '../guest.ts';
import type { PageStore } from './page-store.ts';

export interface StoreViewOptions {
  /** Throw a RangeError on an index outside the store (default false). */
  readonly checked?: boolean;
}

function checkIndex(i: number, count: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= count) throw new RangeError(`page ${i} is outside 0…${count - 1}`);
  return i;
}

export class StoreMemory<S extends PageStore = PageStore> implements GuestMemory {
  readonly store: S;
  readonly #checked: boolean;
  constructor(store: S, opts: StoreViewOptions = {}) {
    this.store = store;
    this.#checked = opts.checked ?? false;
  }
  get pageCount(): number { return this.store.count; }
  get representation(): ContentRepresentation { return this.store.representation; }
  readPage(index: number): PageContent { return this.store.read(this.#checked ? checkIndex(index, this.store.count) : index); }
  writePage(index: number, content: PageContent): void { this.store.write(this.#checked ? checkIndex(index, this.store.count) : index, content); }
  setDirtyLogging(on: boolean): void { this.store.setLogging(on); }
  takeDirty(): Uint32Array { return this.store.take(); }
  isDirty(index: number): boolean { return this.store.isDirty(index); }
  dirtyCount(): number { return this.store.dirtyCount(); }
  generation(index: number): number { return this.store.generation(index); }
}

/** The owner of a disk's write gate: the guest (see disk-gate.ts). */
export interface WriteGateOwner {
  set(gate: DiskWriteGate | undefined, now: number): void;
  completed(now: number): void;
}

export class StoreDisk<S extends PageStore = PageStore> implements GuestDisk {
  readonly store: S;
  readonly queueDepth: number;
  readonly #gate: WriteGateOwner;
  readonly #checked: boolean;
  constructor(store: S, queueDepth: number, gate: WriteGateOwner, opts: StoreViewOptions = {}) {
    this.store = store;
    this.queueDepth = queueDepth;
    this.#gate = gate;
    this.#checked = opts.checked ?? false;
  }
  get blockCount(): number { return this.store.count; }
  get representation(): ContentRepresentation { return this.store.representation; }
  readBlock(index: number): PageContent { return this.store.read(this.#checked ? checkIndex(index, this.store.count) : index); }
  writeBlock(index: number, content: PageContent): void { this.store.write(this.#checked ? checkIndex(index, this.store.count) : index, content); }
  setWriteLogging(on: boolean): void { this.store.setLogging(on); }
  takeWrites(): Uint32Array { return this.store.take(); }
  setWriteGate(gate: DiskWriteGate | undefined, now: number): void { this.#gate.set(gate, now); }
  writesCompleted(now: number): void { this.#gate.completed(now); }
  generation(index: number): number { return this.store.generation(index); }
}
