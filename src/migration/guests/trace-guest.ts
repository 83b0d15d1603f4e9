import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Guest, GuestGeometry, GuestRunState, GuestTraceSource, ListGuestTraces } from '../guest.ts';
import { BLOCK_SIZE, DEFAULT_DISK_QUEUE_DEPTH, PAGE_SIZE } from '../guest.ts';
import { REPO_ROOT } from '../qemu/qemu-guest-recorder.ts';
import { BytePageStore } from './page-store.ts';
import { DiskGate } from './disk-gate.ts';
import { StoreDisk, StoreMemory } from './store-views.ts';
import { loadTrace, readTraceHeader, type Trace, type TraceSnapshot } from '../qemu/trace-format.ts';

/**
 * A Guest whose memory replays a recorded trace of a real Linux guest.
 *
 *   start    memory = snapshot 0 (the first RAM image), dirty log off and empty
 *   advance  trace time moves by (now − last) × throttle while running; the
 *            changed pages of snapshot k are written during the interval
 *            (t[k−1], t[k]] — spread evenly over it in a fixed pseudo-random
 *            order ('uniform', default) or all at t[k] ('burst') — so the
 *            dirty log sees them as the engine's rounds go by
 *   the end  after the last snapshot the guest either replays snapshots
 *            1…n again on top of its memory ('loop', default: the same dirty
 *            pattern and page contents, so a long migration keeps meeting a
 *            real write pattern, though the image is then no longer one the
 *            real guest held) or stops writing ('hold')
 *
 * The disk is small and synthetic (the traced guest had none): blockCount
 * blocks of seeded pseudo-random bytes, rewritten at diskWritesPerSecond
 * (scaled by the throttle) at seeded random positions. The device state is a
 * synthetic 16 KiB blob that changes with trace time.
 *
 * Synchronous replication (`GuestDisk.setWriteGate`): each disk write asks
 * the gate at its own time; a refused write waits, the disk writes stall, and
 * trace time slows by `ioCoupling` while stalled (default 0: the traced
 * workloads are memory-bound; only the synthetic disk waits).
 */

export const TRACE_MIN_THROTTLE = 0.01;
const DEVICE_STATE_BYTES = 16 * 1024;

export interface TraceGuestInit {
  readonly trace: Trace;
  readonly name?: string;
  /** Time (ms, the engine's clock) at which the guest starts running; default 0. */
  readonly start?: number;
  readonly onEnd?: 'loop' | 'hold';
  readonly spread?: 'uniform' | 'burst';
  /** Synthetic disk size in 4 KiB blocks (default 256 = 1 MiB; 0 = no disk). */
  readonly diskBlocks?: number;
  /** Synthetic disk writes per second of guest time (default 16). */
  readonly diskWritesPerSecond?: number;
  /** Outstanding synchronous disk writes allowed (default DEFAULT_DISK_QUEUE_DEPTH = 32). */
  readonly diskQueueDepth?: number;
  /** Share of the guest's progress that waits on a stalled disk write, 0..1 (default 0). */
  readonly ioCoupling?: number;
  readonly seed?: number;
}

export class TraceGuest implements Guest {
  readonly geometry: GuestGeometry;
  /** Bounds-checked: the engine's indices come from the wire. */
  readonly memory: StoreMemory<BytePageStore>;
  /** Small and synthetic (see the file comment), bounds-checked. */
  readonly disk: StoreDisk<BytePageStore> | undefined;
  readonly #snaps: readonly TraceSnapshot[];
  readonly #onEnd: 'loop' | 'hold';
  readonly #spread: 'uniform' | 'burst';
  readonly #diskRate: number;
  readonly #seed: number;
  readonly #rng: () => number;
  #state: GuestRunState = 'running';
  #throttle = 1;
  #last: number;
  /** Trace time (ms), relative to the start of the current pass. */
  #tau = 0;
  #ranMs = 0;
  #loops = 0;
  /** Next snapshot to apply (1…n), and how many of its pages are applied. */
  #k = 1;
  #applied = 0;
  #order: Uint32Array | undefined;
  #diskDebt = 0;
  #device = new Uint8Array(DEVICE_STATE_BYTES);
  readonly #coupling: number;
  /** The write gate, and a disk write it refused (its block and content). */
  readonly #gate: DiskGate<{ block: number; data: Uint8Array }>;
  #stallMs = 0;
  #diskWrites = 0;

