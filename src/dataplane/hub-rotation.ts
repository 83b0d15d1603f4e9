import { Backoff, type BackoffPolicy } from './backoff.ts';

/**
 * Which hub a spoke's backbone link dials next, and when: the failover
 * decision, pure (the caller owns the timer and the link).
 *
 * A spoke keeps exactly one backbone link, to one hub of an ordered list
 * (the primary first, then the standby). The rotation:
 *
 *   up        the link to `current` is up: the round and the backoff reset.
 *   lost      the link went down, or a dial failed: the next hub in the list
 *             (wrapping). A hub not yet tried since the last link went up is
 *             dialled at once (delay 0): that is the failover, and it costs
 *             no backoff. Once every hub has been tried in this round, a new
 *             round starts after the backoff's next delay (exponential, full
 *             jitter, as any redial) — so a spoke that can reach no hub does
 *             not spin, and with a single hub this is the plain redial.
 *
 * It is non-preemptive: a spoke that failed over stays on the standby when
 * the primary returns (the two hubs are joined by one trunk link, so spokes
 * on either hub reach each other; see daemon.ts). Moving everyone back would
 * cut every spoke's backbone once more for no gain, and a primary that flaps
 * would drag the spokes along.
 */

export interface HubAddress {
  /** The hub's host id; undefined: learned from its hello (a single hub whose id was not configured). */
  id: string | undefined;
  host: string;
  port: number;
}

export interface HubDial {
  hub: HubAddress;
  /** Wait this long before dialling (0: at once). */
  delayMs: number;
}

export class HubRotation {
  readonly #hubs: HubAddress[];
  readonly #backoff: Backoff;
  #index = 0;
  /** Hubs dialled since the last link came up (indices). */
  readonly #tried = new Set<number>([0]);
  #failovers = 0;
  #up = false;

  constructor(hubs: readonly HubAddress[], policy: BackoffPolicy, random: () => number = Math.random) {
    if (hubs.length === 0) throw new RangeError('a hub rotation needs at least one hub');
    this.#hubs = [...hubs];
    this.#backoff = new Backoff(policy, random);
  }

  get hubs(): readonly HubAddress[] {
    return this.#hubs;
  }

  /** The hub dialled or connected now. */
  get current(): HubAddress {
    return this.#hubs[this.#index]!;
  }

  /** Whether `current` is the first hub of the list (the primary). */
  get onPrimary(): boolean {
    return this.#index === 0;
  }

  /** Times a link that was up was lost and the rotation moved on to another hub. */
  get failovers(): number {
    return this.#failovers;
  }

  /** The link to `current` came up. */
  up(): void {
    this.#tried.clear();
    this.#tried.add(this.#index);
    this.#backoff.reset();
    this.#up = true;
  }

  /** The link to `current` went down or could not be made: which hub next, and after how long. */
  lost(): HubDial {
    const next = (this.#index + 1) % this.#hubs.length;
    if (this.#up && next !== this.#index) this.#failovers++;
    this.#up = false;
    this.#index = next;
    if (!this.#tried.has(next)) {
      this.#tried.add(next);
      return { hub: this.current, delayMs: 0 };
    }
    this.#tried.clear();
    this.#tried.add(next);
    return { hub: this.current, delayMs: this.#backoff.next() };
  }

  /** The hub at `current` turned out to be `id` (learned from its hello). */
  learnId(id: string): void {
    const hub = this.#hubs[this.#index]!;
    if (hub.id === undefined) this.#hubs[this.#index] = { ...hub, id };
  }
}
