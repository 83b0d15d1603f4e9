import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import type { DaemonRole, LinkKind } from '../control/daemon-control.ts';
import { EGRESS_REASONS, type Egress, type EgressReason } from './egress.ts';
import { EgressInterner } from './egress-interner.ts';
import { ForwardingLocations, type LearnGuard } from './forwarding-locations.ts';
import { SourceLearning, type LearnedInfo, type MacConflict } from './source-learning.ts';
import type { ForwardingRule, RuleOrigin } from './forwarding-rule.ts';
import { FlowCache } from './flow-cache.ts';
import { LearnedEntry, NOWHERE } from './mac-learning.ts';
import { DETACHED, Hit, INDEPENDENT, PENDING } from './flow-decision.ts';
import { BROADCAST_MAC, isMulticastMac, type Mac } from '../common/mac.ts';
import { RuleSet, type RuleChanges } from './rule-set.ts';

export type { RuleChanges } from './rule-set.ts';
export type { LearnedInfo, LearnedLocation, MacConflict } from './source-learning.ts';

/**
 * The daemon's forwarding table: rules, learned MAC locations, and the cache
 * that turns them into one lookup per frame.
 *
 * Per frame (`forward`):
 *   1. last-hit check (same src, dst, ingress as the previous frame), else
 *   2. the flow cache (flow-cache.ts: open addressing over typed arrays);
 *   3. on a hit, check the decision is still valid (one field), refresh
 *      learning by setting a flag on the cached learned entry of the source
 *      MAC (no allocation, no clock read), return the interned Egress;
 *   4. on a miss, a stale decision, or a source seen at a new place: learn,
 *      decide, cache.
 *
 * Learning a source at a new place (miss path only, source-learning.ts)
 * is refused for a MAC whose home is elsewhere (a conflict: reported, the
 * frame still forwarded) and when the ingress port's guard refuses one more
 * MAC (the frame dropped as 'port-limit', nothing learned or cached).
 *
 * Deciding (`#decide`), in order:
 *   - rules by priority (desc) then id; a rule whose port/link is absent is
 *     skipped, so traffic falls through to learning while a link is down;
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
 *
 * A link being closed is retired first (`retireLink`): it stays a valid
 * ingress, so the frames its peer sent before it saw our goodbye are still
 * forwarded, but it is no longer a destination — rules naming its peer skip
 * it (falling through to lower rules, learning, the backbone), MACs are not
 * learned behind it, floods leave it out. `releaseLink` forgets it once the
 * link has closed. The hot path is unchanged: a frame from a retired link
 * takes the miss path (its source is never learned there), which costs
 * nothing while no link is draining.
 *
 * Invalidation: a change of rules, ports or links drops the whole cache. A
 * change of one learned MAC invalidates only the decisions whose destination
 * is that MAC (nothing else depends on it): each decision holds the learned
 * entry (or the "still unknown" token) it was made from, and learning marks
 * superseded entries and tokens dead, so the check costs one field read.
 */

/** Identifies a current local port or link; returned by addPort/addLink. */
export type Ingress = number;

export interface ForwardingTableInit {
  role: DaemonRole;
  clock: Clock;
  /** Learned entries expire after this long unseen (default 300 s). */
  agingMs?: number;
  /** Most learned MACs; the least recently seen is evicted (default 16384). */
  maxLearned?: number;
  /** Most cached decisions before the cache is dropped and rebuilt (default 65536). */
  maxCacheEntries?: number;
  logger?: Logger;
  /** A frame's source MAC was seen away from its home (see the header); not learned. */
  onConflict?: (conflict: MacConflict) => void;
}

export interface ForwardingStats {
  hits: number;
  misses: number;
  /** Whole-cache invalidations (rule, port or link changes, cache overflow). */
  invalidations: number;
  /** Per-destination invalidations (a learned MAC appeared, moved or left). */
  macInvalidations: number;
  learnedMoves: number;
  learnedEvictions: number;
  learnedExpired: number;
  /** Frames whose source MAC was seen away from its home (not learned). */
  macConflicts: number;
  drops: Record<EgressReason, number>;
}

export const DEFAULT_AGING_MS = 300_000;
export const DEFAULT_MAX_LEARNED = 16_384;
export const DEFAULT_MAX_CACHE_ENTRIES = 65_536;

export class ForwardingTable<P = string, L = string> {
  readonly role: DaemonRole;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #sources: SourceLearning<P, L>;
  readonly #learning: SourceLearning<P, L>['macs'];

  readonly #locs: ForwardingLocations<P, L>;
  readonly #rules = new RuleSet();