  constructor(init: TraceGuestInit) {
    const t = init.trace;
    if (t.pageSize !== PAGE_SIZE) throw new RangeError(`trace pages are ${t.pageSize} bytes; a Guest's are ${PAGE_SIZE}`);
    const first = t.snapshots[0];
    if (first === undefined) throw new RangeError('the trace holds no snapshot');
    this.#snaps = t.snapshots;
    this.#onEnd = init.onEnd ?? 'loop';
    this.#spread = init.spread ?? 'uniform';
    this.#diskRate = init.diskWritesPerSecond ?? 16;
    this.#coupling = Math.min(1, Math.max(0, init.ioCoupling ?? 0));
    this.#seed = (init.seed ?? 1) >>> 0;
    this.#rng = xorshift(this.#seed ^ 0x9e3779b9);
    this.#last = init.start ?? 0;
    const blocks = init.diskBlocks ?? 256;
    this.geometry = Object.freeze({ name: init.name ?? `trace:${t.meta.workload}`, pageCount: t.pageCount, blockCount: blocks, representation: 'bytes' as const });
    this.memory = new StoreMemory(new BytePageStore(t.pageCount), { checked: true });
    this.#gate = new DiskGate({
      advance: (now) => this.advance(now),
      running: () => this.#state === 'running',
      last: () => this.#last,
      issue: (w) => { this.disk?.writeBlock(w.block, w.data); this.#diskWrites++; },
    });
    this.#applyWhole(first);
    if (blocks > 0) {
      const store = new BytePageStore(blocks);
      const block = new Uint8Array(BLOCK_SIZE);
      const rng = xorshift(this.#seed ^ 0x5bd1e995);
      for (let b = 0; b < blocks; b++) {
        fillRandom(block, rng);
        store.write(b, block);
      }
      this.disk = new StoreDisk(store, Math.max(1, Math.floor(init.diskQueueDepth ?? DEFAULT_DISK_QUEUE_DEPTH)), this.#gate, { checked: true });
    } else {
      this.disk = undefined;
    }
    this.#refreshDevice();
  }

  get runState(): GuestRunState {
    return this.#state;
  }
  get throttle(): number {
    return this.#throttle;
  }
  /** Guest time the trace has been replayed for (ms, across loops). */
  get ranMs(): number {
    return this.#ranMs;
  }
  /** How many times the replay wrapped around to snapshot 1. */
  get loops(): number {
    return this.#loops;
  }
  /** Disk writes issued (written locally). */
  get diskWrites(): number {
    return this.#diskWrites;
  }
  /** Running time (ms) spent with a disk write waiting for the gate. */
  get diskStallMs(): number {
    return this.#stallMs;
  }
  /** Length of one pass of the trace (ms of guest time from snapshot 0 to the last). */
  get traceDurationMs(): number {
    return this.#duration();
  }

  advance(now: number): void {
    const dt = now - this.#last;
    if (!(dt > 0)) return;
    this.#last = now;
    if (this.#state === 'paused') return;
    const stalled = this.#runDisk(now - dt, dt);
    this.#stallMs += stalled;
    const run = (dt - this.#coupling * stalled) * this.#throttle;
    this.#ranMs += run;
    this.#tau += run;
    this.#replayTo();
    this.#refreshDevice();
  }

  pause(now: number): void {
    this.advance(now);
    this.#state = 'paused';
  }

  resume(now: number): void {
    this.#last = Math.max(this.#last, now);
    this.#state = 'running';
    // A write held back while paused goes now if it can.
    this.#gate.retry(this.#last);
  }

  setThrottle(share: number): void {
    this.#throttle = Math.min(1, Math.max(TRACE_MIN_THROTTLE, Number.isFinite(share) ? share : 1));
  }

  readDeviceState(): Uint8Array {
    return this.#device.slice();
  }

  writeDeviceState(state: Uint8Array): void {
    this.#device = state.slice();
  }

  #duration(): number {
    const s = this.#snaps;
    return (s[s.length - 1]?.tMs ?? 0) - (s[0]?.tMs ?? 0);
  }

  #replayTo(): void {
    const n = this.#snaps.length;
    const t0 = this.#snaps[0]?.tMs ?? 0;
    // Bounded: each turn finishes a snapshot or stops; a loop needs a positive duration.
    for (let guard = 0; guard < 4 * n + 16; guard++) {
      if (this.#k >= n) {
        const d = this.#duration();
        if (this.#onEnd === 'hold' || n < 2 || d <= 0 || this.#tau < d) return;
        this.#tau -= d;
        this.#loops++;
        this.#k = 1;
        this.#applied = 0;
        this.#order = undefined;
        // Many passes in one advance (a huge dt): skip whole passes, they would rewrite the same pages.
        if (this.#tau >= 2 * d) {
          const skip = Math.floor(this.#tau / d) - 1;
          this.#loops += skip;
          this.#tau -= skip * d;
        }
      }
      const snap = this.#snaps[this.#k];
      const prevT = (this.#snaps[this.#k - 1]?.tMs ?? 0) - t0;
      if (snap === undefined) return;
      const endT = snap.tMs - t0;
      const total = snap.pages.length;
      let due: number;
      if (this.#tau >= endT) due = total;
      else if (this.#spread === 'burst' || endT <= prevT || this.#tau <= prevT) due = 0;
      else due = Math.min(total, Math.floor((total * (this.#tau - prevT)) / (endT - prevT)));
      this.#applyUpTo(snap, due);
      if (due < total) return;
      this.#k++;
      this.#applied = 0;
      this.#order = undefined;
    }
  }

  #applyUpTo(snap: TraceSnapshot, due: number): void {
    if (due <= this.#applied) return;
    this.#order ??= permutation(snap.pages.length, xorshift((this.#seed * 2654435761 + snap.index * 40503 + this.#loops) >>> 0 || 1));
    const store = this.memory.store;
    for (let j = this.#applied; j < due; j++) {
      const i = this.#order[j] ?? 0;
      store.write(snap.pages[i] ?? 0, snap.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    }
    this.#applied = due;
  }

  #applyWhole(snap: TraceSnapshot): void {
    const store = this.memory.store;
    for (let i = 0; i < snap.pages.length; i++) store.write(snap.pages[i] ?? 0, snap.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  }

  /** Disk writes due over [from, from + dt] (wall ms); returns the ms of it spent stalled on the gate. */
  #runDisk(from: number, dt: number): number {
    const disk = this.disk;
    if (disk === undefined || this.#diskRate <= 0) return 0;
    if (!this.#gate.retry(from)) return dt;
    const perMs = (this.#diskRate * this.#throttle) / 1000;
    const debt0 = this.#diskDebt;
    this.#diskDebt += dt * perMs;
    const writes = Math.min(Math.floor(this.#diskDebt), disk.blockCount * 4);
    this.#diskDebt -= Math.floor(this.#diskDebt);
    const block = new Uint8Array(BLOCK_SIZE);
    for (let w = 0; w < writes; w++) {
      fillRandom(block, this.#rng);
      const b = Math.floor(this.#rng() * disk.blockCount);
      const at = from + (w + 1 - debt0) / perMs;
      if (!this.#gate.admit(b, at)) {
        this.#gate.hold({ block: b, data: block.slice() });
        this.#diskDebt = 0;
        return Math.max(0, from + dt - at);
      }
      disk.writeBlock(b, block);
      this.#diskWrites++;
    }
    return 0;
  }

  #refreshDevice(): void {
    const v = new DataView(this.#device.buffer);
    v.setFloat64(0, this.#ranMs);
    v.setUint32(8, this.#k);
    v.setUint32(12, this.#applied);
    v.setUint32(16, this.#loops);
  }
}

/** Load a trace file and make a guest of it. */
export async function openTraceGuest(path: string, init: Omit<TraceGuestInit, 'trace'> = {}): Promise<TraceGuest> {
  const trace = await loadTrace(path);
  return new TraceGuest({ name: `trace:${basename(path, '.trace')}`, ...init, trace });
}

/** Where `listGuestTraces` looks by default: recordings (git-ignored) and committed samples. */
export const DEFAULT_TRACE_DIRS: readonly string[] = [join(REPO_ROOT, 'guest', 'out', 'traces'), join(REPO_ROOT, 'bench', 'traces')];

/**
 * The recorded traces in `dir` (default: DEFAULT_TRACE_DIRS), as sources the
 * migration bench can open. Reads only the headers; each `open()` returns a
 * fresh guest at the start of the trace (the trace itself is loaded once).
 * A *.trace file whose header does not decode fails the listing: a broken
 * trace is a loud error, never a silently smaller bench.
 */
export const listGuestTraces: ListGuestTraces = async (dir?: string): Promise<readonly GuestTraceSource[]> => {
  const out: GuestTraceSource[] = [];
  for (const path of await findTraceFiles(dir)) {
    const h = await readTraceHeader(path);
    const name = basename(path, '.trace');
    let loaded: Promise<Trace> | undefined;
    out.push({
      name,
      description: `${h.meta.workload} workload, ${h.meta.kernel}, ${h.meta.memoryMiB} MiB RAM, ${h.snapshotCount} snapshots every ${h.meta.intervalMs} ms, QEMU ${h.meta.qemu.split(' ')[0] ?? ''} TCG (${path})`,
      async open(): Promise<Guest> {
        loaded ??= loadTrace(path);
        return new TraceGuest({ name: `trace:${name}`, trace: await loaded });
      },
    });
  }
  return out;
};

/** Paths of the *.trace files in `dir` (default: DEFAULT_TRACE_DIRS, missing ones skipped), sorted by name per directory. */
export async function findTraceFiles(dir?: string): Promise<string[]> {
  const dirs = dir === undefined ? DEFAULT_TRACE_DIRS : [dir];
  const out: string[] = [];
  for (const d of dirs) {
    let names: string[];
    try {
      names = (await readdir(d)).filter((f) => f.endsWith('.trace')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && dir === undefined) continue;
      throw err;
    }
    out.push(...names.map((f) => join(d, f)));
  }
  return out;
}

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 0x1234567;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function permutation(n: number, rng: () => number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = p[i] ?? 0;
    p[i] = p[j] ?? 0;
    p[j] = t;
  }
  return p;
}

function fillRandom(b: Uint8Array, rng: () => number): void {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i + 4 <= b.length; i += 4) v.setUint32(i, Math.floor(rng() * 4294967296));
}
