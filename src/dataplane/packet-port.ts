/**
 * A VM's NIC reached through an interface the daemon does not own: an
 * AF_PACKET socket bound to an existing Linux interface. The case it is made
 * for is a QEMU guest on a TAP device: QEMU holds the TAP's file
 * (`-netdev tap,ifname=IF,script=no,downscript=no`), so the daemon cannot
 * read it; it sits on the host side of that interface instead. Frames QEMU
 * writes to the TAP arrive on the interface and are read here; frames sent
 * here are transmitted on the interface, which hands them to QEMU.
 *
 * Data path, in stages:
 *   VM → daemon   native batch (packet-socket.ts: one recvmmsg of up to 64,
 *                 records of offset, captured length, wire length) → size
 *                 (packet-frame-check.ts: runts and frames over MTU + 18,
 *                 which the socket truncated, dropped with a PacketFrameError,
 *                 counted) → address lock (source MAC, IPv4/ARP/IPv6 source;
 *                 PacketSourceError, counted) → watchers → the receive handler,
 *                 once per batch. Frames the interface transmits (ours
 *                 included) are never read: PACKET_IGNORE_OUTGOING, or per
 *                 frame on kernels before 4.20 (`packetStats.outgoingSkipped`).
 *   daemon → VM   software offload (the socket takes plain frames) → size
 *                 check → non-blocking send; a full queue or a down interface
 *                 is a counted drop (txDropped)
 *   failure       the interface deleted → one PacketPortError to the failure
 *                 handler; reads stop; the daemon drops the port
 *
 * Why a port type of its own and not a TAP port option: nothing of a TAP
 * port's machinery applies (no queue to attach or hand over, no vnet_hdr,
 * no native forwarder on the fd, the interface is not the daemon's to
 * create or configure), and it works on any interface, a veth as well.
 *
 * The kernel holds a frame sent here to the interface's MTU + 14 (+ 4 for a
 * tagged frame): an untagged frame of MTU + 18 needs an interface MTU 4
 * bytes over the port's (qemu-tap.ts makes its TAP devices so), else it is
 * refused (EMSGSIZE) and counted in txDropped.
 *
 * The interface should have TSO/GSO off (`ethtool -K IF tso off gso off`) if
 * anything on the host side sends through it: a packet socket sees a GSO
 * super-frame whole, and this port drops it as too large. QEMU with
 * `vnet_hdr=off` (qemu-vm.ts) writes only plain frames.
 */
import type { Clock } from '../common/clock.ts';
import { realClock } from '../common/clock.ts';
import { MIN_FRAME_BYTES, type Frame } from '../common/frame.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { formatMac, type Mac } from '../common/mac.ts';
import type { PacketPortCounters } from '../control/daemon-control.ts';
import { DropWarning } from './drop-warning.ts';
import { PacketFrameError, PacketSourceError, PortAlreadyStartedError, PortClosedError, type PacketPortError } from './errors.ts';
import { eachPlainFrame } from './offload.ts';
import { AddressLock, checkPacketSize } from './packet-frame-check.ts';
import { PacketSocket } from './packet-socket.ts';
import { emptyPortStats, frameFitsPort, PORT_FRAME_OVERHEAD, PortFailure, type Port, type PortStats, type ReceiveHandler } from './port.ts';
import { errnoName } from './tap-device.ts';

export interface PacketPortOptions {
  /** The port's name (as the daemon, the controller and the operator know it). */
  readonly name: string;
  /** The interface to attach to (default: `name`), in the daemon's network namespace. */
  readonly ifname?: string | undefined;
  /** The VM's MAC. */
  readonly mac: Mac;
  readonly mtu: number;
  /** The address lock: MACs besides `mac` the VM may send from, and its IP addresses (none: IP sources not checked). `false`: no lock. */
  readonly lock?: false | { readonly allowedMacs?: readonly Mac[]; readonly ips?: readonly string[] } | undefined;
  readonly rcvBufBytes?: number | undefined;
  readonly sndBufBytes?: number | undefined;
  readonly logger: Logger;
  readonly clock?: Clock | undefined;
  /** Called once after the socket is closed: the owner of the interface removes it (qemu-tap.ts). */
  readonly onClosed?: (() => Promise<void>) | undefined;
}

