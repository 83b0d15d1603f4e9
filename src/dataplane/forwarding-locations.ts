import type { DaemonRole, LinkKind } from '../control/daemon-control.ts';

/**
 * Where a daemon can send a frame: its local ports (by name) and its links
 * (by peer host id, backbone or fast-path), each under a small integer id
 * that doubles as the frame's ingress. Ids of removed locations are reused,
 * lowest first, so the id space stays dense (arrays, not maps, on the miss
 * path). The caller's handle (a Port, a Link, or just the name) rides along
 * and is what decisions list.
 *
 * Split horizon lives here too: which locations a flood from a given ingress
 * may reach (see `floodTargets`).
 */

/** Decides whether one more MAC may be learned at a location (a port's guard, port-security.ts). */
export interface LearnGuard {
  /** `learnedHere`: how many MACs are learned there now. */
  admitsNewMac(learnedHere: number): boolean;
}

export interface Location<P, L> {
  readonly id: number;
  readonly kind: 'port' | 'link';
  /** Port name, or the link's peer host id. */
  readonly name: string;
  linkKind: LinkKind | undefined;
  handle: P | L;
  /**
   * A retired link: being closed and draining what its peer had already
   * sent. It is still a valid ingress, but no longer a destination (rules and
   * learning do not resolve to it, floods skip it).
   */
  retired: boolean;
  /** A port's guard on learning (ports only). */
  guard: LearnGuard | undefined;
  /**
   * A link of the VXLAN mesh (vxlan-endpoint.ts): its VTEPs reach each other
   * directly, so nothing from one mesh link is relayed to another.
   */
  mesh: boolean;
}

export class ForwardingLocations<P, L> {
  readonly role: DaemonRole;
  readonly #locs: (Location<P, L> | undefined)[] = [];
  readonly #freeIds: number[] = [];
  readonly #portByName = new Map<string, number>();
  readonly #linkByPeer = new Map<string, number>();
  /** MACs a spoke relays link to link by rule (`relayTo`). */
  readonly #relayMacs = new Set<number>();

  constructor(role: DaemonRole) {
    this.role = role;
  }

  get(id: number): Location<P, L> | undefined {
    return this.#locs[id];
  }

  portId(name: string): number | undefined {
    return this.#portByName.get(name);
  }

  linkId(peer: string): number | undefined {
    return this.#linkByPeer.get(peer);
  }

  /** Add a port, or give an existing one a new handle; returns its id. */
  setPort(name: string, handle: P, guard?: LearnGuard): number {
    const id = this.#portByName.get(name);
    if (id !== undefined) {
      this.#locs[id]!.handle = handle;
      this.#locs[id]!.guard = guard;
      return id;
    }
    const loc = this.#add('port', name, undefined, handle);
    loc.guard = guard;
    this.#portByName.set(name, loc.id);
    return loc.id;
  }

  /** Add a link, or change an existing one's kind and handle; returns its id. */
  setLink(peer: string, kind: LinkKind, handle: L, mesh = false): number {
    const id = this.#linkByPeer.get(peer);
    if (id !== undefined) {
      const loc = this.#locs[id]!;
      loc.handle = handle;
      loc.linkKind = kind;
      loc.mesh = mesh;
      return id;
    }
    const loc = this.#add('link', peer, kind, handle);
    loc.mesh = mesh;
    this.#linkByPeer.set(peer, loc.id);
    return loc.id;
  }

  /** Remove a port; returns its former id, or undefined if there was none. */
  removePort(name: string): number | undefined {
    const id = this.#portByName.get(name);
    if (id === undefined) return undefined;
    this.#portByName.delete(name);
    this.#free(id);
    return id;
  }

  /** Remove a link; returns its former id, or undefined if there was none. */
  removeLink(peer: string): number | undefined {
    const id = this.#linkByPeer.get(peer);
    if (id === undefined) return undefined;
    this.#linkByPeer.delete(peer);
    this.#free(id);
    return id;
  }

  /**
   * Retire a link: its id stays a valid ingress (frames its peer sent before
   * the close still arrive) but `linkId(peer)` no longer finds it and floods
   * skip it; a new link to the same peer gets a new id. `free` it when the
   * link has closed. Returns its id, or undefined if there was none.
   */
  retireLink(peer: string): number | undefined {
    const id = this.#linkByPeer.get(peer);
    if (id === undefined) return undefined;
    this.#linkByPeer.delete(peer);
    this.#locs[id]!.retired = true;
    return id;
  }

