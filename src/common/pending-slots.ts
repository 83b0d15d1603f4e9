import type { Clock, TimerHandle } from './clock.ts';
import { canonicalAddress } from './ip-address.ts';

/**
 * Slots for connections that have not proved who they are yet (a listener's
 * pre-authentication stage: TCP accepted, TLS handshake, HTTP upgrade, hello).
 * The control channel, the operator API and the migration channel each keep
 * one, so idle or slow connections can never hold a listener's capacity:
 *
 *   admit     at TCP accept, keyed by the source address (canonical: an
 *             IPv4-mapped IPv6 address counts as its IPv4); one deadline timer
 *             covers every stage up to `settle`
 *   source    over `maxPerSource` pending from one address → that address's
 *             oldest pending connection is dropped
 *   total     over `maxTotal` pending → a pending connection picked at random
 *             is dropped (an attacker cannot aim at a given victim; a real
 *             peer survives a flood of n newcomers with odds (1 − 1/maxTotal)^n)
 *   deadline  not settled in `deadlineMs` → dropped
 *   settle    authenticated: the connection leaves the pending set for good
 *   release   closed on its own, or refused: its slot is freed
 *
 * A newcomer is never refused: it takes the place of a connection that has
 * had its chance already (or a random one), so a real peer always gets in
 * while the listener is flooded, at the cost of a retry at worst. Every drop
 * is counted by reason.
 */

export interface PendingSlotsInit {
  /** From accept to authenticated: TLS handshake, upgrade and hello together. */
  readonly deadlineMs: number;
  /** Pending connections from one source address. */
  readonly maxPerSource: number;
  /** Pending connections in all. */
  readonly maxTotal: number;
}

export type PendingDropReason = 'deadline' | 'evicted-source' | 'evicted-total' | 'closing';

export interface PendingSlotStats {
  admitted: number;
  settled: number;
  /** Closed or refused before settling (freed by the connection's own end). */
  released: number;
  dropped: Record<PendingDropReason, number>;
}

export interface PendingSlot {
  readonly source: string;
  /** The connection proved who it is: no deadline, no eviction from now on. Idempotent. */
  settle(): void;
  /** The connection ended (or was refused) by itself: its slot is free. Idempotent. */
  release(): void;
  /** What dropping does from now on (a connection that got further — a WebSocket — says why before closing). */
  onDrop(drop: (reason: PendingDropReason) => void): void;
  /** Whether the slot is still pending. */
  readonly pending: boolean;
}

export interface PendingSlotsComponents {
  readonly clock: Clock;
  /** In [0, 1) (default Math.random): which connection a full listener drops. */
  readonly random?: () => number;
  /** Told of every drop (for metrics). */
  readonly onDropped?: (reason: PendingDropReason, source: string) => void;
}

class Slot implements PendingSlot {
  readonly source: string;
  drop: (reason: PendingDropReason) => void;
  timer: TimerHandle | undefined;
  /** Position in the owner's list of all pending slots (for O(1) removal); -1 once out. */
  at = -1;
  readonly #owner: PendingSlots;

  constructor(owner: PendingSlots, source: string, drop: (reason: PendingDropReason) => void) {
    this.#owner = owner;
    this.source = source;
    this.drop = drop;
  }

  get pending(): boolean {
    return this.at !== -1;
  }

  settle(): void {
    if (this.#owner.remove(this)) this.#owner.stats.settled++;
  }

  release(): void {
    if (this.#owner.remove(this)) this.#owner.stats.released++;
  }

  onDrop(drop: (reason: PendingDropReason) => void): void {
    this.drop = drop;
  }
}

export class PendingSlots {
  readonly stats: PendingSlotStats = {
    admitted: 0, settled: 0, released: 0, dropped: { deadline: 0, 'evicted-source': 0, 'evicted-total': 0, closing: 0 },
  };
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #onDropped: ((reason: PendingDropReason, source: string) => void) | undefined;
  readonly #init: PendingSlotsInit;
  readonly #all: Slot[] = [];
  /** Per source, oldest first. */
  readonly #bySource = new Map<string, Set<Slot>>();

  constructor(components: PendingSlotsComponents, init: PendingSlotsInit) {
    this.#clock = components.clock;
    this.#random = components.random ?? Math.random;
    this.#onDropped = components.onDropped;
    this.#init = { deadlineMs: init.deadlineMs, maxPerSource: Math.max(1, init.maxPerSource), maxTotal: Math.max(1, init.maxTotal) };
  }

  /** Pending connections now. */
  get size(): number {
    return this.#all.length;
  }

  /** Pending connections from one source now. */
  sizeOf(source: string): number {
    return this.#bySource.get(canonicalAddress(source))?.size ?? 0;
  }

  get deadlineMs(): number {
    return this.#init.deadlineMs;
  }

  /**
   * A connection accepted from `source`; `drop` closes it (it may then call
   * `release`, which is harmless). The source is keyed by its canonical text,
   * so `::ffff:10.0.0.1` (a dual-stack listener's view of an IPv4 peer) and
   * `10.0.0.1`, or two spellings of one IPv6 address, share one cap.
   */
  admit(remote: string, drop: (reason: PendingDropReason) => void): PendingSlot {
    const source = canonicalAddress(remote);
    const mine = this.#bySource.get(source);
    if (mine !== undefined && mine.size >= this.#init.maxPerSource) this.#evict(mine.values().next().value!, 'evicted-source');
    else if (this.#all.length >= this.#init.maxTotal) this.#evict(this.#all[Math.floor(this.#random() * this.#all.length)]!, 'evicted-total');
    const slot = new Slot(this, source, drop);
    slot.at = this.#all.length;
    this.#all.push(slot);
    let set = this.#bySource.get(source);
    if (set === undefined) this.#bySource.set(source, (set = new Set()));
    set.add(slot);
    slot.timer = this.#clock.setTimeout(() => this.#evict(slot, 'deadline'), this.#init.deadlineMs);
    this.stats.admitted++;
    return slot;
  }

  /** Drop every pending connection (the listener is closing). */
  closeAll(): void {
    for (const slot of [...this.#all]) this.#evict(slot, 'closing');
  }

  /** Take a slot out; false if it was out already. (Called by the slot itself.) */
  remove(slot: Slot): boolean {
    const at = slot.at;
    if (at === -1) return false;
    const last = this.#all.pop()!;
    if (last !== slot) {
      this.#all[at] = last;
      last.at = at;
    }
    slot.at = -1;
    slot.timer?.cancel();
    const set = this.#bySource.get(slot.source);
    set?.delete(slot);
    if (set?.size === 0) this.#bySource.delete(slot.source);
    return true;
  }

  #evict(slot: Slot, reason: PendingDropReason): void {
    if (!this.remove(slot)) return;
    this.stats.dropped[reason]++;
    this.#onDropped?.(reason, slot.source);
    slot.drop(reason);
  }
}
