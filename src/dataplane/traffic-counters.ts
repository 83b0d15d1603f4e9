import type { TrafficEntry } from '../control/daemon-control.ts';
import { FlowCache } from './flow-cache.ts';
import type { Mac } from '../common/mac.ts';

/**
 * The local traffic matrix: frames and bytes per (source MAC, destination
 * MAC) for frames that enter the overlay at this host. The daemon calls
 * `add` per frame (or per batch of one flow); the controller agent takes
 * `snapshotAndReset` once per update period; the admin interface reads
 * `peek` (totals since start).
 *
 * `add` is a last-pair check, else one probe of a typed-array hash table
 * (flow-cache.ts), then two field increments. Cells are kept across
 * snapshots (zeroed, not freed), so a steady flow allocates nothing; a cell
 * idle for a whole interval is freed at the next snapshot. The number of pairs is bounded (`maxPairs`): traffic of
 * pairs beyond it is counted as untracked, so a VM that spoofs random source
 * MACs costs bounded memory.
 */

class Cell {
  frames = 0;
  bytes = 0;
}

export interface TrafficInterval {
  startMs: number;
  endMs: number;
  entries: TrafficEntry[];
  /** Traffic of pairs beyond maxPairs, not attributed to a pair. */
  untrackedFrames: number;
  untrackedBytes: number;
}

export interface TrafficTotals {
  sinceMs: number;
  entries: TrafficEntry[];
  untrackedFrames: number;
  untrackedBytes: number;
}

export interface TrafficCountersInit {
  /** Start of the first interval (wall-clock ms: the daemon passes its clock's wallNow()). */
  startMs: number;
  /** Most (src, dst) pairs counted individually, per interval and in the totals (default 65536). */
  maxPairs?: number;
}

export const DEFAULT_MAX_PAIRS = 65_536;

/** Pair → counts, nested by source then destination: the totals behind peek(), bounded like the cells. */
class PairTable {
  readonly bySrc = new Map<Mac, Map<Mac, Cell>>();
  pairs = 0;
  untrackedFrames = 0;
  untrackedBytes = 0;

  readonly maxPairs: number;

  constructor(maxPairs: number) {
    this.maxPairs = maxPairs;
  }

  /** The cell of a pair, created if there is room; undefined when full. */
  cell(src: Mac, dst: Mac): Cell | undefined {
    let byDst = this.bySrc.get(src);
    let c = byDst?.get(dst);
    if (c !== undefined) return c;
    if (this.pairs >= this.maxPairs) return undefined;
    if (byDst === undefined) {
      byDst = new Map();
      this.bySrc.set(src, byDst);
    }
    c = new Cell();
    byDst.set(dst, c);
    this.pairs++;
    return c;
  }

  addTo(src: Mac, dst: Mac, frames: number, bytes: number): void {
    const c = this.cell(src, dst);
    if (c === undefined) {
      this.untrackedFrames += frames;
      this.untrackedBytes += bytes;
      return;
    }
    c.frames += frames;
    c.bytes += bytes;
  }

  entries(): TrafficEntry[] {
    const out: TrafficEntry[] = [];
    for (const [src, byDst] of this.bySrc) {
      for (const [dst, c] of byDst) if (c.frames > 0) out.push({ src, dst, frames: c.frames, bytes: c.bytes });
    }
    return out;
  }
}

export class TrafficCounters {
  /** This interval's cells, keyed (src, dst, 0): typed-array keys, no boxing per add. */
  readonly #cells: FlowCache<Cell>;
  readonly #totals: PairTable;
  readonly #sinceMs: number;
  #startMs: number;
  #untrackedFrames = 0;
  #untrackedBytes = 0;
  #lastSrc = -1;
  #lastDst = -1;
  #lastCell: Cell | undefined = undefined;

  constructor(init: TrafficCountersInit) {
    const maxPairs = init.maxPairs ?? DEFAULT_MAX_PAIRS;
    if (!Number.isInteger(maxPairs) || maxPairs < 1) throw new RangeError(`maxPairs must be a positive integer, got ${maxPairs}`);
    this.#cells = new FlowCache(maxPairs);
    this.#totals = new PairTable(maxPairs);
    this.#startMs = init.startMs;
    this.#sinceMs = init.startMs;
  }

  /** Count `frames` frames (default one) of `bytes` bytes in total from `src` to `dst`. */
  add(src: Mac, dst: Mac, bytes: number, frames = 1): void {
    let c = this.#lastCell;
    if (c === undefined || src !== this.#lastSrc || dst !== this.#lastDst) {
      c = this.#cells.get(src, dst, 0);
      if (c === undefined) {
        if (this.#cells.full) {
          this.#untrackedFrames += frames;
          this.#untrackedBytes += bytes;
          return;
        }
        c = new Cell();
        this.#cells.set(src, dst, 0, c);
      }
      this.#lastSrc = src;
      this.#lastDst = dst;
      this.#lastCell = c;
    }
    c.frames += frames;
    c.bytes += bytes;
  }

  /** Counts since the previous call (or construction), over [startMs, now]; starts a new interval at `now`. */
  snapshotAndReset(now: number): TrafficInterval {
    const entries: TrafficEntry[] = [];
    const keep: { src: Mac; dst: Mac; cell: Cell }[] = [];
    let idle = 0;
    this.#cells.forEach((src, dst, _ingress, c) => {
      if (c.frames === 0) {
        idle++; // idle for a whole interval: freed below
        return;
      }
      entries.push({ src, dst, frames: c.frames, bytes: c.bytes });
      this.#totals.addTo(src, dst, c.frames, c.bytes);
      c.frames = 0;
      c.bytes = 0;
      keep.push({ src, dst, cell: c });
    });
    if (idle > 0) {
      this.#cells.clear();
      for (const k of keep) this.#cells.set(k.src, k.dst, 0, k.cell);
    }
    const interval: TrafficInterval = {
      startMs: this.#startMs,
      endMs: now,
      entries,
      untrackedFrames: this.#untrackedFrames,
      untrackedBytes: this.#untrackedBytes,
    };
    this.#totals.untrackedFrames += this.#untrackedFrames;
    this.#totals.untrackedBytes += this.#untrackedBytes;
    this.#untrackedFrames = 0;
    this.#untrackedBytes = 0;
    this.#startMs = now;
    this.#lastSrc = -1;
    this.#lastDst = -1;
    this.#lastCell = undefined;
    return interval;
  }

  /** Totals since construction, the current interval included; resets nothing. */
  peek(): TrafficTotals {
    const current = new PairTable(Number.MAX_SAFE_INTEGER);
    for (const e of this.#totals.entries()) current.addTo(e.src, e.dst, e.frames, e.bytes);
    this.#cells.forEach((src, dst, _ingress, c) => {
      if (c.frames > 0) current.addTo(src, dst, c.frames, c.bytes);
    });
    return {
      sinceMs: this.#sinceMs,
      entries: current.entries(),
      untrackedFrames: this.#totals.untrackedFrames + this.#untrackedFrames,
      untrackedBytes: this.#totals.untrackedBytes + this.#untrackedBytes,
    };
  }

  /** Pairs currently holding a cell (for tests and the admin interface). */
  get pairs(): number {
    return this.#cells.size;
  }
}
