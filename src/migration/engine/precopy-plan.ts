/**
 * The pages of a pre-copy migration, iteration by iteration: iteration 0 is
 * every page in order; iteration i is the pages dirtied during i-1 (the dirty
 * log, taken and cleared when the iteration begins). With `skipRedirtied`
 * (Xen's peek) a page dirtied again since its iteration began is skipped: it
 * is in the dirty log and goes out next time, with its latest content.
 * Per-iteration counters feed the stop rule's IterationStats.
 */
import type { GuestMemory } from '../guest.ts';

/** `next()` results that are not a page index. */
export const SKIPPED = -1;
export const ITERATION_END = -2;

export class PrecopyPlan {
  readonly #mem: GuestMemory;
  readonly #skip: boolean;
  #todo: Uint32Array | undefined; // undefined = all pages (iteration 0)
  #cursor = 0;
  iteration = 0;
  startedAt: number;
  pages = 0;
  bytes = 0;
  redirtiedSkips = 0;

  constructor(memory: GuestMemory, skipRedirtied: boolean, now: number) {
    this.#mem = memory;
    this.#skip = skipRedirtied;
    this.startedAt = now;
  }

  /** Pages this iteration still has to visit. */
  left(): number {
    return (this.#todo === undefined ? this.#mem.pageCount : this.#todo.length) - this.#cursor;
  }

  /** The next page to send, SKIPPED, or ITERATION_END. */
  next(): number {
    const len = this.#todo === undefined ? this.#mem.pageCount : this.#todo.length;
    if (this.#cursor >= len) return ITERATION_END;
    const p = this.#todo === undefined ? this.#cursor : (this.#todo[this.#cursor] ?? 0);
    this.#cursor++;
    if (this.#skip && this.#mem.isDirty(p)) { this.redirtiedSkips++; return SKIPPED; }
    return p;
  }

  /** A page went out as `size` bytes. */
  account(size: number): void {
    this.pages++;
    this.bytes += size;
  }

  /** Begin the next iteration with the pages dirtied during this one; returns how many. */
  nextIteration(now: number): number {
    this.iteration++;
    this.#todo = this.#mem.takeDirty();
    this.#cursor = 0;
    this.startedAt = now;
    this.pages = 0;
    this.bytes = 0;
    return this.#todo.length;
  }
}