/**
 * What the packet port counted beyond the Port counters: the drops its facts
 * carry (PacketPortCounters: runts, too large, spoofed MAC or IP, malformed,
 * the kernel's) and two more.
 */
export interface PacketPortStats extends PacketPortCounters {
  /** Frames the interface transmitted that were read and skipped (0 with PACKET_IGNORE_OUTGOING). */
  outgoingSkipped: number;
  /** Reads that found the interface down. */
  downReads: number;
}

export class PacketPort implements Port {
  readonly name: string;
  readonly kind = 'packet' as const;
  readonly mac: Mac;
  readonly mtu: number;
  readonly acceptsOffload = false;
  readonly ifname: string;
  readonly stats: PortStats = emptyPortStats();
  readonly #socket: PacketSocket;
  readonly #lock: AddressLock | undefined;
  readonly #max: number;
  readonly #log: Logger;
  readonly #failure = new PortFailure();
  readonly #drops: DropWarning;
  readonly #watchers = new Set<(frames: readonly Frame[]) => void>();
  readonly #counts: PacketPortStats = { runts: 0, tooLarge: 0, spoofedMac: 0, spoofedIp: 0, malformed: 0, outgoingSkipped: 0, kernelDrops: 0, downReads: 0 };
  readonly #onClosed: (() => Promise<void>) | undefined;
  #handler: ReceiveHandler | undefined;
  #closed = false;

