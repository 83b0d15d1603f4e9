/**
 * The typed face of the addon's PacketHandle (native/tap/packet_addon.cc,
 * packet_socket.cc): an AF_PACKET socket bound to one existing interface,
 * used by the packet-socket port (packet-port.ts).
 *
 * Reads are pushed: `start` puts the socket on the main loop; when it is
 * readable the addon reads up to 64 frames with one recvmmsg, each into a
 * slot of `slot` bytes, and calls `onBatch(buffer, records, count)` with the
 * captured bytes packed and `records` = [offset, captured, wire]*count (wire
 * > captured: the frame was longer than its slot). Frames the interface
 * transmits are not read (PACKET_IGNORE_OUTGOING; on older kernels skipped
 * by their packet type and counted). Writes are synchronous, non-blocking.
 * The interface deleted → `onError` once with a PacketPortError.
 */
import { PacketInterfaceNotFoundError, PacketPortError } from './errors.ts';
import { vnetTapAddon } from './tap-device.ts';

export type PacketBatchHandler = (buffer: Buffer, records: Uint32Array, count: number) => void;

export interface PacketSocketOptions {
  readonly ifname: string;
  /** Bytes read of each frame at most (64..65536). */
  readonly slot: number;
  /** Receive buffer (default 4 MiB; forced past rmem_max with CAP_NET_ADMIN). */
  readonly rcvBufBytes?: number | undefined;
  /** Send buffer (default 1 MiB). */
  readonly sndBufBytes?: number | undefined;
}

/** What the socket counted since it was opened (kernel drops: since the last call). */
export interface PacketSocketStats {
  outgoingSkipped: number;
  kernelDrops: number;
  downReads: number;
}

interface NativePacketHandle {
  readonly fd: number;
  readonly ifindex: number;
  readonly ignoreOutgoing: boolean;
  start(onBatch: PacketBatchHandler, onError: (errno: number, code: string, syscall: string) => void): void;
  write(frame: Uint8Array): number;
  stats(): [number, number, number];
  close(): void;
}

const ENODEV = 19;
const EPERM = 1;

export class PacketSocket {
  readonly #handle: NativePacketHandle;
  readonly ifname: string;

  private constructor(handle: NativePacketHandle, ifname: string) {
    this.#handle = handle;
    this.ifname = ifname;
  }

  /** Throws PacketInterfaceNotFoundError, or PacketPortError (with errno: EPERM without CAP_NET_RAW). */
  static open(opts: PacketSocketOptions): PacketSocket {
    if (!/^[^\s/\0]{1,15}$/.test(opts.ifname)) throw new PacketPortError(`not an interface name: ${JSON.stringify(opts.ifname)} (1-15 bytes, no space or slash)`);
    const addon = vnetTapAddon() as { PacketHandle?: new (o: Record<string, unknown>) => NativePacketHandle };
    if (addon.PacketHandle === undefined) throw new PacketPortError('the TAP addon predates packet-socket ports; rebuild it (`npm ci`)');
    const raw: Record<string, unknown> = { ifname: opts.ifname, slot: opts.slot };
    if (opts.rcvBufBytes !== undefined) raw.rcvBuf = opts.rcvBufBytes;
    if (opts.sndBufBytes !== undefined) raw.sndBuf = opts.sndBufBytes;
    try {
      return new PacketSocket(new addon.PacketHandle(raw), opts.ifname);
    } catch (err) {
      const e = err as { errno?: unknown; message?: unknown };
      const errno = typeof e.errno === 'number' ? e.errno : undefined;
      if (errno === ENODEV) throw new PacketInterfaceNotFoundError(opts.ifname, { cause: err });
      const hint = errno === EPERM ? ' (a packet socket needs CAP_NET_RAW)' : '';
      throw new PacketPortError(`cannot attach to interface ${opts.ifname}: ${String(e.message ?? err)}${hint}`, errno, { cause: err });
    }
  }

  get ifindex(): number {
    return this.#handle.ifindex;
  }

  /** Whether the kernel skips the interface's transmissions itself (PACKET_IGNORE_OUTGOING, Linux 4.20+). */
  get ignoreOutgoing(): boolean {
    return this.#handle.ignoreOutgoing;
  }

  /** Begin delivering read batches; once only. `onError` at most once, after which reads stop. */
  start(onBatch: PacketBatchHandler, onError: (err: PacketPortError) => void): void {
    this.#handle.start(onBatch, (errno, code, syscall) => {
      onError(new PacketPortError(`interface ${this.ifname} failed: ${syscall}: ${code}${errno === ENODEV ? ' (deleted)' : ''}`, errno));
    });
  }

  /** Sends one frame; bytes sent or -errno (the frame was not delivered). */
  write(frame: Uint8Array): number {
    return this.#handle.write(frame);
  }

  stats(): PacketSocketStats {
    const [outgoingSkipped, kernelDrops, downReads] = this.#handle.stats();
    return { outgoingSkipped, kernelDrops, downReads };
  }

  /** Stops reading and closes the socket. Idempotent. */
  close(): void {
    this.#handle.close();
  }
}
