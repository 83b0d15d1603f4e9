import type { Clock, TimerHandle } from '../common/clock.ts';
import type { Frame } from '../common/frame.ts';
import type { Logger } from '../common/logger.ts';
import type { DaemonEvent, LinkKind } from '../control/daemon-control.ts';
import { Backoff, DEFAULT_REDIAL_POLICY, type BackoffPolicy } from './backoff.ts';
import type { ForwardingTable, Ingress } from './forwarding-table.ts';
import type { Link } from './link-interface.ts';
import type { PortOutlet } from './port-outlet.ts';
import type { Transport } from './transport.ts';
import { HubRotation, type HubAddress } from './hub-rotation.ts';

/**
 * The daemon's links to its peers: one slot per peer host, whatever the
 * link's kind, holding the link while it is up.
 *
 *   outbound  `dial` keeps a link to a peer up until `remove`: it dials, and
 *             when the link drops (or a dial fails) redials with backoff. A
 *             spoke's slot for the hub is one; so is each fast-path link this
 *             host dials. A hub whose id was not configured is learned from
 *             its hello. With a standby hub (`dialHubs`), the slot dials the
 *             hubs in turn (hub-rotation.ts: the next hub at once when the
 *             link is lost, backoff only after a whole round) and takes the
 *             id of the hub it reached.
 *   inbound   `adoptInbound` takes a link a peer dialled. One link per peer:
 *             if both sides dialled at once, the lower host id's outbound
 *             link wins on both ends, so the two sides agree; an inbound
 *             link that beats our own dial stops the dialling.
 *   attach    an up link joins the forwarding table (its frames go to
 *             `onFrames`) and a link-up event is emitted; when it ends it
 *             leaves the table, failures are counted by error code, and a
 *             link-down event is emitted.
 *   detach    a link we close (removed, or replaced by the peer's dial) is
 *             retired in the table at once — nothing more is sent to it, rules
 *             fall through to the backbone — but drains: the frames its peer
 *             sent before it saw our goodbye are still forwarded, from the
 *             same ingress, until the link has closed (link.ts).
 */

/** Link failures, as the daemon counts them. */
export interface LinkSlotCounters {
  /** Links that ended with an error (decode error, timeout, peer vanished), by error code. */
  linkFailures: number;
  linkFailuresByCode: Record<string, number>;
  /** Bytes on links that did not decode (summed over links, closed ones included). */
  decodeErrors: number;
}

export interface LinkSlot {
  peer: string;
  kind: LinkKind;
  link: Link | undefined;
  direction: 'outbound' | 'inbound';
  reconnects: number;
  /** Outbound slots keep redialling until removed. */
  dialer: Dialer | undefined;
  /** A VXLAN VTEP's link: part of the mesh, never relayed to another mesh link (forwarding-locations.ts). */
  mesh?: boolean;
  /** Why the link last went down or a dial last failed (wall-clock ms). */
  lastError?: { code: string; message: string; atMs: number } | undefined;
}

interface Dialer {
  address: { host: string; port: number };
  backoff: Backoff;
  /** A spoke's backbone slot with more than one hub to choose from. */
  rotation: HubRotation | undefined;
  timer: TimerHandle | undefined;
  abort: AbortController | undefined;
}

export interface LinkSlotsComponents {
  hostId: string;
  transport: Transport;
  clock: Clock;
  logger: Logger;
  table: ForwardingTable<PortOutlet, LinkSlot>;
  stats: LinkSlotCounters;
  /** Frames received on a link, with the ingress the table gave it. */
  onFrames: (ingress: Ingress, frames: readonly Frame[]) => void;
  emit: (event: DaemonEvent) => void;
}

export class LinkSlots {
  readonly #c: LinkSlotsComponents;
  readonly #reconnect: BackoffPolicy;
  /** Keyed by peer host id: at most one link per peer. */
  readonly #slots = new Map<string, LinkSlot>();
  #closed = false;

  constructor(components: LinkSlotsComponents, reconnect: BackoffPolicy = DEFAULT_REDIAL_POLICY) {
    this.#c = components;
    this.#reconnect = reconnect;
  }

  get(peer: string): LinkSlot | undefined {
    return this.#slots.get(peer);
  }

  values(): IterableIterator<LinkSlot> {
    return this.#slots.values();
  }

  /** Take a link a peer dialled (see the header for which link wins when both dialled). */
  adoptInbound(link: Link): void {
    if (this.#closed) {
      void link.close('daemon shutting down');
      return;
    }
    const peer = link.peerHost;
    const existing = this.#slots.get(peer);
    if (existing?.link !== undefined) {
      const keepInbound = existing.direction === 'outbound' ? peer < this.#c.hostId : true;
      if (!keepInbound) {
        this.#discard(link, 'duplicate link: keeping the one dialled by the lower host id');
        return;
      }
      this.#detach(existing, 'replaced by a new inbound link');
    }
    const slot: LinkSlot = existing ?? { peer, kind: link.kind, link: undefined, direction: 'inbound', reconnects: 0, dialer: undefined };
    if (existing !== undefined && existing.link === undefined && existing.dialer !== undefined) {
      // We were dialling this peer and it dialled us first: take its link and stop dialling.
      this.#stopDialer(existing, true);
    }
    slot.direction = 'inbound';
    slot.kind = link.kind;
    this.#slots.set(peer, slot);
    this.#attach(slot, link);
  }

