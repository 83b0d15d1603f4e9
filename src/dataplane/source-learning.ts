import type { Clock } from '../common/clock.ts';
import type { Mac } from '../common/mac.ts';
import type { ForwardingLocations, Location } from './forwarding-locations.ts';
import type { ForwardingRule } from './forwarding-rule.ts';
import { MacHomes, type MacHome } from './mac-homes.ts';
import { MacLearning } from './mac-learning.ts';

/**
 * Where a frame's source MAC is learned: the forwarding table's learned
 * MACs (mac-learning.ts) behind two gates, consulted only when a source is
 * seen at a new place (the table's miss path):
 *
 *   home    a MAC with a home elsewhere (mac-homes.ts: a local port's MAC, or
 *           one the controller placed) is not learned: a conflict, counted and
 *           reported through `onConflict`; the frame is still forwarded.
 *   guard   a port's guard (port-security.ts) may refuse one more MAC behind
 *           the port (its count or rate limit): nothing is learned and the
 *           caller drops the frame, so a VM cycling through source MACs evicts
 *           no other VM's entry and invalidates no other cached decision.
 */

export interface MacConflict {
  mac: Mac;
  /** Where the frame came from ("fast-path link c3", "port vm2"). */
  seenAt: string;
  /** Where the MAC lives ("port vm1"; "absent" when that port or link is down), and who says so. */
  home: string;
  by: MacHome['by'];
}

export type LearnedLocation = { kind: 'port'; name: string } | { kind: 'link'; peer: string };

export interface LearnedInfo {
  mac: Mac;
  location: LearnedLocation;
  /** Upper bound, precise to the expire() interval. */
  ageMs: number;
}

export interface SourceLearningInit<P, L> {
  locs: ForwardingLocations<P, L>;
  clock: Clock;
  agingMs: number;
  maxLearned: number;
  /** A learned MAC appeared, moved or left. */
  onChange: (mac: Mac) => void;
  onConflict: ((conflict: MacConflict) => void) | undefined;
}

export class SourceLearning<P, L> {
  readonly macs: MacLearning;
  readonly homes = new MacHomes();
  readonly #locs: ForwardingLocations<P, L>;
  readonly #clock: Clock;
  readonly #onConflict: ((conflict: MacConflict) => void) | undefined;
  #conflicts = 0;

  constructor(init: SourceLearningInit<P, L>) {
    this.#locs = init.locs;
    this.#clock = init.clock;
    this.#onConflict = init.onConflict;
    this.macs = new MacLearning({ agingMs: init.agingMs, maxLearned: init.maxLearned, onChange: init.onChange });
  }

  /** Frames whose source was seen away from its home. */
  get conflicts(): number {
    return this.#conflicts;
  }

  /**
   * Learn `src` at `at` unless its home is elsewhere (a conflict: not
   * learned, reported) or `at`'s guard refuses one more MAC there (returns
   * false: the frame is to be dropped). `rules` in the order they are tried.
   */
  learn(src: Mac, at: Location<P, L>, rules: readonly ForwardingRule[]): boolean {
    const home = this.homes.get(src, this.#locs, rules);
    const e = this.macs.get(src);
    if (home !== undefined && MacHomes.conflicts(home, at)) {
      if (e !== undefined && e.location === at.id) this.macs.forget(src); // learned there before it had a home
      this.#conflicts++;
      this.#onConflict?.({ mac: src, seenAt: this.#locs.describe(at.id), home: home.at < 0 ? 'absent' : this.#locs.describe(home.at), by: home.by });
      return true;
    }
    if (e !== undefined && e.location === at.id) {
      e.seen = true;
      return true;
    }
    const guard = at.guard;
    if (guard !== undefined && home?.at !== at.id && !guard.admitsNewMac(this.macs.countAt(at.id))) return false;
    this.macs.learn(src, at.id, this.#clock.now());
    return true;
  }

  /** The learned MACs with their places and ages (admin). */
  list(now: number): LearnedInfo[] {
    const out: LearnedInfo[] = [];
    for (const e of this.macs.entries()) {
      const loc = this.#locs.get(e.location);
      if (loc === undefined) continue;
      const location: LearnedLocation = loc.kind === 'port' ? { kind: 'port', name: loc.name } : { kind: 'link', peer: loc.name };
      out.push({ mac: e.mac, location, ageMs: this.macs.ageOf(e, now) });
    }
    return out;
  }
}
