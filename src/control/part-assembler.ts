import { ControlPartError } from './errors.ts';

/**
 * Reassembly of a control message that was sent in parts (control-parts.ts
 * splits one; docs/control-protocol.md, "Messages larger than the limit").
 * One assembler per stream and per connection: the traffic reports of one
 * session, its facts, the rule sets one daemon receives, its link sets.
 *
 *   part {index, count} of group g (a report's seq, a set's version)
 *     g < the latest group begun          → refused (stale)
 *     g > the open sequence's group       → the open one is superseded (dropped), g begins
 *     index ≠ the next expected index     → refused (overlap or gap); the sequence is dropped
 *     count ≠ the sequence's count        → refused; the sequence is dropped
 *     count > maxParts, bytes > maxBytes  → refused; the sequence is dropped
 *     older than timeoutMs                → dropped (at the next part or `expire`)
 *     index = count − 1                   → complete: the parts, in order
 *
 * Parts travel in order on one WebSocket, so an honest sender's parts arrive
 * as 0, 1, …, count − 1 with nothing of the same stream in between; anything
 * else is a broken or forged sender. A refused or dropped sequence is
 * forgotten whole: the caller applies a message only when it is complete, so
 * nothing of it is ever half-applied. Memory is bounded by maxBytes per
 * stream. Time comes in as an argument.
 */

export interface PartLimits {
  /** Parts in one sequence. */
  readonly maxParts: number;
  /** Bytes of one sequence, all its parts together. */
  readonly maxBytes: number;
  /** From the first part to the last. */
  readonly timeoutMs: number;
}

/** A sequence's bounds unless configured: 64 parts, 64 MiB, 30 s. */
export const DEFAULT_PART_LIMITS: PartLimits = Object.freeze({ maxParts: 64, maxBytes: 64 << 20, timeoutMs: 30_000 });

/** Where one part sits in its sequence: part `index` (from 0) of `count`. A message sent whole is part 0 of 1. */
export interface PartHeader {
  readonly index: number;
  readonly count: number;
}

export const WHOLE: PartHeader = Object.freeze({ index: 0, count: 1 });

export type PartResult<T> =
  | { readonly state: 'complete'; readonly parts: T[] }
  | { readonly state: 'incomplete' }
  | { readonly state: 'refused'; readonly error: ControlPartError };

export interface PartStats {
  completed: number;
  refused: number;
  /** Incomplete sequences dropped because a newer one began. */
  superseded: number;
  timedOut: number;
}

interface OpenSequence<T> {
  readonly group: number;
  readonly count: number;
  readonly parts: T[];
  bytes: number;
  readonly startedMs: number;
}

export class PartAssembler<T> {
  readonly stats: PartStats = { completed: 0, refused: 0, superseded: 0, timedOut: 0 };
  readonly #what: string;
  readonly #limits: PartLimits;
  readonly #onDrop: ((error: ControlPartError) => void) | undefined;
  #open: OpenSequence<T> | undefined;
  #latest = -1;

  /** `what` names the stream in errors ("traffic report", "rule set"); `onDrop` hears of superseded and timed-out sequences. */
  constructor(what: string, limits: PartLimits = DEFAULT_PART_LIMITS, onDrop?: (error: ControlPartError) => void) {
    this.#what = what;
    this.#limits = limits;
    this.#onDrop = onDrop;
  }

  /** Bytes held by the open sequence. */
  get pendingBytes(): number {
    return this.#open?.bytes ?? 0;
  }

  /** The group of the open sequence, if one is waiting for parts. */
  get openGroup(): number | undefined {
    return this.#open?.group;
  }

  accept(group: number, header: PartHeader, bytes: number, body: T, nowMs: number): PartResult<T> {
    this.expire(nowMs);
    const { index, count } = header;
    const name = `${this.#what} ${group} part ${index + 1} of ${count}`;
    if (!Number.isSafeInteger(count) || count < 1) return this.#refuse('count', `${name}: a sequence has at least one part`);
    if (!Number.isSafeInteger(index) || index < 0 || index >= count) return this.#refuse('index', `${name}: index out of range`);
    if (count > this.#limits.maxParts) return this.#refuse('too-many-parts', `${name}: more than the ${this.#limits.maxParts} parts allowed`);
    if (group < this.#latest) return this.#refuse('stale', `${name}: ${this.#what} ${this.#latest} has already begun`);
    let open = this.#open;
    if (open !== undefined && group > open.group) {
      this.#drop('superseded', `${this.#what} ${open.group}: superseded by ${group} after ${open.parts.length} of ${open.count} parts`);
      open = undefined;
    }
    if (open === undefined) {
      if (index !== 0) return this.#refuse('out-of-order', `${name}: no part 1 of ${this.#what} ${group} before it`);
      open = { group, count, parts: [], bytes: 0, startedMs: nowMs };
      this.#open = open;
      this.#latest = group;
    } else {
      if (count !== open.count) return this.#refuse('mismatch', `${name}: the sequence has ${open.count} parts`, true);
      if (index !== open.parts.length) {
        const why = index < open.parts.length ? 'overlap' : 'out-of-order';
        return this.#refuse(why, `${name}: expected part ${open.parts.length + 1}`, true);
      }
    }
    open.bytes += bytes;
    if (open.bytes > this.#limits.maxBytes) return this.#refuse('too-large', `${name}: the sequence exceeds ${this.#limits.maxBytes} bytes`, true);
    open.parts.push(body);
    if (open.parts.length < open.count) return { state: 'incomplete' };
    this.#open = undefined;
    this.stats.completed++;
    return { state: 'complete', parts: open.parts };
  }

  /** Drop the open sequence if it has outlived its deadline; true if one was dropped. */
  expire(nowMs: number): boolean {
    const open = this.#open;
    if (open === undefined || nowMs - open.startedMs <= this.#limits.timeoutMs) return false;
    this.stats.timedOut++;
    this.#drop('timeout', `${this.#what} ${open.group}: ${open.parts.length} of ${open.count} parts in ${this.#limits.timeoutMs} ms`);
    return true;
  }

  /** Forget everything (a new connection): the next sequence may start anywhere. */
  reset(): void {
    this.#open = undefined;
    this.#latest = -1;
  }

  #refuse(reason: ConstructorParameters<typeof ControlPartError>[0], message: string, dropOpen = false): PartResult<T> {
    if (dropOpen) this.#open = undefined;
    this.stats.refused++;
    return { state: 'refused', error: new ControlPartError(reason, message) };
  }

  #drop(reason: 'superseded' | 'timeout', message: string): void {
    this.#open = undefined;
    if (reason === 'superseded') this.stats.superseded++;
    this.#onDrop?.(new ControlPartError(reason, message));
  }
}
