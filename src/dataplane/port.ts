import type { Frame } from '../common/frame.ts';
import type { Mac } from '../common/mac.ts';

/**
 * A VM's network interface as the daemon sees it. Two implementations share
 * this interface (and one compliance suite, test/dataplane/port-compliance.ts):
 * a Linux TAP device (`tap-port.ts`) and an in-process NIC (`memory-port.ts`).
 *
 * Direction words are the daemon's: `send` delivers a frame *to* the VM;
 * frames the VM transmits arrive through the `receive` handler, in batches.
 */
export interface PortStats {
  rxFrames: number; // frames from the VM into the daemon
  rxBytes: number;
  txFrames: number; // frames from the daemon to the VM
  txBytes: number;
  txDropped: number;
  errors: number;
}

export type PortKind = 'tap' | 'memory';

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
  /** Begin delivering the VM's frames to `handler`; once only. */
  start(handler: ReceiveHandler): void;
  /**
   * Deliver one frame to the VM. Takes any frame: a port that cannot hand
   * offload metadata to its VM (`acceptsOffload` false) completes checksums and
   * segments GSO super-frames in software (`offload.ts`). Never throws; a frame
   * that cannot be delivered is counted in txDropped.
   */
  send(frame: Frame): void;
  /** Called once when the port fails for good (device removed, closed); the daemon drops the port. */
  onFailure(handler: (err: Error) => void): void;
  close(): Promise<void>;
}

export function emptyPortStats(): PortStats {
  return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0, errors: 0 };
}