  /**
   * Take a link that needs no dialling (a VXLAN VTEP's, up while configured):
   * an outbound slot that is never redialled, in the VXLAN mesh. A link already up to that peer
   * stays; the new one is closed.
   */
  attachConfigured(link: Link): void {
    if (this.#closed || this.#slots.get(link.peerHost)?.link !== undefined) {
      void link.close(this.#closed ? 'daemon shutting down' : 'a link to this peer is already up');
      return;
    }
    const slot: LinkSlot = { peer: link.peerHost, kind: link.kind, link: undefined, direction: 'outbound', reconnects: 0, dialer: undefined, mesh: true };
    this.#slots.set(slot.peer, slot);
    this.#attach(slot, link);
  }

  /** Keep an outbound link to `peer` up until `remove`. With `peerUnknown`, the peer's id is learned from its hello. */
  dial(peer: string, kind: LinkKind, address: { host: string; port: number }, peerUnknown = false): void {
    const slot: LinkSlot = {
      peer,
      kind,
      link: undefined,
      direction: 'outbound',
      reconnects: 0,
      dialer: { address, backoff: new Backoff(this.#reconnect), rotation: undefined, timer: undefined, abort: undefined },
    };
    this.#slots.set(peer, slot);
    void this.#attempt(slot, peerUnknown);
  }

  /**
   * Keep one backbone link up to one of `hubs` (primary first): the slot is
   * keyed by the hub it last reached (or the first hub's id, or "hub", before
   * that). Returns the rotation, for its figures.
   */
  dialHubs(hubs: readonly HubAddress[]): HubRotation {
    const rotation = new HubRotation(hubs, this.#reconnect);
    const first = rotation.current;
    const slot: LinkSlot = {
      peer: first.id ?? 'hub',
      kind: 'backbone',
      link: undefined,
      direction: 'outbound',
      reconnects: 0,
      dialer: { address: first, backoff: new Backoff(this.#reconnect), rotation, timer: undefined, abort: undefined },
    };
    this.#slots.set(slot.peer, slot);
    void this.#attempt(slot, first.id === undefined);
    return rotation;
  }

  /**
   * Stop dialling `slot`'s peer, close its link and forget it. A dial already
   * in its handshake is let finish and then closed with a goodbye (#attempt →
   * #discard): aborting it could cut a link the peer has already opened and
   * is sending on (a listener opens as soon as it answers the hello).
   */
  remove(slot: LinkSlot, reason: string): void {
    this.#stopDialer(slot, false);
    this.#detach(slot, reason);
    if (this.#slots.get(slot.peer) === slot) this.#slots.delete(slot.peer);
  }

  /** Stop dialling and close every link (no redials, no more inbound links). */
  async close(reason: string): Promise<void> {
    this.#closed = true;
    for (const slot of this.#slots.values()) {
      this.#stopDialer(slot, true);
      const link = slot.link;
      slot.link = undefined;
      if (link !== undefined) await link.close(reason).catch(() => undefined);
    }
    this.#slots.clear();
  }

  #attach(slot: LinkSlot, link: Link): void {
    slot.link = link;
    const ingress = this.#c.table.addLink(slot.peer, slot.kind, slot, slot.mesh === true);
    link.onFrames((frames) => this.#c.onFrames(ingress, frames));
    link.onClose((err) => this.#onLinkClosed(slot, link, ingress, err));
    this.#c.logger.info({ peer: slot.peer, kind: slot.kind, direction: slot.direction }, 'link up');
    this.#c.emit({ type: 'link-up', peer: slot.peer, kind: slot.kind });
  }

  /**
   * Close a link that never joined the table (the loser of a dial race, a dial
   * no longer wanted). Whatever the peer sent on it before it saw our goodbye
   * still goes on, as if it came over the link we kept to that peer.
   */
  #discard(link: Link, reason: string): void {
    const peer = link.peerHost;
    // No link to that peer left (a fast path removed while its dial completed): the discarded link gets an
    // ingress of its own, retired at once (nothing is sent to it) and released when it has drained.
    let own: Ingress | undefined;
    if (this.#c.table.linkIngress(peer) === undefined) {
      const slot: LinkSlot = { peer, kind: link.kind, link, direction: 'outbound', reconnects: 0, dialer: undefined };
      own = this.#c.table.addLink(peer, link.kind, slot);
      this.#c.table.retireLink(peer);
      link.onClose(() => this.#c.table.releaseLink(own!));
    }
    link.onFrames((frames) => {
      const ingress = own ?? this.#c.table.linkIngress(peer);
      if (ingress !== undefined) this.#c.onFrames(ingress, frames);
    });
    void link.close(reason);
  }

  #detach(slot: LinkSlot, reason: string): void {
    const link = slot.link;
    if (link === undefined) return;
    slot.link = undefined;
    this.#c.table.retireLink(slot.peer); // released when the link has drained and closed (#onLinkClosed)
    void link.close(reason);
    this.#c.emit({ type: 'link-down', peer: slot.peer, kind: slot.kind, reason });
  }

  #onLinkClosed(slot: LinkSlot, link: Link, ingress: Ingress, err: Error | undefined): void {
    if (slot.link !== link) {
      // A link we detached (removed or replaced): it has drained; its ingress goes.
      this.#c.table.releaseLink(ingress);
      return;
    }
    slot.link = undefined;
    this.#c.table.removeLink(slot.peer);
    const reason = err?.message ?? 'closed';
    const stats = this.#c.stats;
    stats.decodeErrors += link.stats.decodeErrors;
    if (err !== undefined) {
      const code = (err as { code?: string }).code ?? 'unknown';
      stats.linkFailures++;
      stats.linkFailuresByCode[code] = (stats.linkFailuresByCode[code] ?? 0) + 1;
      slot.lastError = { code, message: reason, atMs: this.#c.clock.wallNow() };
    }
    this.#c.logger.warn({ peer: slot.peer, kind: slot.kind, reason, code: (err as { code?: string } | undefined)?.code }, 'link down');
    this.#c.emit({ type: 'link-down', peer: slot.peer, kind: slot.kind, reason });
    if (this.#closed) return;
    if (slot.dialer !== undefined) this.#scheduleDial(slot);
    else if (this.#slots.get(slot.peer) === slot) this.#slots.delete(slot.peer);
  }

  async #attempt(slot: LinkSlot, peerUnknown = false): Promise<void> {
    const dialer = slot.dialer;
    if (dialer === undefined || this.#closed) return;
    dialer.timer = undefined;
    const abort = new AbortController();
    dialer.abort = abort;
    try {
      const expectedPeer = dialer.rotation !== undefined ? dialer.rotation.current.id : peerUnknown ? undefined : slot.peer;
      const link = await this.#c.transport.connect({
        host: dialer.address.host,
        port: dialer.address.port,
        kind: slot.kind,
        ...(expectedPeer === undefined ? {} : { expectedPeer }),
        signal: abort.signal,
      });
      if (slot.dialer !== dialer || this.#closed || slot.link !== undefined) {
        this.#discard(link, 'no longer wanted');
        return;
      }
      if (link.peerHost !== slot.peer) {
        // The hub's id was not configured (learned from its hello), or the rotation reached another hub.
        if (this.#slots.get(slot.peer) === slot) this.#slots.delete(slot.peer);
        slot.peer = link.peerHost;
        this.#slots.set(slot.peer, slot);
      }
      dialer.backoff.reset();
      dialer.rotation?.learnId(link.peerHost);
      dialer.rotation?.up();
      this.#attach(slot, link);
    } catch (err) {
      if (slot.dialer !== dialer || this.#closed) return;
      slot.lastError = { code: (err as { code?: string }).code ?? 'unknown', message: (err as Error).message, atMs: this.#c.clock.wallNow() };
      this.#c.logger.warn({ peer: slot.peer, address: dialer.address, err: (err as Error).message, code: (err as { code?: string }).code }, 'dial failed');
      this.#scheduleDial(slot, peerUnknown);
    } finally {
      if (dialer.abort === abort) dialer.abort = undefined; // a failover may have started the next dial already
    }
  }

  #scheduleDial(slot: LinkSlot, peerUnknown = false): void {
    const dialer = slot.dialer;
    if (dialer === undefined || dialer.timer !== undefined || this.#closed) return;
    slot.reconnects++;
    if (dialer.rotation !== undefined) {
      const { hub, delayMs } = dialer.rotation.lost();
      dialer.address = hub;
      if (delayMs === 0) {
        this.#c.logger.info({ peer: slot.peer, next: hub.id, address: { host: hub.host, port: hub.port } }, 'hub lost: dialling the next hub');
        void this.#attempt(slot, hub.id === undefined);
        return;
      }
      dialer.timer = this.#c.clock.setTimeout(() => void this.#attempt(slot, hub.id === undefined), delayMs);
      return;
    }
    const delay = dialer.backoff.next();
    dialer.timer = this.#c.clock.setTimeout(() => void this.#attempt(slot, peerUnknown), delay);
  }

  #stopDialer(slot: LinkSlot, abortHandshake: boolean): void {
    const d = slot.dialer;
    if (d === undefined) return;
    slot.dialer = undefined;
    d.timer?.cancel();
    if (abortHandshake) d.abort?.abort();
  }
}
