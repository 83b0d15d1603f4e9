import { BROADCAST_MAC, isMulticastMac, type Mac } from '../common/mac.ts';
import type { Egress } from './egress.ts';
import type { EgressInterner } from './egress-interner.ts';
import type { ForwardingLocations } from './forwarding-locations.ts';
import { LearnedEntry, NOWHERE, type MacLearning } from './mac-learning.ts';
import type { RuleSet } from './rule-set.ts';

/**
 * The forwarding table's decisions (forwarding-table.ts runs the cache and
 * says when a decision goes stale): what it caches per (src, dst, ingress) —
 * a decision and what it depends on — and how one is made, on a cache miss
 * only.
 *
 * Deciding (`FlowDecider.decide`), in order:
 *   - rules by priority (desc) then id; a rule whose port/link is absent is
 *     skipped, so traffic falls through to learning while a link is down; on
 *     a spoke, a rule sends a frame from a link on to another link only for
 *     a VM that migrated away (`relaysByRule`), else it is dropped
 *     (split horizon: it was flooded here, and reached its VM by the flood);
 *   - broadcast/multicast destination: flood;
 *   - destination learned: unicast there, unless that is the ingress
 *     (hairpin) or a link the frame may not be relayed to (split horizon);
 *   - otherwise flood (unknown unicast).
 *
 * Flooding uses split horizon on the star backbone, never fast-path links:
 * every local port but the ingress; from a local port, every backbone link;
 * from a backbone link, on the hub only, every other backbone link; from any
 * other link, nothing further. So a flood crosses at most spoke → hub → spoke
 * (→ the other hub's spokes, over the trunk between a hub and its standby).
 * A daemon with no backbone link left floods from a port over its fast-path
 * links instead (forwarding-locations.ts).
 */

/**
 * A cached decision for one (src, dst, ingress). It stays valid while its
 * destination dependency lives (`dstDep.location !== NOWHERE`): the learned
 * entry it was decided from, a token for "dst not learned", or INDEPENDENT
 * for decisions that do not look at learning (rules, floods of group MACs).
 */
export class Hit<P, L> {
  readonly egress: Egress<P, L>;
  readonly dstDep: LearnedEntry;
  /** The source MAC's learned entry (to refresh), or null when the source is never learned. */
  srcEntry: LearnedEntry | null;

  constructor(egress: Egress<P, L>, dstDep: LearnedEntry, srcEntry: LearnedEntry | null) {
    this.egress = egress;
    this.dstDep = dstDep;
    this.srcEntry = srcEntry;
  }
}

/** The dependency of decisions that learning cannot change. */
export const INDEPENDENT = new LearnedEntry(-1, -2, 0);
/** Stands for "source not learned at this ingress": forces the learning path on the next hit. */
export const DETACHED = new LearnedEntry(-1, NOWHERE, 0);
/** Location of an "unknown destination" token while it is valid. */
export const PENDING = -3;

/** Whether a frame's source MAC is ever learned: not the zero MAC, not a group MAC. */
export function learnable(src: Mac): boolean {
  return src !== 0 && !isMulticastMac(src);
}

export interface FlowDeciderInit<P, L> {
  locs: ForwardingLocations<P, L>;
  rules: RuleSet;
  egress: EgressInterner<P, L>;
  learning: MacLearning;
  /** Most "unknown destination" tokens at once (the cache's size). */
  maxUnknown: number;
  /** Called when there are that many: the table drops every decision (and with them, through `dropUnknown`, the tokens). */
  full: () => void;
}

export class FlowDecider<P, L> {
  readonly #locs: ForwardingLocations<P, L>;
  readonly #rules: RuleSet;
  readonly #egress: EgressInterner<P, L>;
  readonly #learning: MacLearning;
  readonly #maxUnknown: number;
  readonly #full: () => void;
  /** Per destination MAC decided while unknown: the token those decisions depend on. */
  #unknown = new Map<Mac, LearnedEntry>();

