import type { Frame } from '../common/frame.ts';
import type { Mac } from '../common/mac.ts';
import { PortAlreadyStartedError, PortClosedError } from './errors.ts';
import { eachPlainFrame } from './offload.ts';
import { emptyPortStats, frameFitsPort, PortFailure, type Port, type PortStats, type ReceiveHandler } from './port.ts';

/**
 * An in-process VM NIC: the twin of the TAP port for tests and the
 * unprivileged demo. The "VM side" is this object's `transmit` (what the VM
 * sends into the overlay) and `onDeliver` (what the overlay delivers to the
 * VM). Frames from the VM are batched per microtask, as a TAP read batches
 * per readiness event, so the daemon sees the same shape from both.
 */
export class MemoryPort implements Port {
  readonly name: string;
  readonly kind = 'memory' as const;
  readonly mac: Mac;
  readonly mtu: number;
  readonly acceptsOffload = false;
  readonly stats: PortStats = emptyPortStats();

  #handler: ReceiveHandler | undefined;
  #pending: Frame[] = [];
  #flushScheduled = false;
  #deliver: ((frame: Buffer) => void) | undefined;
  readonly #failure = new PortFailure();
  #closed = false;

  constructor(init: { name: string; mac: Mac; mtu?: number }) {
    this.name = init.name;
    this.mac = init.mac;
    this.mtu = init.mtu ?? 1500;
  }

  start(handler: ReceiveHandler): void {
    if (this.#handler !== undefined) throw new PortAlreadyStartedError(this.name);
    if (this.#closed) throw new PortClosedError(this.name);
    this.#handler = handler;
    if (this.#pending.length > 0) this.#scheduleFlush();
  }

  /** Daemon → VM. */
  send(frame: Frame): void {
    if (this.#closed || this.#deliver === undefined) {
      this.stats.txDropped++;
      return;
    }
    if (!eachPlainFrame(frame, this.#deliverPlain)) {
      this.stats.txDropped++;
      this.stats.errors++;
    }
  }

  readonly #deliverPlain = (data: Buffer): void => {
    if (!frameFitsPort(data.length, this.mtu)) {
      this.stats.txDropped++;
      return;
    }
    this.stats.txFrames++;
    this.stats.txBytes += data.length;
    this.#deliver!(data);
  };

  onFailure(handler: (err: Error) => void): void {
    this.#failure.onFailure(handler);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#pending = [];
  }

  // --- the VM's side ---

  /** The VM transmits a frame into the overlay. Returns false if the port is closed or the frame is malformed. */
  transmit(data: Buffer): boolean {
    if (this.#closed) return false;
    if (!frameFitsPort(data.length, this.mtu)) {
      this.stats.errors++;
      return false;
    }
    this.stats.rxFrames++;
    this.stats.rxBytes += data.length;
    this.#pending.push({ data, offload: undefined });
    if (this.#handler !== undefined) this.#scheduleFlush();
    return true;
  }

  /** Register the VM's receive function (frames the overlay delivers to this VM). */
  onDeliver(fn: (frame: Buffer) => void): void {
    this.#deliver = fn;
  }

  /** Simulate the NIC disappearing (as a TAP device being deleted). */
  fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.stats.errors++;
    this.#failure.fail(err);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      const batch = this.#pending;
      this.#pending = [];
      if (batch.length > 0 && this.#handler !== undefined && !this.#closed) this.#handler(batch);
    });
  }
}
