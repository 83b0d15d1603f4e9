/**
 * An L2 traffic generator on memory ports: the unprivileged stand-in for an
 * application running in the VMs. Each VM sends frames to its neighbours in
 * a communication pattern (the Patterns benchmark's graphs), paced per edge,
 * in both directions. Before the first round every VM broadcasts one frame,
 * as ARP would, so the overlay learns where each MAC lives.
 *
 * Frames carry EtherType 0x88b5 (IEEE local experimental), a generator-wide
 * sequence number (bytes 14–17) and a per-flow one (bytes 18–21: the flow is
 * the ordered pair source MAC, destination MAC, numbered from 0 by what was
 * handed to the source's port). Receivers count what arrives, and per flow
 * what never did:
 *
 *   lost   a frame of a flow that had not arrived when a later frame of the
 *          same flow did (a gap in the flow's sequence). A frame that turns
 *          up after all (reordered) is taken back out of `lostFrames` and
 *          counted in `lateFrames`. Frames still in flight, and the tail of a
 *          flow that stopped, are not counted: only a later arrival proves a
 *          gap.
 *
 * A VM moves (live migration): `pause` stops it sending (its guest is
 * paused), `receiveOn` counts what the overlay delivers to its new port from
 * the moment that port exists, and `movePort` makes it send from the new
 * port; `resume` lets it send again. Its flows keep their sequence numbers
 * across the move, so a frame lost at the cutover shows as a gap.
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import { BROADCAST_MAC, dstMacOf, srcMacOf, writeMac, type Mac } from '../common/mac.ts';
import type { MemoryPort } from './memory-port.ts';

export const GENERATOR_ETHERTYPE = 0x88b5;

export interface GeneratorVm {
  name: string;
  port: MemoryPort;
}

export interface GeneratorStats {
  sentFrames: number;
  sentBytes: number;
  /** Every generator frame the overlay delivered to a VM port (flooded copies included). */
  receivedFrames: number;
  receivedBytes: number;
  /** Frames missing from their flow behind a later frame of that flow that arrived (see the header). */
  lostFrames: number;
  /** Frames that arrived after a later frame of their flow (each was counted lost, then taken back). */
  lateFrames: number;
  /** Frames of a flow whose sequence number had arrived already. */
  duplicateFrames: number;
}

/** What a receiver knows of one flow (source MAC → destination MAC). */
interface FlowState {
  /** The sequence number expected next. */
  next: number;
  /** Sequence numbers behind `next` that have not arrived (the newest MAX_TRACKED_GAPS of them). */
  missing: Set<number>;
  /** This flow's share of `lostFrames`. */
  lost: number;
}

/** Frames lost on one flow (source MAC → destination MAC). */
export interface FlowLoss {
  src: Mac;
  dst: Mac;
  lost: number;
}

/** Missing sequence numbers remembered per flow; older ones stay counted lost, and arriving after all they count as duplicates. */
const MAX_TRACKED_GAPS = 4096;

/** A VM as the generator drives it: the port it sends from now, and whether it is paused. */
interface VmEntry {
  readonly name: string;
  port: MemoryPort;
  paused: boolean;
}

/** Where the per-flow sequence number sits in a generator frame. */
const FLOW_SEQ_OFFSET = 18;

export interface PatternTrafficInit {
  vms: readonly GeneratorVm[];
  /** Undirected edges between indexes of `vms`. */
  edges: readonly (readonly [number, number])[];
  /** Per direction of each edge. */
  bytesPerSecond: number;
  frameBytes?: number;
  tickMs?: number;
}

export class PatternTraffic {
  readonly stats: GeneratorStats = { sentFrames: 0, sentBytes: 0, receivedFrames: 0, receivedBytes: 0, lostFrames: 0, lateFrames: 0, duplicateFrames: 0 };
  readonly #clock: Clock;
  readonly #vms: readonly VmEntry[];
  /** Next per-flow sequence number to send, by flow key. */
  readonly #sendSeq = new Map<string, number>();
  /** What has arrived, by flow key. */
  readonly #flows = new Map<string, FlowState>();
  readonly #listening = new WeakSet<MemoryPort>();
  #edges: readonly (readonly [number, number])[];
  #bytesPerSecond: number;
  readonly #frameBytes: number;
  readonly #tickMs: number;
  #timer: TimerHandle | undefined;
  #credit = 0;
  #seq = 0;
  #announced = false;

