import type { Frame } from '../common/frame.ts';
import { MIN_FRAME_BYTES } from '../common/frame.ts';
import type { Mac } from '../common/mac.ts';
import type { PacketPortCounters } from '../control/daemon-control.ts';

/**
 * A VM's network interface as the daemon sees it. Two implementations share
 * this interface (and one compliance suite, test/dataplane/port-compliance.ts):
 * a Linux TAP device (`tap-port.ts`), QEMU's `-netdev stream` over a Unix
 * socket (`stream-port.ts`), an AF_PACKET socket on an interface the daemon
 * does not own, e.g. a TAP device QEMU holds (`packet-port.ts`), and an
 * in-process NIC (`memory-port.ts`).
 *
 * Direction words are the daemon's: `send` delivers a frame *to* the VM;
 * frames the VM transmits arrive through the `receive` handler, in batches.
 *
 * Frame sizes: a frame goes to the VM only if it is at least an Ethernet
 * header long and at most the MTU plus an Ethernet header and one VLAN tag
 * (`frameFitsPort`) once any offload work is done; a GSO super-frame handed
 * as it is to a port that accepts offload is the exception (the VM's kernel
 * segments it). Everything else is dropped and counted in txDropped.
 */
export interface PortStats {
  rxFrames: number; // frames from the VM handed to the receive handler
  rxBytes: number;
  txFrames: number; // frames from the daemon delivered to the VM
  txBytes: number;
  /** Frames from the daemon not delivered: port closed or failed, runt, over the MTU, unusable offload metadata, device queue full. */
  txDropped: number;
  /** Malformed frames in either direction (runts from the VM, metadata that cannot be applied, frames the device refused) and device failures. */
  errors: number;
}

export type PortKind = 'tap' | 'memory' | 'stream' | 'packet';

/** Frames from the VM: a non-empty batch, in the order the VM sent them, none shorter than an Ethernet header. */
export type ReceiveHandler = (frames: readonly Frame[]) => void;

export interface Port {
  readonly name: string;
  readonly kind: PortKind;
  /** The VM's MAC (the address its frames carry as source). */
  readonly mac: Mac;
  readonly mtu: number;
  /** Whether this port accepts frames with offload metadata (GSO super-frames) as they are. */
  readonly acceptsOffload: boolean;
  readonly stats: PortStats;
  /** What a packet port (packet-port.ts) dropped before the daemon saw a frame, and the kernel's drops; read now. Other ports have none. */
  readonly packetStats?: Readonly<PacketPortCounters>;
  /**
   * Begin delivering the VM's frames to `handler` (frames the VM sent before
   * are delivered first, as far as the device queued them). Once only: a
   * second call throws PortAlreadyStartedError, a call after close
   * PortClosedError.
   */
  start(handler: ReceiveHandler): void;
  /**
   * Deliver one frame to the VM. Takes any frame: a port that cannot hand
   * offload metadata to its VM (`acceptsOffload` false) completes checksums and
   * segments GSO super-frames in software (`offload.ts`). Never throws; a frame
   * that cannot be delivered is counted in txDropped.
   */
  send(frame: Frame): void;
  /**
   * Called once when the port fails for good (its device removed); the daemon
   * drops the port. Not called for `close()`. Registered after the failure,
   * the handler is called at once (in a microtask).
   */
  onFailure(handler: (err: Error) => void): void;
  /** Stop: no more frames to the handler, sends are counted drops. Idempotent. */
  close(): Promise<void>;
}

export function emptyPortStats(): PortStats {
  return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0, errors: 0 };
}

/**
 * A port's failure, for implementations: recorded once and reported once,
 * to the handler registered before it, or (in a microtask) to one registered
 * after it, as `Port.onFailure` promises.
 */
export class PortFailure {
  #handler: ((err: Error) => void) | undefined;
  #error: Error | undefined;
  #reported = false;

  /** The failure, once there is one. */
  get error(): Error | undefined {
    return this.#error;
  }

  onFailure(handler: (err: Error) => void): void {
    this.#handler = handler;
    if (this.#error !== undefined && !this.#reported) queueMicrotask(() => this.#report());
  }

  /** Record `err` and report it; false (nothing done) if a failure was already recorded. */
  fail(err: Error): boolean {
    if (this.#error !== undefined) return false;
    this.#error = err;
    this.#report();
    return true;
  }

  #report(): void {
    if (this.#reported || this.#error === undefined || this.#handler === undefined) return;
    this.#reported = true;
    this.#handler(this.#error);
  }
}

/** What a frame may carry beyond the MTU: the Ethernet header (14 bytes) and one VLAN tag (4). */
export const PORT_FRAME_OVERHEAD = 18;

/** Whether a plain frame of `length` bytes may go to (or come from) a VM whose interface has this MTU. */
export function frameFitsPort(length: number, mtu: number): boolean {
  return length >= MIN_FRAME_BYTES && length <= mtu + PORT_FRAME_OVERHEAD;
}
