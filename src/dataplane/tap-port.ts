/**
 * A VM's NIC as a Linux TAP device: the kernel side of the device is the VM's
 * interface (daemon-runner.ts moves it into the VM's network namespace when
 * the port's config names one; the fd stays valid across the move), the file
 * side is this port.
 *
 * Data path, in stages:
 *   VM → daemon   native batch (one buffer, (offset, length) records) → split
 *                 virtio_net_hdr | frame → drop runts (counted) → Frame[] views
 *                 into the batch buffer → the receive handler, once per batch
 *   daemon → VM   vnet_hdr on:  frame.offload written as it is (the kernel
 *                               segments / checksums), or a zero header
 *                 vnet_hdr off: frames with offload work are segmented and
 *                               checksummed in software first (offload.ts)
 *                 → size check (port.ts: runts and frames over the MTU that
 *                   are not GSO super-frames are counted drops)
 *                 → synchronous non-blocking writev; EAGAIN is a counted drop
 *   failure       the device deleted (read/write EBADFD, EIO, ...) → one TapError
 *                 to the failure handler; reads stop; the process carries on
 *
 * Native forwarding: `nativeEndpoint(fwd)` hands the device's reads to the
 * native forwarder (native-forwarder.ts; attached once the batch in hand is
 * handled): frames of installed flows never reach this object, the others
 * come up to the same batch handler; `close`, `handOff` and a device failure
 * take the reads back first. Writes stay here (and on the forwarder's thread
 * for the flows it carries to this VM); its counts are merged into `stats`.
 *
 * A port is made in one of two ways: `open` creates the device (multi-queue,
 * so that its attachment can be handed over; tap-device.ts says why), or
 * `attach` adds a queue to an existing device in a VM's namespace, the
 * destination's side of a hand-over between two daemons on one kernel:
 *
 *   destination   TapPort.attach({ name, mac, mtu, netns }), start(handler)
 *   source        await handOff()   every new frame to the destination's queue,
 *                                   then what is queued here, read and handled; closed
 *   destination   releaseSteering()
 */
import { componentLogger, type Logger } from '../common/logger.ts';
import { realClock, type Clock } from '../common/clock.ts';
import { DropWarning } from './drop-warning.ts';
import { PortAlreadyStartedError, PortClosedError, TapError } from './errors.ts';
import { MIN_FRAME_BYTES, VIRTIO_NET_HDR_BYTES, type Frame } from '../common/frame.ts';
import { formatMac, type Mac } from '../common/mac.ts';
import { segmentFrame } from './offload.ts';
import { emptyPortStats, frameFitsPort, PortFailure, type Port, type PortStats, type ReceiveHandler } from './port.ts';
import { errnoName, isFatalTapErrno, TapDevice } from './tap-device.ts';
import { isGsoHeader, offloadNeedsWork } from './virtio-net-hdr.ts';
import type { EndpointSink, NativeForwarder } from './native-forwarder.ts';
import type { NativeEndpointId } from './native-flows.ts';

export interface TapPortOptions {
  /** Interface name (at most 15 bytes). An existing TAP device of that name is attached. */
  name: string;
  /** The VM's MAC: set as the interface's address. */
  mac: Mac;
  mtu: number;
  /** Open with IFF_VNET_HDR and TSO/checksum offloads (default false). */
  vnetHdr?: boolean;
  /** Bring the link up once configured (default true). */
  up?: boolean;
  logger: Logger;
  /** Paces the warnings about dropped frames (default the real clock). */
  clock?: Clock;
}

export interface TapAttachOptions {
  /** The existing TAP device (a multi-queue one, for a hand-over without a gap). */
  name: string;
  /** The VM's MAC (the device keeps whatever address it has; this is what the port reports). */
  mac: Mac;
  mtu: number;
  /** The network namespace the device is in (a name under /var/run/netns, or a path); default this process's. */
  netns?: string;
  /** With a vnet_hdr device: ask for TSO/checksum offloads (device-wide; default true). */
  offload?: boolean;
  logger: Logger;
}

/** What a hand-over left behind on the source's side. */
export interface HandOffResult {
  /** Frames still queued for this port when it let go, read and handed to the receive handler. */
  drained: number;
  /** Whether every new frame went to the destination first (false without eBPF: the kernel dropped whatever reached this queue after the last read). */
  steered: boolean;
}