  /** Forget a retired link's id; returns whether it was one. */
  freeRetired(id: number): boolean {
    if (this.#locs[id]?.retired !== true) return false;
    this.#free(id);
    return true;
  }

  /**
   * Whether a frame that came in over link `from` may go out over link `to`:
   * only on the hub, from one backbone link to another, never from one VXLAN
   * mesh link to another (the mesh's split horizon, as in Linux and OVS).
   */
  relays(from: Location<P, L>, to: Location<P, L>): boolean {
    return this.role === 'hub' && from.linkKind === 'backbone' && to.linkKind === 'backbone' && from.id !== to.id && !(from.mesh && to.mesh);
  }

  /**
   * Whether a rule may send a frame that came in over link `from` out over
   * link `to`. A hub: always (it is the backbone's relay, and a rule may
   * name a fast-path link or the trunk). A spoke: only frames to a MAC it
   * relays (`relayTo`: a VM that migrated away from it, whose frames still
   * arrive from peers whose rules are older than the cutover). Anything else
   * a spoke receives for a VM elsewhere was flooded to it — by a hub whose
   * rule for that VM named a link it no longer has (a failover) — and
   * reached that VM's host by the flood itself: sent on along a fast path,
   * it would arrive twice.
   */
  relaysByRule(from: Location<P, L>, to: Location<P, L>, dst: number): boolean {
    return this.role === 'hub' || from.kind !== 'link' || to.kind !== 'link' || this.#relayMacs.has(dst);
  }

  /** A spoke relays frames to `mac` link to link by rule from now on (its VM migrated away from here): `relaysByRule`. Returns whether it was not yet. */
  relayTo(mac: number): boolean {
    if (this.#relayMacs.has(mac)) return false;
    this.#relayMacs.add(mac);
    return true;
  }

  /** No longer (the migration that moved it is over). Returns whether it was relayed. */
  stopRelayTo(mac: number): boolean {
    return this.#relayMacs.delete(mac);
  }

  /**
   * Where a flood from `from` goes: every local port but the ingress; backbone
   * links only — all of them from a local port, the other ones from a backbone
   * link on the hub, none otherwise. Fast-path links carry no floods while
   * there is a backbone link: a frame must not reach a host both directly
   * and through the hub.
   *
   * Without a backbone link (the hub lost, no standby reached yet), a flood
   * from a local port goes over every fast-path link instead, so that hosts
   * joined by one still resolve each other (ARP) without the hub. The
   * receiving daemon delivers it to its ports only (a frame from a link is
   * never flooded on by a spoke), so this neither loops nor duplicates.
   */
  floodTargets(from: Location<P, L>): { ports: P[]; links: L[] } {
    const ports: P[] = [];
    const links: L[] = [];
    const fastPath: L[] = [];
    for (const loc of this.#locs) {
      if (loc === undefined || loc.id === from.id || loc.retired) continue;
      if (loc.kind === 'port') ports.push(loc.handle as P);
      else if (loc.linkKind === 'backbone' && (from.kind === 'port' || this.relays(from, loc))) links.push(loc.handle as L);
      else if (loc.linkKind === 'fast-path' && from.kind === 'port') fastPath.push(loc.handle as L);
    }
    // From a port, `links` holds every live backbone link: empty means there is none.
    if (from.kind === 'port' && links.length === 0) return { ports, links: fastPath };
    return { ports, links };
  }

  describe(id: number): string {
    const loc = this.#locs[id];
    if (loc === undefined) return `unknown ingress ${id}`;
    return loc.kind === 'port' ? `port ${loc.name}` : `${loc.linkKind} link ${loc.name}`;
  }

  #add(kind: 'port' | 'link', name: string, linkKind: LinkKind | undefined, handle: P | L): Location<P, L> {
    const id = this.#freeIds.pop() ?? this.#locs.length;
    const loc: Location<P, L> = { id, kind, name, linkKind, handle, retired: false, guard: undefined, mesh: false };
    this.#locs[id] = loc;
    return loc;
  }

  #free(id: number): void {
    this.#locs[id] = undefined;
    this.#freeIds.push(id);
    this.#freeIds.sort((a, b) => b - a); // pop() reuses the lowest id first
  }
}