  constructor(components: { clock: Clock }, init: PatternTrafficInit) {
    this.#clock = components.clock;
    this.#vms = init.vms.map((vm) => ({ name: vm.name, port: vm.port, paused: false }));
    this.#edges = init.edges;
    this.#bytesPerSecond = init.bytesPerSecond;
    this.#frameBytes = Math.max(64, Math.min(1514, init.frameBytes ?? 1000));
    this.#tickMs = init.tickMs ?? 20;
    for (const vm of this.#vms) this.receiveOn(vm.port);
  }

  /**
   * Count what the overlay delivers to `port` (a VM's NIC, e.g. the port an
   * arriving VM gets at its migration's destination, before it runs there).
   * Idempotent per port.
   */
  receiveOn(port: MemoryPort): void {
    if (this.#listening.has(port)) return;
    this.#listening.add(port);
    port.onDeliver((frame) => this.#received(port.mac, frame));
  }

  /** VM `name` sends from `port` from now on (its NIC after a migration), and what reaches `port` is counted. */
  movePort(name: string, port: MemoryPort): void {
    const vm = this.#entry(name);
    this.receiveOn(port);
    vm.port = port;
  }

  /** VM `name` stops sending (its guest is paused); frames to it are still sent. Idempotent. */
  pause(name: string): void {
    this.#entry(name).paused = true;
  }

  /** VM `name` sends again. Idempotent. */
  resume(name: string): void {
    this.#entry(name).paused = false;
  }

  /** The flows that lost frames, and how many each (they sum to `stats.lostFrames`). */
  lossByFlow(): FlowLoss[] {
    const out: FlowLoss[] = [];
    for (const [key, f] of this.#flows) {
      if (f.lost === 0) continue;
      const [src, dst] = key.split('>').map(Number) as [Mac, Mac];
      out.push({ src, dst, lost: f.lost });
    }
    return out;
  }

  /** The port VM `name` sends from now. */
  portOf(name: string): MemoryPort | undefined {
    return this.#vms.find((v) => v.name === name)?.port;
  }

  /** Switch to another pattern (or rate) without stopping. */
  setPattern(edges: readonly (readonly [number, number])[], bytesPerSecond = this.#bytesPerSecond): void {
    this.#edges = edges;
    this.#bytesPerSecond = bytesPerSecond;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    if (!this.#announced) {
      for (const vm of this.#vms) vm.port.transmit(this.#frame(BROADCAST_MAC, vm.port.mac, 0));
      this.#announced = true;
    }
    this.#timer = this.#clock.setInterval(() => this.#tick(), this.#tickMs);
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #tick(): void {
    this.#credit += (this.#bytesPerSecond * this.#tickMs) / 1000;
    const frames = Math.floor(this.#credit / this.#frameBytes);
    if (frames <= 0) return;
    this.#credit -= frames * this.#frameBytes;
    for (const [i, j] of this.#edges) {
      const a = this.#vms[i];
      const b = this.#vms[j];
      if (a === undefined || b === undefined) continue;
      for (let k = 0; k < frames; k++) {
        if (!a.paused) this.#send(a, b.port.mac);
        if (!b.paused) this.#send(b, a.port.mac);
      }
    }
  }

  #send(from: VmEntry, to: Mac): void {
    const key = flowKey(from.port.mac, to);
    const flowSeq = this.#sendSeq.get(key) ?? 0;
    const frame = this.#frame(to, from.port.mac, flowSeq);
    // A frame the port refused (closed) was never sent: its number is used again.
    if (from.port.transmit(frame)) {
      this.#sendSeq.set(key, (flowSeq + 1) >>> 0);
      this.stats.sentFrames++;
      this.stats.sentBytes += frame.length;
    }
  }

  #received(own: Mac, frame: Buffer): void {
    this.stats.receivedFrames++;
    this.stats.receivedBytes += frame.length;
    if (frame.length < FLOW_SEQ_OFFSET + 4 || frame.readUInt16BE(12) !== GENERATOR_ETHERTYPE) return;
    // Only frames addressed to this VM count towards its flows (not broadcasts, not flooded copies for others).
    if (dstMacOf(frame) !== own) return;
    const key = flowKey(srcMacOf(frame), own);
    const seq = frame.readUInt32BE(FLOW_SEQ_OFFSET);
    let flow = this.#flows.get(key);
    if (flow === undefined) {
      flow = { next: 0, missing: new Set(), lost: 0 };
      this.#flows.set(key, flow);
    }
    if (seq >= flow.next) {
      this.stats.lostFrames += seq - flow.next;
      flow.lost += seq - flow.next;
      for (let s = Math.max(flow.next, seq - MAX_TRACKED_GAPS); s < seq; s++) flow.missing.add(s);
      if (flow.missing.size > MAX_TRACKED_GAPS) {
        // Forget the oldest gaps (a Set iterates in insertion order, oldest first).
        for (const s of flow.missing) {
          if (flow.missing.size <= MAX_TRACKED_GAPS) break;
          flow.missing.delete(s);
        }
      }
      flow.next = seq + 1;
    } else if (flow.missing.delete(seq)) {
      this.stats.lostFrames--;
      flow.lost--;
      this.stats.lateFrames++;
    } else {
      this.stats.duplicateFrames++;
    }
  }

  #entry(name: string): VmEntry {
    const vm = this.#vms.find((v) => v.name === name);
    if (vm === undefined) throw new RangeError(`the traffic generator has no VM ${name}`);
    return vm;
  }

  #frame(dst: Mac, src: Mac, flowSeq: number): Buffer {
    const b = Buffer.alloc(this.#frameBytes);
    writeMac(dst, b, 0);
    writeMac(src, b, 6);
    b.writeUInt16BE(GENERATOR_ETHERTYPE, 12);
    b.writeUInt32BE(this.#seq++ >>> 0, 14);
    b.writeUInt32BE(flowSeq >>> 0, FLOW_SEQ_OFFSET);
    return b;
  }
}

function flowKey(src: Mac, dst: Mac): string {
  return `${src}>${dst}`;
}
