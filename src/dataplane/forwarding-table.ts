import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import type { DaemonRole, LinkKind } from '../control/daemon-control.ts';
import type { Egress } from './egress.ts';
import { EgressInterner } from './egress-interner.ts';
import { ForwardingCounters, type ForwardingStats } from './forwarding-counters.ts';
import { ForwardingLocations, type LearnGuard } from './forwarding-locations.ts';
import { SourceLearning, type LearnedInfo, type MacConflict } from './source-learning.ts';
import type { ForwardingRule, RuleOrigin } from './forwarding-rule.ts';
import { FlowCache } from './flow-cache.ts';
import { NOWHERE } from './mac-learning.ts';
import { DETACHED, FlowDecider, Hit, learnable } from './flow-decision.ts';
import type { Mac } from '../common/mac.ts';
import { RuleSet, type RuleChanges } from './rule-set.ts';

export type { RuleChanges } from './rule-set.ts';
export type { LearnedInfo, LearnedLocation, MacConflict } from './source-learning.ts';
export type { ForwardingStats } from './forwarding-counters.ts';

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
 * Deciding (flow-decision.ts): rules by priority, then group MACs flooded,
 * then the learned destination (hairpin and split horizon dropped), else a
 * flood along the backbone with split horizon. Counters: forwarding-counters.ts.
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
  readonly #decider: FlowDecider<P, L>;
  readonly #egress: EgressInterner<P, L>;
  #lastSrc = -1;
  #lastDst = -1;
  #lastIngress = -1;
  #lastHit: Hit<P, L> | undefined = undefined;

  /** Told of every invalidation (whole or one MAC): a copy of the decisions elsewhere (the native forwarder's flow table) must go too. */
  #onInvalidate: (() => void) | undefined;

  readonly #counts = new ForwardingCounters();

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
    this.#decider = new FlowDecider({
      locs: this.#locs,
      rules: this.#rules,
      egress: this.#egress,
      learning: this.#learning,
      maxUnknown: this.#cache.maxEntries,
      full: () => this.#invalidateAll(),
    });
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
    this.#counts.hits++;
    const eg = hit.egress;
    if (eg.drop) this.#counts.drops[eg.reason]++;
    return eg;
  }

  /** Decide without learning (admin "what would happen", tests). Uses and fills the same cache. */
  resolve(src: Mac, dst: Mac, ingress: Ingress): Egress<P, L> {
    const hit = this.#cache.get(src, dst, ingress);
    if (hit !== undefined && hit.dstDep.location !== NOWHERE) {
      this.#counts.hits++;
      return hit.egress;
    }
    this.#counts.misses++;
    return this.#insert(src, dst, ingress).egress;
  }

  /** A miss, a stale decision, or a source seen at a new place: learn, then decide unless still valid. */
  #forwardSlow(src: Mac, dst: Mac, ingress: Ingress): Egress<P, L> {
    this.#counts.misses++;
    const at = this.#locs.get(ingress);
    if (at === undefined) {
      this.#counts.drops['unknown-ingress']++;
      return this.#egress.drop('unknown-ingress', undefined);
    }
    if (learnable(src) && !at.retired && !this.#sources.learn(src, at, this.#rules.sorted)) {
      this.#counts.drops['port-limit']++;
      return this.#egress.drop('port-limit', undefined); // not cached: the next frame from this MAC asks again
    }
    let hit = this.#cache.get(src, dst, ingress);
    if (hit === undefined || hit.dstDep.location === NOWHERE) hit = this.#insert(src, dst, ingress);
    else hit.srcEntry = this.#decider.srcEntryFor(src, ingress);
    this.#lastSrc = src;
    this.#lastDst = dst;
    this.#lastIngress = ingress;
    this.#lastHit = hit;
    const eg = hit.egress;
    if (eg.drop) this.#counts.drops[eg.reason]++;
    return eg;
  }

  #insert(src: Mac, dst: Mac, ingress: Ingress): Hit<P, L> {
    if (this.#locs.get(ingress) === undefined) return new Hit(this.#egress.drop('unknown-ingress', undefined), DETACHED, null); // not cached
    if (this.#cache.full) this.#invalidateAll();
    const hit = this.#decider.decide(src, dst, ingress);
    this.#cache.set(src, dst, ingress, hit);
    return hit;
  }

  // ---- invalidation -------------------------------------------------------

  /** Rules, ports or links changed (or the cache filled up): every decision goes. */
  #invalidateAll(): void {
    this.#cache.clear();
    this.#decider.dropUnknown();
    this.#egress.clear();
    this.#sources.homes.markStale();
    this.#lastHit = undefined;
    this.#counts.invalidations++;
    this.#onInvalidate?.();
  }

  /**
   * A learned MAC appeared, moved or left. Decisions towards it that were
   * made from its old entry see that entry marked NOWHERE (MacLearning does
   * that); decisions made while it was unknown see their token killed here.
   */
  #learnedChanged(mac: Mac): void {
    this.#onInvalidate?.();
    this.#decider.learned(mac);
    this.#counts.macInvalidations++;
  }

  /**
   * Relay frames to `mac` from link to link by rule (a spoke: its VM migrated
   * away from here; a hub relays anyway): `ForwardingLocations.relaysByRule`.
   */
  relayTo(mac: Mac): void {
    if (this.#locs.relayTo(mac)) this.#invalidateAll();
  }

  /** No longer relay frames to `mac` link to link (a spoke: the migration that moved it is over). */
  stopRelayTo(mac: Mac): void {
    if (this.#locs.stopRelayTo(mac)) this.#invalidateAll();
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
    return this.#counts.snapshot(this.#learning, this.#sources.conflicts);
  }

  /** A readable name for an ingress (logs, admin). */
  describeIngress(ingress: Ingress): string {
    return this.#locs.describe(ingress);
  }
}
