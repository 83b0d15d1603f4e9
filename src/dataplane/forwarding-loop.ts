import type { Frame } from '../common/frame.ts';
import { MIN_FRAME_BYTES } from '../common/frame.ts';
import { dstMacOf, srcMacOf } from '../common/mac.ts';
import type { Egress } from './egress.ts';
import type { ForwardingTable, Ingress } from './forwarding-table.ts';
import type { LinkSlot } from './link-slots.ts';
import type { Port } from './port.ts';
import type { TrafficCounters } from './traffic-counters.ts';

/**
 * The daemon's data path: every batch of frames from a port (a VM) or a link
 * (another daemon) goes through here, in stages.
 *
 *   port batch ─▶ check ─▶ learn src ─▶ count (src,dst) ─▶ resolve ─▶ deliver
 *   link batch ─▶ check ─▶ learn src ──────────────────────▶ resolve ─▶ deliver
 *
 *   check    a frame shorter than an Ethernet header is dropped and counted.
 *   learn    the source MAC lives behind the ingress (port or link).
 *   count    frames entering the overlay here feed the local traffic matrix;
 *            frames from a link were counted where they entered.
 *   resolve  one cached forwarding-table lookup (learning included) gives the
 *            egress set (controller rules first, then learned MACs, else
 *            flood along the backbone with split horizon).
 *   deliver  to ports (a port that cannot take GSO super-frames segments
 *            them itself) and to the links of link slots that are up
 *            (batched writes).
 */

/** What the forwarding loop drops, as the daemon counts it. */
export interface ForwardingCounters {
  /** Frames shorter than an Ethernet header, dropped. */
  runtFrames: number;
  /** Frames the forwarding table sent nowhere (drop rule, hairpin, split horizon, nowhere to flood). */
  droppedNoRoute: number;
}

export class ForwardingLoop {
  readonly #table: ForwardingTable<Port, LinkSlot>;
  readonly #traffic: TrafficCounters;
  readonly #stats: ForwardingCounters;

  constructor(table: ForwardingTable<Port, LinkSlot>, traffic: TrafficCounters, stats: ForwardingCounters) {
    this.#table = table;
    this.#traffic = traffic;
    this.#stats = stats;
  }

  /** Frames from a VM: they enter the overlay here, so they are counted here. */
  fromPort(ingress: Ingress, frames: readonly Frame[]): void {
    this.#forwardBatch(ingress, frames, this.#traffic);
  }

  /** Frames from another daemon: already counted where they entered. */
  fromLink(ingress: Ingress, frames: readonly Frame[]): void {
    this.#forwardBatch(ingress, frames, undefined);
  }

  #forwardBatch(ingress: Ingress, frames: readonly Frame[], counters: TrafficCounters | undefined): void {
    const table = this.#table;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const data = frame.data;
      if (data.length < MIN_FRAME_BYTES) {
        this.#stats.runtFrames++;
        continue;
      }
      const src = srcMacOf(data);
      const dst = dstMacOf(data);
      counters?.add(src, dst, data.length);
      this.#deliver(table.forward(src, dst, ingress), frame);
    }
  }

  #deliver(egress: Egress<Port, LinkSlot>, frame: Frame): void {
    if (egress.drop) {
      this.#stats.droppedNoRoute++;
      return;
    }
    const ports = egress.ports;
    for (let i = 0; i < ports.length; i++) ports[i]!.send(frame);
    const links = egress.links;
    for (let i = 0; i < links.length; i++) links[i]!.link?.send(frame);
  }
}