  readonly #cache: FlowCache<Hit<P, L>>;
  /** Per destination MAC decided while unknown: the token those decisions depend on. */
  #unknown = new Map<Mac, LearnedEntry>();
  readonly #egress: EgressInterner<P, L>;
  #lastSrc = -1;
  #lastDst = -1;
  #lastIngress = -1;
  #lastHit: Hit<P, L> | undefined = undefined;

  /** Told of every invalidation (whole or one MAC): a copy of the decisions elsewhere (the native forwarder's flow table) must go too. */
  #onInvalidate: (() => void) | undefined;

  #hits = 0;
  #misses = 0;
  #invalidations = 0;
  #macInvalidations = 0;
  readonly #drops = Object.fromEntries(EGRESS_REASONS.map((r) => [r, 0])) as Record<EgressReason, number>;

  constructor(init: ForwardingTableInit) {
    this.role = init.role;
    this.#locs = new ForwardingLocations(init.role);
    this.#clock = init.clock;
    this.#log = init.logger;
    this.#egress = new EgressInterner(this.#locs);
    this.#cache = new FlowCache(init.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES);
    this.#sources = new SourceLearning({
      locs: this.#locs,
      clock: init.clock,
      agingMs: init.agingMs ?? DEFAULT_AGING_MS,
      maxLearned: init.maxLearned ?? DEFAULT_MAX_LEARNED,
      onChange: (mac) => this.#learnedChanged(mac),
      onConflict: init.onConflict,
    });
    this.#learning = this.#sources.macs;
  }

  // ---- the hot path -------------------------------------------------------

  /** Learn the source at `ingress` and decide where the frame goes: the per-frame call. */
  forward(src: Mac, dst: Mac, ingress: Ingress): Egress<P, L> {
    let hit = this.#lastHit;
    if (hit === undefined || src !== this.#lastSrc || dst !== this.#lastDst || ingress !== this.#lastIngress) {
      hit = this.#cache.get(src, dst, ingress);
      if (hit === undefined) return this.#forwardSlow(src, dst, ingress);
      this.#lastSrc = src;
      this.#lastDst = dst;
      this.#lastIngress = ingress;
      this.#lastHit = hit;
    }
    if (hit.dstDep.location === NOWHERE) return this.#forwardSlow(src, dst, ingress);
    const le = hit.srcEntry;
    if (le !== null) {
      if (le.location !== ingress) return this.#forwardSlow(src, dst, ingress);
      le.seen = true;
    }
    this.#hits++;
    const eg = hit.egress;
    if (eg.drop) this.#drops[eg.reason]++;
    return eg;
  }

  /** Decide without learning (admin "what would happen", tests). Uses and fills the same cache. */
  resolve(src: Mac, dst: Mac, ingress: Ingress): Egress<P, L> {
    const hit = this.#cache.get(src, dst, ingress);
    if (hit !== undefined && hit.dstDep.location !== NOWHERE) {
      this.#hits++;
      return hit.egress;
    }
    this.#misses++;
    return this.#insert(src, dst, ingress).egress;
  }

  /** A miss, a stale decision, or a source seen at a new place: learn, then decide unless still valid. */
  #forwardSlow(src: Mac, dst: Mac, ingress: Ingress): Egress<P, L> {
    this.#misses++;
    const at = this.#locs.get(ingress);
    if (at === undefined) {
      this.#drops['unknown-ingress']++;
      return this.#egress.drop('unknown-ingress', undefined);
    }
    if (learnable(src) && !at.retired && !this.#sources.learn(src, at, this.#rules.sorted)) {
      this.#drops['port-limit']++;
      return this.#egress.drop('port-limit', undefined); // not cached: the next frame from this MAC asks again
    }
    let hit = this.#cache.get(src, dst, ingress);
    if (hit === undefined || hit.dstDep.location === NOWHERE) hit = this.#insert(src, dst, ingress);
    else hit.srcEntry = this.#srcEntryFor(src, ingress);
    this.#lastSrc = src;
    this.#lastDst = dst;
    this.#lastIngress = ingress;
    this.#lastHit = hit;
    const eg = hit.egress;
    if (eg.drop) this.#drops[eg.reason]++;
    return eg;
  }

  #srcEntryFor(src: Mac, ingress: Ingress): LearnedEntry | null {
    if (!learnable(src)) return null;
    const e = this.#learning.get(src);
    return e !== undefined && e.location === ingress ? e : DETACHED;
  }

  #insert(src: Mac, dst: Mac, ingress: Ingress): Hit<P, L> {
    if (this.#locs.get(ingress) === undefined) return new Hit(this.#egress.drop('unknown-ingress', undefined), DETACHED, null); // not cached
    if (this.#cache.full) this.#invalidateAll();
    const hit = this.#decide(src, dst, ingress);
    this.#cache.set(src, dst, ingress, hit);
    return hit;
  }

  // ---- deciding (cache misses only) ---------------------------------------

  #decide(src: Mac, dst: Mac, ingress: Ingress): Hit<P, L> {
    const from = this.#locs.get(ingress)!;
    const srcEntry = this.#srcEntryFor(src, ingress);
    const rules = this.#rules;
    for (let r = rules.firstMatch(src, dst, 0); r >= 0; r = rules.firstMatch(src, dst, r + 1)) {
      const rule = rules.sorted[r]!;
      const a = rule.action;
      if (a.kind === 'drop') return new Hit(this.#egress.drop('rule-drop', rule.id), INDEPENDENT, srcEntry);
      if (a.kind === 'flood') return new Hit(this.#egress.flood(from, 'rule-flood', rule.id), INDEPENDENT, srcEntry);
      const target = a.kind === 'port' ? this.#locs.portId(a.port) : this.#locs.linkId(a.link);
      if (target === undefined) continue; // absent: fall through to lower rules and learning
      if (target === ingress) return new Hit(this.#egress.drop('hairpin', rule.id), INDEPENDENT, srcEntry);
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

  /** The token that decisions made while `dst` is unknown depend on; killed when `dst` is learned. */
  #unknownToken(dst: Mac): LearnedEntry {
    let token = this.#unknown.get(dst);
    if (token === undefined) {
      if (this.#unknown.size >= this.#cache.maxEntries) this.#invalidateAll();
      token = new LearnedEntry(dst, PENDING, 0);
      this.#unknown.set(dst, token);
    }
    return token;
  }

  // ---- invalidation -------------------------------------------------------

  /** Rules, ports or links changed (or the cache filled up): every decision goes. */
  #invalidateAll(): void {
    this.#cache.clear();
    for (const token of this.#unknown.values()) token.location = NOWHERE;
    this.#unknown = new Map();
    this.#egress.clear();
    this.#sources.homes.markStale();
    this.#lastHit = undefined;
    this.#invalidations++;
    this.#onInvalidate?.();
  }

  /**
   * A learned MAC appeared, moved or left. Decisions towards it that were
   * made from its old entry see that entry marked NOWHERE (MacLearning does
   * that); decisions made while it was unknown see their token killed here.
   */
  #learnedChanged(mac: Mac): void {
    this.#onInvalidate?.();
    const token = this.#unknown.get(mac);
    if (token !== undefined) {
      token.location = NOWHERE;
      this.#unknown.delete(mac);
    }
    this.#macInvalidations++;
  }

  /** Call `fn` whenever cached decisions are dropped (all of them, or those towards one MAC). One listener. */
  onInvalidate(fn: () => void): void {
    this.#onInvalidate = fn;
  }

  /** The current port or link behind an ingress id, and whether it is a link being retired. */
  locationOf(ingress: Ingress): { readonly kind: 'port' | 'link'; readonly handle: P | L; readonly retired: boolean } | undefined {
    return this.#locs.get(ingress);
  }

  // ---- ports and links ----------------------------------------------------

  /**
   * Add a local port (or give an existing one a new handle); returns its
   * ingress id, valid until the port is removed (ids are then reused).
   */
  addPort(name: string, handle: P, guard?: LearnGuard): Ingress {
    const id = this.#locs.setPort(name, handle, guard);
    this.#invalidateAll();
    this.#log?.debug({ port: name, ingress: id }, 'port set');
    return id;
  }

  /** Remove a local port and every MAC learned there; returns whether it existed. */
  removePort(name: string): boolean {
    const id = this.#locs.removePort(name);
    if (id === undefined) return false;
    this.#learning.removeLocation(id);
    this.#invalidateAll();
    this.#log?.debug({ port: name }, 'port removed');
    return true;
  }

  /** Add a link to peer `hostId` (or change its kind or handle); `mesh`: a VXLAN VTEP's (no relaying between two). Returns its ingress id. */
  addLink(hostId: string, kind: LinkKind, handle: L, mesh = false): Ingress {
    const id = this.#locs.setLink(hostId, kind, handle, mesh);
    this.#invalidateAll();
    this.#log?.debug({ peer: hostId, kind, ingress: id }, 'link set');
    return id;
  }

  /** Remove a link and every MAC learned behind it; returns whether it existed. */
  removeLink(hostId: string): boolean {
    const id = this.#locs.removeLink(hostId);
    if (id === undefined) return false;
    this.#learning.removeLocation(id);
    this.#invalidateAll();
    this.#log?.debug({ peer: hostId }, 'link removed');
    return true;
  }

  /**
   * Retire the link to `hostId` while it closes (see the header): its ingress
   * stays valid for what is still arriving on it, it stops being a
   * destination, and every MAC learned behind it is forgotten. Returns its
   * ingress (for `releaseLink`), or undefined if there was none.
   */
  retireLink(hostId: string): Ingress | undefined {
    const id = this.#locs.retireLink(hostId);
    if (id === undefined) return undefined;
    this.#learning.removeLocation(id);
    this.#invalidateAll();
    this.#log?.debug({ peer: hostId, ingress: id }, 'link retired');
    return id;
  }

  /** Forget a retired link once it has closed; returns whether it was one. */
  releaseLink(ingress: Ingress): boolean {
    if (!this.#locs.freeRetired(ingress)) return false;
    this.#invalidateAll();
    return true;
  }

  portIngress(name: string): Ingress | undefined {
    return this.#locs.portId(name);
  }

  linkIngress(hostId: string): Ingress | undefined {
    return this.#locs.linkId(hostId);
  }

  // ---- rules --------------------------------------------------------------

  /** Replace every rule of `origin` (a controller push, a config reload); returns what changed. */
  setRules(origin: RuleOrigin, rules: readonly ForwardingRule[]): RuleChanges {
    const changes = this.#rules.replace(origin, rules);
    const n = changes.added.length + changes.removed.length + changes.changed.length;
    if (n > 0) {
      this.#invalidateAll();
      this.#log?.info({ origin, added: changes.added.length, removed: changes.removed.length, changed: changes.changed.length }, 'rules replaced');
    }
    return changes;
  }

  /** Add one rule; its id must be new (RuleError otherwise). */
  addRule(rule: ForwardingRule): void {
    this.#rules.add(rule);
    this.#invalidateAll();
  }

  /** Remove one rule; returns whether it existed. */
  removeRule(id: string): boolean {
    if (!this.#rules.remove(id)) return false;
    this.#invalidateAll();
    return true;
  }

  /** Every rule, in the order they are tried. */
  rules(): readonly ForwardingRule[] {
    return this.#rules.sorted;
  }

  // ---- learning -----------------------------------------------------------

  /**
   * Record that `src` was seen at `ingress` (forward() does this itself).
   * Returns false if not learnable there (a group MAC, a retired link, its
   * home elsewhere, or the port's guard refuses it).
   */
  learn(src: Mac, ingress: Ingress): boolean {
    const at = this.#locs.get(ingress);
    if (!learnable(src) || at === undefined || at.retired) return false;
    return this.#sources.learn(src, at, this.#rules.sorted) && this.#learning.get(src)?.location === ingress;
  }

  /** The local ports' MACs that may not be learned anywhere else (MAC → port name; see mac-homes.ts). */
  setLocalMacs(macs: ReadonlyMap<Mac, string>): void {
    this.#sources.homes.setLocalMacs(macs);
  }

  /** How many MACs are learned at `ingress` now. */
  learnedAt(ingress: Ingress): number {
    return this.#learning.countAt(ingress);
  }

  /** Forget one learned MAC (admin). */
  forget(mac: Mac): boolean {
    return this.#learning.forget(mac);
  }

  /** Age out learned MACs unseen for agingMs; the daemon calls this periodically. Returns how many expired. */
  expire(now: number): number {
    const n = this.#learning.sweep(now);
    if (n > 0) this.#log?.debug({ expired: n }, 'learned MACs expired');
    return n;
  }

  /** The learned MACs, for the admin interface. */
  learned(): LearnedInfo[] {
    return this.#sources.list(this.#clock.now());
  }

  get stats(): ForwardingStats {
    const c = this.#learning.counters;
    return {
      hits: this.#hits,
      misses: this.#misses,
      invalidations: this.#invalidations,
      macInvalidations: this.#macInvalidations,
      learnedMoves: c.moves,
      learnedEvictions: c.evictions,
      learnedExpired: c.expired,
      macConflicts: this.#sources.conflicts,
      drops: { ...this.#drops },
    };
  }

  /** A readable name for an ingress (logs, admin). */
  describeIngress(ingress: Ingress): string {
    return this.#locs.describe(ingress);
  }
}

function learnable(src: Mac): boolean {
  return src !== 0 && !isMulticastMac(src);
}