  constructor(init: FlowDeciderInit<P, L>) {
    this.#locs = init.locs;
    this.#rules = init.rules;
    this.#egress = init.egress;
    this.#learning = init.learning;
    this.#maxUnknown = init.maxUnknown;
    this.#full = init.full;
  }

  /** Decide where a frame from `src` to `dst` arriving at `ingress` (a current location) goes. */
  decide(src: Mac, dst: Mac, ingress: number): Hit<P, L> {
    const from = this.#locs.get(ingress)!;
    const srcEntry = this.srcEntryFor(src, ingress);
    const rules = this.#rules;
    for (let r = rules.firstMatch(src, dst, 0); r >= 0; r = rules.firstMatch(src, dst, r + 1)) {
      const rule = rules.sorted[r]!;
      const a = rule.action;
      if (a.kind === 'drop') return new Hit(this.#egress.drop('rule-drop', rule.id), INDEPENDENT, srcEntry);
      if (a.kind === 'flood') return new Hit(this.#egress.flood(from, 'rule-flood', rule.id), INDEPENDENT, srcEntry);
      const target = a.kind === 'port' ? this.#locs.portId(a.port) : this.#locs.linkId(a.link);
      if (target === undefined) continue; // absent: fall through to lower rules and learning
      if (target === ingress) return new Hit(this.#egress.drop('hairpin', rule.id), INDEPENDENT, srcEntry);
      if (!this.#locs.relaysByRule(from, this.#locs.get(target)!, dst)) return new Hit(this.#egress.drop('split-horizon', rule.id), INDEPENDENT, srcEntry);
      return new Hit(this.#egress.unicast(target, 'rule', rule.id), INDEPENDENT, srcEntry);
    }
    if (isMulticastMac(dst)) return new Hit(this.#egress.flood(from, dst === BROADCAST_MAC ? 'broadcast' : 'multicast', undefined), INDEPENDENT, srcEntry);
    const at = this.#learning.get(dst);
    if (at === undefined) return new Hit(this.#egress.flood(from, 'unknown-unicast', undefined), this.#unknownToken(dst), srcEntry);
    let egress: Egress<P, L>;
    const to = this.#locs.get(at.location);
    if (at.location === ingress) egress = this.#egress.drop('hairpin', undefined);
    else if (to === undefined || to.retired) egress = this.#egress.flood(from, 'unknown-unicast', undefined);
    else if (from.kind === 'link' && to.kind === 'link' && !this.#locs.relays(from, to)) egress = this.#egress.drop('split-horizon', undefined);
    else egress = this.#egress.unicast(to.id, 'learned', undefined);
    return new Hit(egress, at, srcEntry);
  }

  /** The source's learned entry at `ingress` for a decision to refresh: null (never learned) or DETACHED (not learned there). */
  srcEntryFor(src: Mac, ingress: number): LearnedEntry | null {
    if (!learnable(src)) return null;
    const e = this.#learning.get(src);
    return e !== undefined && e.location === ingress ? e : DETACHED;
  }

  /** `mac` was learned, moved or forgotten: the decisions made while it was unknown go stale. */
  learned(mac: Mac): void {
    const token = this.#unknown.get(mac);
    if (token !== undefined) {
      token.location = NOWHERE;
      this.#unknown.delete(mac);
    }
  }

  /** Every decision is being dropped: every "unknown destination" token dies with them. */
  dropUnknown(): void {
    for (const token of this.#unknown.values()) token.location = NOWHERE;
    this.#unknown = new Map();
  }

  /** The token that decisions made while `dst` is unknown depend on; killed when `dst` is learned. */
  #unknownToken(dst: Mac): LearnedEntry {
    let token = this.#unknown.get(dst);
    if (token === undefined) {
      if (this.#unknown.size >= this.#maxUnknown) this.#full();
      token = new LearnedEntry(dst, PENDING, 0);
      this.#unknown.set(dst, token);
    }
    return token;
  }
}
