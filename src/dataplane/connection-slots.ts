import type { Clock, TimerHandle } from '../common/clock.ts';

/**
 * The tunnel listener's slots for connections still in their handshake (TLS,
 * then the hello exchange and proofs): what keeps idle or stalled
 * connections from holding the listener, while a real host always gets in.
 *
 *   deadline   a connection must finish the whole handshake — TLS and hello
 *              together — within `deadlineMs` of being accepted, or it is
 *              dropped ('deadline').
 *   per source at most `maxPerSource` pending connections from one address;
 *              a new one evicts that address's oldest ('evicted-source').
 *   in total   at most `maxTotal`; a new one evicts the oldest pending
 *              connection of the source that holds the most
 *              ('evicted-total').
 *
 * Evicting rather than refusing the newcomer is what lets a real host through
 * a flood: it always gets a slot, and the slot it gets is taken back from
 * whoever holds the most — a host dialling once is never the one evicted
 * while a flooding address holds more than one connection. Its handshake
 * takes milliseconds; the idle connections that would otherwise hold every
 * slot are the ones dropped. A
 * dropped connection's `drop` callback is called once with the reason; a
 * connection that finished (or failed on its own) is `release`d.
 */

export type SlotDropReason = 'deadline' | 'evicted-source' | 'evicted-total';

export interface ConnectionSlotLimits {
  maxTotal: number;
  maxPerSource: number;
  deadlineMs: number;
}

/** Defaults: 256 pending connections, 16 per source address. The deadline defaults to the handshake timeout. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 256;
export const DEFAULT_MAX_PENDING_PER_SOURCE = 16;

export interface ConnectionSlot {
  readonly source: string;
  /** Set once the connection was dropped, with why. */
  readonly dropped: SlotDropReason | undefined;
  /** The handshake ended (link or refusal): free the slot. Idempotent. */
  release(): void;
}

interface Entry extends ConnectionSlot {
  dropped: SlotDropReason | undefined;
  timer: TimerHandle;
  drop: (reason: SlotDropReason) => void;
}

export class ConnectionSlots {
  readonly #clock: Clock;
  readonly #limits: ConnectionSlotLimits;
  /** In admission order: the first is the oldest. */
  readonly #all = new Set<Entry>();
  readonly #bySource = new Map<string, Set<Entry>>();

  constructor(clock: Clock, limits: ConnectionSlotLimits) {
    if (!(limits.maxTotal >= 1 && limits.maxPerSource >= 1 && limits.deadlineMs > 0)) throw new RangeError('connection slot limits must be positive');
    this.#clock = clock;
    this.#limits = limits;
  }

  get pending(): number {
    return this.#all.size;
  }

  /** Pending connections from `source`. */
  pendingFrom(source: string): number {
    return this.#bySource.get(source)?.size ?? 0;
  }

  /** Take a slot for a new connection from `source`, evicting an older one if full; `drop` is how this one is dropped later. */
  admit(source: string, drop: (reason: SlotDropReason) => void): ConnectionSlot {
    const same = this.#bySource.get(source);
    if (same !== undefined && same.size >= this.#limits.maxPerSource) this.#drop(first(same)!, 'evicted-source');
    else if (this.#all.size >= this.#limits.maxTotal) this.#drop(first(this.#heaviest())!, 'evicted-total');
    const entry: Entry = {
      source,
      dropped: undefined,
      drop,
      timer: this.#clock.setTimeout(() => this.#drop(entry, 'deadline'), this.#limits.deadlineMs),
      release: () => this.#remove(entry),
    };
    this.#all.add(entry);
    let group = this.#bySource.get(source);
    if (group === undefined) this.#bySource.set(source, (group = new Set()));
    group.add(entry);
    return entry;
  }

  /** Drop every pending connection (the listener closes); no reason is recorded. */
  clear(): void {
    for (const e of [...this.#all]) {
      this.#remove(e);
      e.drop('deadline');
    }
  }

  /** The pending connections of the source holding the most (ties: the one whose oldest is oldest). */
  #heaviest(): Set<Entry> {
    let best: Set<Entry> | undefined;
    for (const e of this.#all) {
      const group = this.#bySource.get(e.source)!;
      if (best === undefined || group.size > best.size) best = group;
    }
    return best!;
  }

  #drop(entry: Entry, reason: SlotDropReason): void {
    if (!this.#all.has(entry)) return;
    entry.dropped = reason;
    this.#remove(entry);
    entry.drop(reason);
  }

  #remove(entry: Entry): void {
    if (!this.#all.delete(entry)) return;
    entry.timer.cancel();
    const group = this.#bySource.get(entry.source);
    group?.delete(entry);
    if (group?.size === 0) this.#bySource.delete(entry.source);
  }
}

function first<T>(set: Set<T>): T | undefined {
  for (const v of set) return v;
  return undefined;
}
