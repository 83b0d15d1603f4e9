import { makeEgress, type Egress, type EgressReason } from './egress.ts';
import type { ForwardingLocations, Location } from './forwarding-locations.ts';

/**
 * The forwarding table's egress objects, one per distinct decision (flood
 * from an ingress, unicast to a target, drop), for one generation of ports,
 * links and rules: decisions share them, so the hot path allocates nothing
 * and the daemon may batch frames by egress identity. `clear` starts a new
 * generation (the table does so whenever it drops its whole cache).
 */
export class EgressInterner<P, L> {
  readonly #locs: ForwardingLocations<P, L>;
  #interned = new Map<string, Egress<P, L>>();

  constructor(locs: ForwardingLocations<P, L>) {
    this.#locs = locs;
  }

  /** A flood from `from` along the backbone with split horizon (forwarding-locations.ts). */
  flood(from: Location<P, L>, reason: EgressReason, ruleId: string | undefined): Egress<P, L> {
    const key = `f${from.id}|${reason}|${ruleId ?? ''}`;
    let eg = this.#interned.get(key);
    if (eg !== undefined) return eg;
    const { ports, links } = this.#locs.floodTargets(from);
    eg = makeEgress(ports, links, reason, ruleId);
    this.#interned.set(key, eg);
    return eg;
  }

  /** To the one port or link `target`. */
  unicast(target: number, reason: EgressReason, ruleId: string | undefined): Egress<P, L> {
    const key = `u${target}|${reason}|${ruleId ?? ''}`;
    let eg = this.#interned.get(key);
    if (eg !== undefined) return eg;
    const loc = this.#locs.get(target)!;
    eg = loc.kind === 'port' ? makeEgress([loc.handle as P], [], reason, ruleId) : makeEgress([], [loc.handle as L], reason, ruleId);
    this.#interned.set(key, eg);
    return eg;
  }

  drop(reason: EgressReason, ruleId: string | undefined): Egress<P, L> {
    const key = `d|${reason}|${ruleId ?? ''}`;
    let eg = this.#interned.get(key);
    if (eg === undefined) {
      eg = makeEgress<P, L>([], [], reason, ruleId);
      this.#interned.set(key, eg);
    }
    return eg;
  }

  clear(): void {
    this.#interned = new Map();
  }
}
