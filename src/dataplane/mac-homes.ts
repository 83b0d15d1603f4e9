import type { Mac } from '../common/mac.ts';
import type { ForwardingLocations, Location } from './forwarding-locations.ts';
import type { ForwardingRule } from './forwarding-rule.ts';

/**
 * Where a MAC is known to live, so that learning does not move it: the
 * guard against one forged (or cloned) frame redirecting a VM's traffic.
 *
 *   a local port's MAC    lives at that port (the daemon names these: every
 *                         port that is not held for a migration).
 *   a MAC the controller  lives where its controller rule (dst = MAC, action
 *   placed                port or link) sends it; on a spoke, frames from it
 *                         also arrive legitimately over the backbone (floods
 *                         relayed by the hub), so backbone links are accepted
 *                         there too.
 *
 * A frame whose source has a home is learned only at its home; anywhere else
 * it is a conflict: not learned (the frame itself is still forwarded), and
 * reported. Every other MAC is learned as before. Live migration moves a MAC
 * through these same inputs — the port held (so no longer a home), the
 * controller's rules re-pointed, the port removed at the source and released
 * at the destination — never through learning.
 *
 * Homes are rebuilt lazily after any change of rules, ports or links (the
 * forwarding table marks them stale with its cache) and looked up only on the
 * table's miss path, when a source is seen at a new place.
 */

/** A MAC's home: the port or link id it lives at (-1 when that port or link is absent now). */
export interface MacHome {
  readonly at: number;
  /** Set by: a local port, or a controller rule. */
  readonly by: 'port' | 'controller';
  /** Frames from it may also come over a backbone link (a MAC placed by the controller, on a spoke). */
  readonly viaBackbone: boolean;
}

export class MacHomes {
  #localMacs = new Map<Mac, string>();
  #homes = new Map<Mac, MacHome>();
  #stale = true;

  /** The local ports' MACs that are homes (MAC → port name). */
  setLocalMacs(macs: ReadonlyMap<Mac, string>): void {
    this.#localMacs = new Map(macs);
    this.#stale = true;
  }

  markStale(): void {
    this.#stale = true;
  }

  /** The home of `mac`, if it has one. */
  get<P, L>(mac: Mac, locs: ForwardingLocations<P, L>, rules: readonly ForwardingRule[]): MacHome | undefined {
    if (this.#stale) this.#rebuild(locs, rules);
    return this.#homes.get(mac);
  }

  /** Whether a frame from `mac` arriving at `from` contradicts its home `home`. */
  static conflicts<P, L>(home: MacHome, from: Location<P, L>): boolean {
    if (from.id === home.at) return false;
    return !(home.viaBackbone && from.kind === 'link' && from.linkKind === 'backbone');
  }

  #rebuild<P, L>(locs: ForwardingLocations<P, L>, rules: readonly ForwardingRule[]): void {
    const homes = new Map<Mac, MacHome>();
    const onSpoke = locs.role === 'spoke';
    // Rules come highest priority first: the first controller rule placing a MAC wins.
    for (const r of rules) {
      if (r.origin !== 'controller' || r.dst.kind !== 'eq' || r.src.kind !== 'any' || homes.has(r.dst.mac)) continue;
      const a = r.action;
      if (a.kind !== 'port' && a.kind !== 'link') continue;
      const at = (a.kind === 'port' ? locs.portId(a.port) : locs.linkId(a.link)) ?? -1;
      homes.set(r.dst.mac, { at, by: 'controller', viaBackbone: onSpoke && a.kind === 'link' });
    }
    for (const [mac, port] of this.#localMacs) homes.set(mac, { at: locs.portId(port) ?? -1, by: 'port', viaBackbone: false });
    this.#homes = homes;
    this.#stale = false;
  }
}