export class TapPort implements Port {
  readonly name: string;
  readonly kind = 'tap' as const;
  readonly mac: Mac;
  readonly mtu: number;
  readonly acceptsOffload: boolean;
  readonly stats: PortStats = emptyPortStats();
  /** TUN_F_* offloads the kernel accepted (0 without vnet_hdr). */
  readonly offloadFlags: number;

  readonly #device: TapDevice;
  readonly #log: Logger;
  readonly #hdrSize: number;
  #handler: ReceiveHandler | undefined;
  readonly #failure = new PortFailure();
  readonly #drops: DropWarning;
  #closed = false;
  /** The native forwarder reading the device, and the port's endpoint there. */
  #native: { fwd: NativeForwarder; id: number } | undefined;
  #nativeAsked = false;

  private constructor(device: TapDevice, opts: TapPortOptions) {
    this.#device = device;
    this.name = device.name;
    this.mac = opts.mac;
    this.mtu = opts.mtu;
    this.#hdrSize = device.vnetHdrSize;
    this.acceptsOffload = this.#hdrSize > 0;
    this.offloadFlags = device.offloadFlags;
    this.#log = componentLogger(opts.logger, 'tap-port', { port: device.name });
    this.#drops = new DropWarning({ logger: this.#log, clock: opts.clock ?? realClock }, {
      message: 'frames to the VM dropped',
      describe: (e) => (typeof e === 'number' ? errnoName(e) : e),
    });
  }

  /**
   * Creates (or attaches) the TAP device and configures MAC, MTU and link
   * state. A new device is multi-queue; an existing single-queue one (made by
   * `ip tuntap add`) is attached as it is. Throws TapError.
   */
  static open(opts: TapPortOptions): TapPort {
    const base = { name: opts.name, vnetHdr: opts.vnetHdr ?? false, mac: opts.mac, mtu: opts.mtu, up: opts.up ?? true };
    let device: TapDevice;
    try {
      device = TapDevice.open({ ...base, multiQueue: true });
    } catch (err) {
      // EINVAL: the name is taken by a single-queue TAP device (or by something that is no TAP at all, which fails again).
      if (!(err instanceof TapError) || err.errno !== 22) throw err;
      device = TapDevice.open(base);
    }
    const port = new TapPort(device, opts);
    port.#log.info({ mac: formatMac(opts.mac), mtu: opts.mtu, vnetHdr: port.acceptsOffload, offloadFlags: port.offloadFlags, multiQueue: device.multiQueue }, 'TAP port opened');
    return port;
  }

  /**
   * Attaches to an existing TAP device, in network namespace `netns` if given,
   * as one more queue: nothing about the device changes (vnet_hdr as it has
   * it). Throws NetnsNotFoundError, TapDeviceNotFoundError,
   * TapPermissionError, or TapError.
   */
  static attach(opts: TapAttachOptions): TapPort {
    const device = TapDevice.open({ name: opts.name, attach: true, offload: opts.offload ?? true, ...(opts.netns === undefined ? {} : { netns: opts.netns }) });
    const port = new TapPort(device, { name: opts.name, mac: opts.mac, mtu: opts.mtu, logger: opts.logger });
    port.#log.info({ mac: formatMac(opts.mac), mtu: opts.mtu, netns: opts.netns, vnetHdr: port.acceptsOffload, multiQueue: device.multiQueue }, 'TAP port attached');
    return port;
  }

  /** Whether the device is multi-queue (its attachment can be handed over while both sides hold it). */
  get multiQueue(): boolean {
    return this.#device.multiQueue;
  }

  /**
   * The source's side of a hand-over; call it once the destination's port is
   * attached to the same device (with no other queue on the device, a
   * non-persistent device goes away with this port). Points every new frame at
   * the destination's queue, lets a turn of the event loop pass (a frame the
   * kernel was putting on this queue at that moment lands), reads and hands
   * to the receive handler what is queued here, and closes the port. Frames
   * sent to the VM after this are counted drops, as after close.
   * `steer: false` skips the steering (the flow-hash hand-over, for comparison).
   */
  async handOff(opts: { steer?: boolean } = {}): Promise<HandOffResult> {
    if (this.#closed) throw new PortClosedError(this.name);
    this.#detachNative();
    let steered = opts.steer ?? true;
    try {
      if (steered) this.#device.steer(1);
    } catch (err) {
      steered = false;
      this.#log.warn({ err }, 'cannot steer the device to the destination; frames reaching this queue during the hand-over are lost');
    }
    await new Promise((resolve) => setImmediate(resolve));
    const drained = this.#closed ? 0 : this.#device.drain();
    await this.close();
    this.#log.info({ drained, steered }, 'TAP port handed off');
    return { drained, steered };
  }

  /**
   * Every frame the VM sends to queue `queue` (numbered in attach order; the
   * destination of a hand-over steers to 0, the source's, right after it
   * attaches, so that nothing the VM sends reaches it before the hand-over).
   * Device-wide. Throws TapError (EPERM without CAP_BPF).
   */
  steerTo(queue: number): void {
    this.#device.steer(queue);
  }

  /** The destination's last step of a hand-over, once the source has let go: frames spread by flow hash again (see TapDevice.steer). */
  releaseSteering(): void {
    this.#device.releaseSteering();
  }

  start(handler: ReceiveHandler): void {
    if (this.#handler !== undefined) throw new PortAlreadyStartedError(this.name);
    if (this.#closed) throw new PortClosedError(this.name);
    this.#handler = handler;
    this.#device.start((buffer, records, count) => this.#onBatch(buffer, records, count), (err) => this.#fail(err));
  }

  send(frame: Frame): void {
    if (this.#closed || this.#failure.error !== undefined) {
      this.stats.txDropped++;
      return;
    }
    if (this.#hdrSize > 0 || !offloadNeedsWork(frame.offload)) {
      this.#write(frame.data, this.#hdrSize > 0 ? frame.offload : undefined);
      return;
    }
    const plain = this.#segment(frame);
    if (plain !== undefined) for (const f of plain) this.#write(f.data, undefined);
  }

  /** Several frames in one call into the addon (one N-API crossing). Same semantics as `send` for each. */
  sendBatch(frames: readonly Frame[]): void {
    if (this.#closed || this.#failure.error !== undefined) {
      this.stats.txDropped += frames.length;
      return;
    }
    const datas: Buffer[] = [];
    const hdrs: (Buffer | undefined)[] = [];
    for (const frame of frames) {
      if (this.#hdrSize > 0 || !offloadNeedsWork(frame.offload)) {
        const hdr = this.#hdrSize > 0 ? frame.offload : undefined;
        if (this.#fits(frame.data, hdr)) {
          datas.push(frame.data);
          hdrs.push(hdr);
        }
        continue;
      }
      for (const f of this.#segment(frame) ?? []) {
        if (!this.#fits(f.data, undefined)) continue;
        datas.push(f.data);
        hdrs.push(undefined);
      }
    }
    const r = this.#device.writeBatch(datas, this.#hdrSize > 0 ? hdrs : undefined);
    let bytes = 0;
    for (let i = 0; i < r.written; i++) bytes += datas[i]!.length; // approximate when drops interleave
    this.stats.txFrames += r.written;
    this.stats.txBytes += bytes;
    this.stats.txDropped += r.dropped;
    this.#drops.note('refused', r.dropped);
    if (r.fatalErrno !== 0) this.#fail(new TapError(`TAP device ${this.name} failed: writev: ${errnoName(r.fatalErrno)}`, r.fatalErrno));
  }

  /** The port's endpoint in the native forwarder; undefined until attached (the first call asks, see the header). */
  nativeEndpoint(fwd: NativeForwarder): NativeEndpointId {
    const native = this.#native;
    if (native !== undefined) return native.fwd === fwd ? native.id : 'never';
    if (this.#nativeAsked) return 'later';
    if (this.#closed || this.#failure.error !== undefined || this.#handler === undefined || fwd.closed) return 'never';
    this.#nativeAsked = true;
    queueMicrotask(() => this.#attachNative(fwd));
    return 'later';
  }

  #attachNative(fwd: NativeForwarder): void {
    if (this.#closed || this.#failure.error !== undefined || fwd.closed) return;
    const stats = this.stats;
    const sink: EndpointSink = {
      onBatch: (buffer, records, count) => this.#onBatch(buffer, records, count),
      onFailed: (errno) => this.#fail(new TapError(`TAP device ${this.name} failed: read: ${errnoName(errno)}`, errno)),
      addCounts: (rxFrames, rxBytes, txFrames, txBytes, txDropped) => {
        stats.rxFrames += rxFrames;
        stats.rxBytes += rxBytes;
        stats.txFrames += txFrames;
        stats.txBytes += txBytes;
        stats.txDropped += txDropped;
      },
    };
    try {
      const id = fwd.attachTap(this.#device.fd, this.#hdrSize, this.mtu, sink);
      this.#device.setPolling(false);
      this.#native = { fwd, id };
    } catch (err) {
      this.#log.warn({ err }, 'the native forwarder cannot serve this port; it stays on the event loop');
    }
  }

  /** Read the device on the event loop again; what the forwarder still held is handled first. */
  #detachNative(): void {
    const native = this.#native;
    if (native === undefined) return;
    this.#native = undefined;
    native.fwd.detach(native.id);
    if (!this.#closed && this.#failure.error === undefined && !this.#device.closed) this.#device.setPolling(true);
  }

  onFailure(handler: (err: Error) => void): void {
    this.#failure.onFailure(handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#detachNative();
    this.#closed = true;
    this.#drops.close();
    this.#device.close();
    this.#log.info({ stats: this.stats }, 'TAP port closed');
  }

  /** The plain frames of a frame with offload work, done in software; undefined (counted) when its metadata cannot be applied. */
  #segment(frame: Frame): Frame[] | undefined {
    try {
      return segmentFrame(frame);
    } catch (err) {
      this.stats.txDropped++;
      this.stats.errors++;
      this.#log.debug({ err }, 'frame with unusable offload metadata dropped');
      this.#drops.note('offload', 1, (err as { code?: string }).code);
      return undefined;
    }
  }

  /** Whether a frame may go to the VM (see Port): a runt, or a frame over the MTU that is not a GSO super-frame, is a counted drop. */
  #fits(data: Buffer, hdr: Buffer | undefined): boolean {
    if (frameFitsPort(data.length, this.mtu) || (isGsoHeader(hdr) && data.length >= MIN_FRAME_BYTES)) return true;
    this.stats.txDropped++;
    this.#drops.note(data.length < MIN_FRAME_BYTES ? 'runt' : 'too-large');
    return false;
  }

  #write(data: Buffer, hdr: Buffer | undefined): void {
    if (!this.#fits(data, hdr)) return;
    const n = this.#device.write(data, hdr);
    if (n >= 0) {
      this.stats.txFrames++;
      this.stats.txBytes += data.length;
      return;
    }
    this.stats.txDropped++;
    if (isFatalTapErrno(-n)) {
      this.#fail(new TapError(`TAP device ${this.name} failed: writev: ${errnoName(-n)}`, -n));
    } else if (-n === 11) {
      this.#drops.note('queue-full');
    } else {
      this.stats.errors++;
      this.#log.debug({ errno: -n, bytes: data.length }, 'TAP write refused a frame');
      this.#drops.note('refused', 1, -n);
    }
  }

  #onBatch(buffer: Buffer, records: Uint32Array, count: number): void {
    if (this.#closed || this.#handler === undefined) return;
    const hs = this.#hdrSize;
    const frames: Frame[] = [];
    for (let i = 0; i < count; i++) {
      const off = records[2 * i]!;
      const len = records[2 * i + 1]!;
      if (len < hs + MIN_FRAME_BYTES) {
        this.stats.errors++;
        continue;
      }
      const data = buffer.subarray(off + hs, off + len);
      let offload: Buffer | undefined;
      if (hs > 0) {
        const hdr = buffer.subarray(off, off + VIRTIO_NET_HDR_BYTES);
        if (offloadNeedsWork(hdr)) offload = hdr;
      }
      this.stats.rxFrames++;
      this.stats.rxBytes += data.length;
      frames.push({ data, offload });
    }
    if (frames.length > 0) this.#handler(frames);
  }

  #fail(err: TapError): void {
    if (this.#failure.error !== undefined || this.#closed) return;
    this.#detachNative();
    this.stats.errors++;
    this.#log.warn({ err }, 'TAP device failed');
    this.#device.close();
    this.#failure.fail(err);
  }
}
