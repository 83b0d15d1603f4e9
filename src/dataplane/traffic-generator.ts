/**
 * An L2 traffic generator on memory ports: the unprivileged stand-in for an
 * application running in the VMs. Each VM sends frames to its neighbours in
 * a communication pattern (the Patterns benchmark's graphs), paced per edge,
 * in both directions. Before the first round every VM broadcasts one frame,
 * as ARP would, so the overlay learns where each MAC lives.
 *
 * Frames carry EtherType 0x88b5 (IEEE local experimental) and a sequence
 * number; receivers count what arrives, so a run can tell frames lost.
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import { BROADCAST_MAC, writeMac, type Mac } from '../common/mac.ts';
import type { MemoryPort } from './memory-port.ts';

export const GENERATOR_ETHERTYPE = 0x88b5;

export interface GeneratorVm {
  name: string;
  port: MemoryPort;
}

export interface GeneratorStats {
  sentFrames: number;
  sentBytes: number;
  receivedFrames: number;
  receivedBytes: number;
}

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
  readonly stats: GeneratorStats = { sentFrames: 0, sentBytes: 0, receivedFrames: 0, receivedBytes: 0 };
  readonly #clock: Clock;
  readonly #vms: readonly GeneratorVm[];
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
    this.#vms = init.vms;
    this.#edges = init.edges;
    this.#bytesPerSecond = init.bytesPerSecond;
    this.#frameBytes = Math.max(64, Math.min(1514, init.frameBytes ?? 1000));
    this.#tickMs = init.tickMs ?? 20;
    for (const vm of this.#vms) {
      vm.port.onDeliver((frame) => {
        this.stats.receivedFrames++;
        this.stats.receivedBytes += frame.length;
      });
    }
  }

  /** Switch to another pattern (or rate) without stopping. */
  setPattern(edges: readonly (readonly [number, number])[], bytesPerSecond = this.#bytesPerSecond): void {
    this.#edges = edges;
    this.#bytesPerSecond = bytesPerSecond;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    if (!this.#announced) {
      for (const vm of this.#vms) vm.port.transmit(this.#frame(BROADCAST_MAC, vm.port.mac));
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
        this.#send(a, b.port.mac);
        this.#send(b, a.port.mac);
      }
    }
  }

  #send(from: GeneratorVm, to: Mac): void {
    const frame = this.#frame(to, from.port.mac);
    if (from.port.transmit(frame)) {
      this.stats.sentFrames++;
      this.stats.sentBytes += frame.length;
    }
  }

  #frame(dst: Mac, src: Mac): Buffer {
    const b = Buffer.alloc(this.#frameBytes);
    writeMac(dst, b, 0);
    writeMac(src, b, 6);
    b.writeUInt16BE(GENERATOR_ETHERTYPE, 12);
    b.writeUInt32BE(this.#seq++ >>> 0, 14);
    return b;
  }
}
