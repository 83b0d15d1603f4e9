import { Backoff, type BackoffPolicy } from './backoff.ts';

/**
 * Which controller address the agent dials next, and when (docs/ha.md).
 * The agent dials a replicated controller's replicas in turn: a replica that
 * does not lead names the leader, dialled next at once; otherwise the next
 * address in the list, at once, until a round has tried as many addresses as
 * the list holds without a welcome — only then the backoff waits (it runs
 * across the whole list, and a welcome resets it).
 */
export class ControllerDialList {
  readonly #urls: readonly string[];
  readonly #backoff: Backoff;
  /** The list's address dialled (or to dial) now. */
  #at = 0;
  /** An address to dial next instead of the list's: a leader a replica named, or the same one again. */
  #next: string | undefined;
  /** Dial `#next` at once, outside the round (the same controller again, with another hello). */
  #now = false;
  /** Attempts since the last welcome or backoff wait. */
  #triesInRound = 0;

  constructor(urls: readonly string[], policy: BackoffPolicy, random?: () => number) {
    if (urls.length === 0) throw new TypeError('ControllerAgent needs url or urls');
    this.#urls = urls;
    this.#backoff = new Backoff(policy, random);
  }

  /** The address to dial now (and the one dialled until the next call). */
  take(): string {
    const url = this.#next ?? this.#urls[this.#at]!;
    this.#next = undefined;
    return url;
  }

  /** A replica that does not lead named the leader: dialled next (unless it is the one that refused). */
  leaderNamed(leader: string | undefined, refusing: string): void {
    this.#next = leader !== undefined && leader !== refusing ? leader : undefined;
  }

  /** Dial `url` again as soon as its channel has closed, not counted against the round. */
  again(url: string): void {
    this.#next = url;
    this.#now = true;
  }

  welcomed(): void {
    this.#backoff.reset();
    this.#triesInRound = 0;
  }

  /** The channel closed: the address to dial next and how long to wait before dialling it. */
  closed(): { next: string; delayMs: number } {
    if (this.#now && this.#next !== undefined) {
      this.#now = false;
      return { next: this.#next, delayMs: 0 };
    }
    this.#now = false;
    if (this.#next === undefined) this.#at = (this.#at + 1) % this.#urls.length;
    let delayMs = 0;
    if (++this.#triesInRound >= this.#urls.length) {
      this.#triesInRound = 0;
      delayMs = this.#backoff.next();
    }
    return { next: this.#next ?? this.#urls[this.#at]!, delayMs };
  }

  get first(): string {
    return this.#urls[0]!;
  }
}
