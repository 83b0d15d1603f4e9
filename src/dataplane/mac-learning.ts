import type { Mac } from '../common/mac.ts';

/**
 * The learned half of the forwarding table: where each source MAC was last
 * seen (a location id: a local port or a link), with aging and a size bound.
 *
 * Cheap per frame by design. A frame whose source is already known at its
 * ingress only sets `entry.seen = true` (no clock read, no map write); the
 * periodic `sweep(now)` turns that flag into a last-seen time, so ages are
 * precise to one sweep interval and entries expire at most one interval late,
 * never early. Only a *change* (new MAC, MAC moved, MAC gone) is reported
 * through `onChange`, which the forwarding table uses to drop the cached
 * decisions for that destination.
 *
 * The map is kept in last-seen order (new and moved entries are appended;
 * entries seen since the previous sweep are moved to the end by the sweep), so
 * the first entry is the one to evict when the table is full.
 */

/** Location id of an entry that was removed; never equal to a live location. */
export const NOWHERE = -1;

export class LearnedEntry {
  readonly mac: Mac;
  /** Location id, or NOWHERE once the entry left the table. */
  location: number;
  /** When the MAC was last seen, as of the most recent sweep or change. */
  lastSeenMs: number;
  /** Seen since the previous sweep. */
  seen: boolean;

  constructor(mac: Mac, location: number, now: number) {
    this.mac = mac;
    this.location = location;
    this.lastSeenMs = now;
    this.seen = false;
  }
}

export interface MacLearningInit {
  agingMs: number;
  maxLearned: number;
  /** Called with a MAC whose location changed: learned, moved, expired, evicted or removed. */
  onChange: (mac: Mac) => void;
}

export type LearnOutcome = 'refreshed' | 'new' | 'moved';

export class MacLearning {
  readonly agingMs: number;
  readonly maxLearned: number;
  readonly #onChange: (mac: Mac) => void;
  readonly #entries = new Map<Mac, LearnedEntry>();
  /** How many entries each location holds, by location id. */
  readonly #perLocation: number[] = [];
  #lastSweepMs = Number.NEGATIVE_INFINITY;
  #evictions = 0;
  #expired = 0;
  #moves = 0;

  constructor(init: MacLearningInit) {
    if (!(init.agingMs > 0)) throw new RangeError(`agingMs must be positive, got ${init.agingMs}`);
    if (!Number.isInteger(init.maxLearned) || init.maxLearned < 1) throw new RangeError(`maxLearned must be a positive integer, got ${init.maxLearned}`);
    this.agingMs = init.agingMs;
    this.maxLearned = init.maxLearned;
    this.#onChange = init.onChange;
  }

  get size(): number {
    return this.#entries.size;
  }

  get counters(): { evictions: number; expired: number; moves: number } {
    return { evictions: this.#evictions, expired: this.#expired, moves: this.#moves };
  }

  /** How many MACs are learned at `location`. */
  countAt(location: number): number {
    return this.#perLocation[location] ?? 0;
  }

  get(mac: Mac): LearnedEntry | undefined {
    return this.#entries.get(mac);
  }

  /** Record that `mac` was seen at `location`; a move takes effect at once. */
  learn(mac: Mac, location: number, now: number): LearnOutcome {
    const e = this.#entries.get(mac);
    if (e !== undefined) {
      if (e.location === location) {
        e.seen = true;
        return 'refreshed';
      }
      this.#entries.delete(mac);
      this.#count(e.location, -1);
      e.location = NOWHERE;
      this.#moves++;
      this.#entries.set(mac, new LearnedEntry(mac, location, now));
      this.#count(location, 1);
      this.#onChange(mac);
      return 'moved';
    }
    if (this.#entries.size >= this.maxLearned) this.#evictOldest();
    this.#entries.set(mac, new LearnedEntry(mac, location, now));
    this.#count(location, 1);
    this.#onChange(mac);
    return 'new';
  }

  /** Forget one MAC (operator action); returns whether it was known. */
  forget(mac: Mac): boolean {
    const e = this.#entries.get(mac);
    if (e === undefined) return false;
    this.#remove(e);
    return true;
  }

  /** Forget every MAC learned at `location` (its port or link went away); returns how many. */
  removeLocation(location: number): number {
    let n = 0;
    for (const e of this.#entries.values()) {
      if (e.location === location) {
        this.#remove(e);
        n++;
      }
    }
    return n;
  }

  /** Age the table: entries not seen for agingMs are removed. Returns how many expired. */
  sweep(now: number): number {
    let expired = 0;
    const refreshed: LearnedEntry[] = [];
    for (const e of this.#entries.values()) {
      if (e.seen) {
        e.seen = false;
        e.lastSeenMs = now;
        refreshed.push(e);
      } else if (now - e.lastSeenMs >= this.agingMs) {
        this.#remove(e);
        expired++;
      }
    }
    for (const e of refreshed) {
      this.#entries.delete(e.mac);
      this.#entries.set(e.mac, e);
    }
    this.#lastSweepMs = now;
    this.#expired += expired;
    return expired;
  }

  /** Upper bound on the time since `e` was last seen. */
  ageOf(e: LearnedEntry, now: number): number {
    const since = e.seen ? Math.max(e.lastSeenMs, this.#lastSweepMs) : e.lastSeenMs;
    return Math.max(0, now - since);
  }

  entries(): IterableIterator<LearnedEntry> {
    return this.#entries.values();
  }

  clear(): void {
    for (const e of [...this.#entries.values()]) this.#remove(e);
  }

  #evictOldest(): void {
    const first = this.#entries.values().next();
    if (first.done === true) return;
    this.#remove(first.value);
    this.#evictions++;
  }

  #count(location: number, by: 1 | -1): void {
    this.#perLocation[location] = (this.#perLocation[location] ?? 0) + by;
  }

  #remove(e: LearnedEntry): void {
    this.#entries.delete(e.mac);
    this.#count(e.location, -1);
    e.location = NOWHERE;
    this.#onChange(e.mac);
  }
}