  private constructor(opts: PacketPortOptions, socket: PacketSocket, lock: AddressLock | undefined) {
    this.name = opts.name;
    this.ifname = opts.ifname ?? opts.name;
    this.mac = opts.mac;
    this.mtu = opts.mtu;
    this.#socket = socket;
    this.#lock = lock;
    this.#max = opts.mtu + PORT_FRAME_OVERHEAD;
    this.#onClosed = opts.onClosed;
    this.#log = componentLogger(opts.logger, 'packet-port', { port: opts.name, ifname: this.ifname });
    this.#drops = new DropWarning({ logger: this.#log, clock: opts.clock ?? realClock }, {
      message: 'frames dropped',
      describe: (e) => (typeof e === 'number' ? errnoName(e) : e),
    });
  }

  /**
   * Attach to the interface: bound, promiscuous, reading from `start` on.
   * Throws PacketInterfaceNotFoundError, PacketPortError (no permission:
   * CAP_NET_RAW), or RangeError for a lock address that is no IP address.
   */
  static open(opts: PacketPortOptions): PacketPort {
    const lock = opts.lock === false ? undefined : new AddressLock({ macs: [opts.mac, ...(opts.lock?.allowedMacs ?? [])], ips: opts.lock?.ips ?? [] });
    const ifname = opts.ifname ?? opts.name;
    // One slot byte past the largest frame taken: a longer one comes back truncated and is seen.
    const socket = PacketSocket.open({ ifname, slot: opts.mtu + PORT_FRAME_OVERHEAD + 1, rcvBufBytes: opts.rcvBufBytes, sndBufBytes: opts.sndBufBytes });
    const port = new PacketPort(opts, socket, lock);
    port.#log.info({ mac: formatMac(opts.mac), mtu: opts.mtu, ifindex: socket.ifindex, ignoreOutgoing: socket.ignoreOutgoing, ipLock: lock?.checksIp ?? false, locked: lock !== undefined }, 'packet port attached');
    return port;
  }

  /** The port's own counters (drops by cause, the kernel's drops), read now. */
  get packetStats(): Readonly<PacketPortStats> {
    if (!this.#closed && this.#failure.error === undefined) this.#syncSocketStats();
    return { ...this.#counts };
  }

  /** See every batch from the VM before the daemon does (e.g. its RARP after a migration); returns the function that stops it. */
  watch(fn: (frames: readonly Frame[]) => void): () => void {
    this.#watchers.add(fn);
    return () => { this.#watchers.delete(fn); };
  }

  start(handler: ReceiveHandler): void {
    if (this.#handler !== undefined) throw new PortAlreadyStartedError(this.name);
    if (this.#closed) throw new PortClosedError(this.name);
    this.#handler = handler;
    this.#socket.start((buffer, records, count) => this.#onBatch(buffer, records, count), (err) => this.#fail(err));
  }

  send(frame: Frame): void {
    if (this.#closed || this.#failure.error !== undefined) {
      this.stats.txDropped++;
      return;
    }
    if (!eachPlainFrame(frame, this.#write)) {
      this.stats.txDropped++;
      this.stats.errors++;
      this.#drops.note('offload');
    }
  }

  onFailure(handler: (err: Error) => void): void {
    this.#failure.onFailure(handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#syncSocketStats();
    this.#closed = true;
    this.#drops.close();
    this.#socket.close();
    this.#log.info({ stats: this.stats, packet: this.#counts }, 'packet port closed');
    await this.#onClosed?.().catch((err: unknown) => this.#log.warn({ err }, 'the interface could not be removed'));
  }

  readonly #write = (data: Buffer): void => {
    if (!frameFitsPort(data.length, this.mtu)) {
      this.stats.txDropped++;
      this.#drops.note(data.length < MIN_FRAME_BYTES ? 'runt' : 'too-large');
      return;
    }
    const n = this.#socket.write(data);
    if (n >= 0) {
      this.stats.txFrames++;
      this.stats.txBytes += data.length;
      return;
    }
    this.stats.txDropped++;
    this.#drops.note('refused', 1, -n);
  };

  #onBatch(buffer: Buffer, records: Uint32Array, count: number): void {
    if (this.#closed || this.#handler === undefined) return;
    const frames: Frame[] = [];
    for (let i = 0; i < count; i++) {
      const off = records[3 * i]!;
      const captured = records[3 * i + 1]!;
      const wire = records[3 * i + 2]!;
      const size = checkPacketSize(captured, wire, this.#max);
      if (size !== 'ok') {
        this.#refuse(size === 'runt' ? 'runts' : 'tooLarge', new PacketFrameError(this.name, size, wire, this.#max));
        continue;
      }
      const data = buffer.subarray(off, off + captured);
      const verdict = this.#lock?.check(data);
      if (verdict !== undefined && !verdict.ok) {
        const counter = verdict.reason === 'mac' ? 'spoofedMac' : verdict.reason === 'ip' ? 'spoofedIp' : 'malformed';
        this.#refuse(counter, new PacketSourceError(this.name, verdict.reason, verdict.detail));
        continue;
      }
      this.stats.rxFrames++;
      this.stats.rxBytes += data.length;
      frames.push({ data, offload: undefined });
    }
    if (frames.length === 0) return;
    for (const w of this.#watchers) w(frames);
    this.#handler(frames);
  }

  /** A frame from the VM dropped: counted, logged at debug, and noted for the paced warning. */
  #refuse(counter: 'runts' | 'tooLarge' | 'spoofedMac' | 'spoofedIp' | 'malformed', err: PacketFrameError | PacketSourceError): void {
    this.#counts[counter]++;
    if (counter === 'runts' || counter === 'tooLarge' || counter === 'malformed') this.stats.errors++;
    this.#log.debug({ code: err.code, detail: err.message }, 'frame from the VM dropped');
    this.#drops.note(counter, 1, err.code);
  }

  #syncSocketStats(): void {
    const s = this.#socket.stats();
    this.#counts.outgoingSkipped = s.outgoingSkipped;
    this.#counts.kernelDrops += s.kernelDrops;
    this.#counts.downReads = s.downReads;
  }

  #fail(err: PacketPortError): void {
    if (this.#failure.error !== undefined || this.#closed) return;
    this.stats.errors++;
    this.#log.warn({ err }, 'the interface is gone');
    this.#syncSocketStats();
    this.#socket.close();
    this.#failure.fail(err);
  }
}
