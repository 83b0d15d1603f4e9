/**
 * The guest as the migration engine sees it: the contract between the engine
 * and every kind of VM it moves (the in-memory model guest, the trace-replay
 * guest built from real QEMU RAM dumps, a checkpoint store's image).
 *
 *   memory  4 KiB pages: read, write, a dirty log that is read-and-cleared
 *   disk    4 KiB blocks with a write log (optional: a guest may be RAM-only)
 *   device  a small opaque blob (vCPU registers, device models)
 *   control pause / resume, a throttle (share of CPU time the guest may use)
 *   time    `advance(now)`: the guest runs its workload up to `now` (ms of the
 *           injected clock). The engine calls it before it reads the dirty log
 *           or pages, so one guest runs the same in real and in virtual time.
 *
 * Page content comes in one of two representations, fixed per guest:
 *   'bytes'      real bytes, a Uint8Array of exactly PAGE_SIZE
 *   'synthetic'  a compact descriptor { base, ver } that expands
 *                deterministically to PAGE_SIZE bytes (see content-model.ts);
 *                lets a 16 GB guest live in 32 MB while the engine runs the
 *                same decisions and the same record-size rules as on bytes.
 * Equal descriptors mean equal bytes; base 0 with ver 0 is the zero page.
 */

export const PAGE_SIZE = 4096;
export const BLOCK_SIZE = 4096;

/** Compact page content: `base` picks the page's underlying content, `ver` a small in-place change on it. */
export interface SynthContent {
  readonly base: number;
  readonly ver: number;
}

/** One page's (or disk block's) content in the guest's representation. */
export type PageContent = Uint8Array | SynthContent;

export type ContentRepresentation = 'bytes' | 'synthetic';

export function isSynthContent(c: PageContent): c is SynthContent {
  return !(c instanceof Uint8Array);
}

export interface GuestMemory {
  readonly pageCount: number;
  readonly representation: ContentRepresentation;
  /**
   * The page's current content. A 'bytes' guest may return a view into its
   * RAM: callers copy it if they keep it past the next `advance` or write.
   */
  readPage(index: number): PageContent;
  /** Overwrite a page (the destination side; the workload of a model guest). Marks it dirty. */
  writePage(index: number, content: PageContent): void;
  /** Start or stop recording writes in the dirty log. Starting clears the log. */
  setDirtyLogging(on: boolean): void;
  /** Indices of pages written since the last call (or since logging started), ascending, no repeats; clears the log. */
  takeDirty(): Uint32Array;
  /** Whether the page has been written since the last `takeDirty`, without clearing (Xen's peek). */
  isDirty(index: number): boolean;
  /** How many pages the dirty log holds now, without clearing. */
  dirtyCount(): number;
  /**
   * A counter the guest bumps on every write of the page, however it was
   * written and whether or not dirty logging is on (optional): lets a digest
   * re-key only the pages that changed since it last looked (ImageKeys).
   */
  generation?(index: number): number;
}

/**
 * Synchronous replication as the guest sees it. While a gate is set, every
 * write the guest's own workload makes asks the gate first:
 *   admit → true   the write is issued: the guest writes its local copy now,
 *                  and the write is *pending* until the gate's owner has the
 *                  destination's acknowledgement (the guest need not track it)
 *   admit → false  the guest's queue of outstanding writes is full: the write
 *                  waits, unwritten; the guest's disk writes stall (and, by its
 *                  I/O coupling, part of its progress) until `writesCompleted`
 * The gate's owner enforces the guest's `queueDepth`. Writes the engine
 * itself makes (`writeBlock`, the destination side) never pass the gate.
 */
export interface DiskWriteGate {
  admit(block: number, now: number): boolean;
}

/** Outstanding synchronous writes a guest allows by default (SATA NCQ depth; a database writer's typical iodepth). */
export const DEFAULT_DISK_QUEUE_DEPTH = 32;

export interface GuestDisk {
  readonly blockCount: number;
  readonly representation: ContentRepresentation;
  /** Most writes the guest keeps outstanding at once (its block queue depth). */
  readonly queueDepth: number;
  readBlock(index: number): PageContent;
  writeBlock(index: number, content: PageContent): void;
  /** Start or stop recording writes. Starting clears the log. */
  setWriteLogging(on: boolean): void;
  /** Blocks written since the last call, ascending, no repeats; clears the log. */
  takeWrites(): Uint32Array;
  /**
   * Put the guest's writes behind a gate (synchronous replication), or take it
   * away (undefined: writes complete locally at once, and a write waiting for
   * the gate is issued now). The guest first runs up to `now`.
   */
  setWriteGate(gate: DiskWriteGate | undefined, now: number): void;
  /** Pending writes completed at `now` (acknowledged): the guest runs up to `now`, then retries a waiting write. */
  writesCompleted(now: number): void;
  /** As GuestMemory's: bumped on every write of the block (optional). */
  generation?(index: number): number;
}

export type GuestRunState = 'running' | 'paused';

/** What a destination needs to build an empty guest of the same shape. */
export interface GuestGeometry {
  readonly name: string;
  readonly pageCount: number;
  readonly blockCount: number;
  readonly representation: ContentRepresentation;
}

export interface Guest {
  readonly geometry: GuestGeometry;
  readonly memory: GuestMemory;
  readonly disk: GuestDisk | undefined;
  readonly runState: GuestRunState;
  /** Share of CPU time the guest may use, in (0, 1]; 1 = unthrottled. */
  readonly throttle: number;
  /** Let the workload run up to `now` (ms). A paused guest does not run; time it spends paused is skipped. */
  advance(now: number): void;
  pause(now: number): void;
  resume(now: number): void;
  /** Set the CPU share, clamped to [minimum, 1]; the workload's write rate scales with it. */
  setThrottle(share: number): void;
  /** The device state (vCPU registers, device models): small, opaque. */
  readDeviceState(): Uint8Array;
  writeDeviceState(state: Uint8Array): void;
}

/** Builds the empty destination guest from the geometry announced in the stream. */
export type GuestFactory = (geometry: GuestGeometry) => Guest;

/**
 * A recorded guest the benchmark can migrate (real QEMU memory traces).
 * `src/migration/guests/trace-guest.ts` exports
 * `listGuestTraces: ListGuestTraces`; the bench imports it when present and
 * migrates each trace under every stop rule. `open` returns a fresh guest
 * positioned at the start of the trace, each call independent.
 */
export interface GuestTraceSource {
  readonly name: string;
  /** One line: where the trace came from (workload, kernel, RAM size, duration). */
  readonly description: string;
  open(): Promise<Guest>;
}

export type ListGuestTraces = (dir?: string) => Promise<readonly GuestTraceSource[]>;
