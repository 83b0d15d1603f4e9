/**
 * Test guests for synchronous disk replication (a helper, not a test file):
 *   OneWriteGuest   a ModelGuest whose only disk write is one scripted write
 *                   at a given time, through the gate, recording when it was
 *                   issued and when the engine reported it complete
 *   sameAsReplay    the source is intact: its memory and disk equal a fresh
 *                   replay of its workloads for exactly the writes it made
 *                   (nothing lost, nothing changed by the engine)
 */
import assert from 'node:assert/strict';
import type { DiskWriteGate, Guest, GuestDisk, GuestGeometry, GuestRunState, PageContent, ContentRepresentation } from '../../../src/migration/guest.ts';
import { ModelGuest, type ModelGuestInit } from '../../../src/migration/guests/memory-guest.ts';
import { createPageStore } from '../../../src/migration/guests/page-store.ts';
import { DiskWorkload, MemoryWorkload } from '../../../src/migration/guests/workload.ts';

export class OneWriteGuest implements Guest {
  readonly inner: ModelGuest;
  readonly disk: GuestDisk;
  readonly #at: number;
  readonly #block: number;
  readonly #content: PageContent;
  #gate: DiskWriteGate | undefined;
  issuedAt: number | undefined;
  /** Times the engine called writesCompleted. */
  readonly completions: number[] = [];

  constructor(init: ModelGuestInit, at: number, block: number, content: PageContent) {
    this.inner = new ModelGuest(init);
    this.#at = at;
    this.#block = block;
    this.#content = content;
    const d = this.inner.disk;
    if (d === undefined) throw new Error('OneWriteGuest needs a disk');
    const self = this;
    this.disk = {
      get blockCount(): number { return d.blockCount; },
      get representation(): ContentRepresentation { return d.representation; },
      queueDepth: 32,
      readBlock: (i) => d.readBlock(i),
      writeBlock: (i, c) => d.writeBlock(i, c),
      setWriteLogging: (on) => d.setWriteLogging(on),
      takeWrites: () => d.takeWrites(),
      setWriteGate(gate, now): void { self.advance(now); self.#gate = gate; },
      writesCompleted(now): void { self.advance(now); self.completions.push(now); },
    };
  }

  get geometry(): GuestGeometry { return this.inner.geometry; }
  get memory(): Guest['memory'] { return this.inner.memory; }
  get runState(): GuestRunState { return this.inner.runState; }
  get throttle(): number { return this.inner.throttle; }

  advance(now: number): void {
    this.inner.advance(now);
    if (this.issuedAt === undefined && now >= this.#at && this.inner.runState === 'running' && this.#gate !== undefined) {
      if (this.#gate.admit(this.#block, now)) {
        this.issuedAt = now;
        this.inner.disk?.writeBlock(this.#block, this.#content);
      }
    }
  }
  pause(now: number): void { this.advance(now); this.inner.pause(now); }
  resume(now: number): void { this.inner.resume(now); }
  setThrottle(share: number): void { this.inner.setThrottle(share); }
  readDeviceState(): Uint8Array { return this.inner.readDeviceState(); }
  writeDeviceState(state: Uint8Array): void { this.inner.writeDeviceState(state); }
}

/** Asserts the model guest's memory and disk equal a fresh replay of its workloads for exactly the writes it made. */
export function assertSameAsReplay(g: ModelGuest, init: ModelGuestInit): void {
  const seed = init.seed ?? 1;
  if (init.memoryWorkload !== undefined) {
    const store = createPageStore(init.pageCount, init.representation);
    const w = new MemoryWorkload(init.memoryWorkload, init.pageCount, seed);
    w.fill(store);
    w.runWrites(store, g.memoryWrites);
    for (let i = 0; i < init.pageCount; i++) assert.deepEqual(g.memory.readPage(i), store.read(i), `memory page ${i}`);
  }
  const blocks = init.blockCount ?? 0;
  if (init.diskWorkload !== undefined && blocks > 0) {
    const store = createPageStore(blocks, init.representation);
    const w = new DiskWorkload(init.diskWorkload, blocks, seed);
    w.fill(store);
    w.runWrites(store, g.diskWrites);
    for (let i = 0; i < blocks; i++) assert.deepEqual(g.disk?.readBlock(i), store.read(i), `disk block ${i}`);
  }
}
