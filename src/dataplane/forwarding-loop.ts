import type { Frame } from '../common/frame.ts';
import { MIN_FRAME_BYTES } from '../common/frame.ts';
import { dstMacOf, srcMacOf } from '../common/mac.ts';
import type { Egress } from './egress.ts';
import type { ForwardingTable, Ingress } from './forwarding-table.ts';
import type { LinkSlot } from './link-slots.ts';
import type { NativeFlows } from './native-flows.ts';
import type { PortOutlet } from './port-outlet.ts';
import { isFloodReason, type PortGuard } from './port-security.ts';
import type { TrafficCounters } from './traffic-counters.ts';

/**
 * The daemon's data path: every batch of frames from a port (a VM) or a link
 * (another daemon) goes through here, in stages.
 *
 *   port batch ─▶ check ─▶ source lock ─▶ resolve ─▶ flood limit ─▶ count (src,dst) ─▶ deliver
 *   link batch ─▶ check ─────────────────▶ resolve ─────────────────────────────────▶ deliver
 *
 *   check    a frame shorter than an Ethernet header is dropped and counted.
 *   lock     a port's guard (port-security.ts) drops a frame whose source
 *            MAC the port may not use (one compare for a one-MAC VM).
 *   resolve  one cached forwarding-table lookup gives the egress set
 *            (controller rules first, then learned MACs, else flood along
 *            the backbone with split horizon); on a miss it learns the
 *            source behind the ingress, unless the MAC lives elsewhere or
 *            the port's guard refuses one more MAC ('port-limit': dropped).
 *   flood    a port's flooded frames pass its token bucket or are dropped.
 *   count    frames entering the overlay here feed the local traffic matrix
 *            (only those admitted: a spoofing VM cannot bloat the report);
 *            frames from a link were counted where they entered.
 *   deliver  to ports (a port that cannot take GSO super-frames segments
 *            them itself; a held port queues them, port-outlet.ts) and to
 *            the links of link slots that are up (batched writes).
 *
 *   native   (with the native forwarder on) the decision is offered to it
 *            (native-flows.ts), which repeats it for the flow's next frames on
 *            its own thread; those never come here, and are counted there.
 *
 * Relay watch: for the MACs of VMs that migrated away (the daemon watches a
 * port's MAC from the moment it is held), frames that came in on a link and
 * went out on a link are relayed (a spoke's table relays link to link by
 * rule for these MACs only) and counted: the source's relay after a
 * cutover. One size test per link frame while nothing is watched.
 */

/** What the forwarding loop drops, as the daemon counts it. */
export interface ForwardingCounters {
  /** Frames shorter than an Ethernet header, dropped. */
  runtFrames: number;
  /** Frames the forwarding table sent nowhere (drop rule, hairpin, split horizon, nowhere to flood). */
  droppedNoRoute: number;
}

export class ForwardingLoop {
  readonly #table: ForwardingTable<PortOutlet, LinkSlot>;
  readonly #traffic: TrafficCounters;
  readonly #stats: ForwardingCounters;
  /** Destination MAC → frames relayed link to link (only MACs being watched). */
  readonly #relayed = new Map<number, number>();
  readonly #native: NativeFlows | undefined;

  constructor(table: ForwardingTable<PortOutlet, LinkSlot>, traffic: TrafficCounters, stats: ForwardingCounters, native?: NativeFlows) {
    this.#table = table;
    this.#traffic = traffic;
    this.#stats = stats;
    this.#native = native;
  }

  /** Frames from a VM, through its port's guard: they enter the overlay here, so they are counted here. */
  fromPort(ingress: Ingress, frames: readonly Frame[], guard: PortGuard): void {
    const table = this.#table;
    const traffic = this.#traffic;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const data = frame.data;
      if (data.length < MIN_FRAME_BYTES) {
        this.#stats.runtFrames++;
        continue;
      }
      const src = srcMacOf(data);
      if (!guard.admitsSource(src)) continue;
      const dst = dstMacOf(data);
      const egress = table.forward(src, dst, ingress);
      if (egress.reason === 'port-limit') continue; // counted by the guard
      if (!egress.drop && isFloodReason(egress.reason) && !guard.admitsFlood()) continue;
      traffic.add(src, dst, data.length);
      this.#deliver(egress, frame, ingress);
      this.#native?.offer(ingress, src, dst, egress, true, false);
    }
  }

  /** Frames from another daemon: already counted where they entered. */
  fromLink(ingress: Ingress, frames: readonly Frame[]): void {
    const table = this.#table;
    const watching = this.#relayed.size > 0;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const data = frame.data;
      if (data.length < MIN_FRAME_BYTES) {
        this.#stats.runtFrames++;
        continue;
      }
      const dst = dstMacOf(data);
      const src = srcMacOf(data);
      const egress = table.forward(src, dst, ingress);
      if (watching && egress.links.length > 0) {
        const n = this.#relayed.get(dst);
        if (n !== undefined) this.#relayed.set(dst, n + 1);
      }
      this.#deliver(egress, frame, ingress);
      this.#native?.offer(ingress, src, dst, egress, false, watching);
    }
  }

  /** Relay the frames to `mac` from a link to a link (a spoke's table refuses it otherwise), and count them, from now on. */
  watchRelay(mac: number): void {
    if (!this.#relayed.has(mac)) this.#relayed.set(mac, 0);
    this.#table.relayTo(mac);
    this.#native?.forwarder.flush(); // relays the forwarder carries would go uncounted
  }

  relayed(mac: number): number {
    return this.#relayed.get(mac) ?? 0;
  }

  forgetRelay(mac: number): void {
    this.#relayed.delete(mac);
    this.#table.stopRelayTo(mac);
  }

  #deliver(egress: Egress<PortOutlet, LinkSlot>, frame: Frame, ingress: Ingress): void {
    if (egress.drop) {
      this.#stats.droppedNoRoute++;
      return;
    }
    const ports = egress.ports;
    for (let i = 0; i < ports.length; i++) ports[i]!.send(frame, ingress);
    const links = egress.links;
    for (let i = 0; i < links.length; i++) links[i]!.link?.send(frame);
  }
}
