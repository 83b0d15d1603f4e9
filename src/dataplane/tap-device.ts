/**
 * The typed face of the native TAP addon (`native/tap`, built by node-gyp into
 * build/Release/vnet_tap.node). One TapDevice is one open file on
 * /dev/net/tun attached to one TAP interface.
 *
 * Reads are pushed, not pulled: `start` hands the fd to a uv_poll_t on the
 * main loop; when the kernel has frames, the addon reads up to 64 of them (or
 * 1 MiB) into one buffer and calls `onBatch(buffer, records, count)` once,
 * where `records` holds (offset, length) pairs. With vnet_hdr each record
 * starts with the virtio_net_hdr (`vnetHdrSize` bytes). Writes are synchronous
 * and non-blocking. A device that goes away (deleted, EBADFD/EIO) is reported
 * once through `onError` as a TapError; polling stops, the process goes on.
 *
 * Attaching and handing over. `open({ name, netns, attach: true })` attaches
 * one more queue to an EXISTING device in network namespace `netns` (the
 * addon opens /dev/net/tun on a helper thread that has setns()ed into it; no
 * other thread changes namespace) and takes the device's flags as they are
 * (vnet_hdr and its size from TUNGETIFF/TUNGETVNETHDRSZ; MAC, MTU, link state
 * untouched). That is how a VM's attachment moves from one daemon to another
 * on the same kernel while the VM's namespace stays put:
 *
 *   destination   open({ name, netns, attach: true }), start(...)  → queue 1
 *   source        steer(1) (every new frame to queue 1), then, a moment
 *                 later, drain() (what is already queued here, through
 *                 onBatch) and close()          (TapPort.handOff does this)
 *   destination   releaseSteering() once the source is gone
 *
 * Why multi-queue, not persistent: a device a daemon creates for a VM is
 * IFF_MULTI_QUEUE (`multiQueue: true`), so it lives as long as any queue is
 * attached and the destination attaches BEFORE the source lets go. A
 * persistent single-queue device refuses a second reader (EBUSY), so the
 * source would have to close first: a gap with no reader in which the kernel
 * drops every frame (and turns the carrier off, which the VM's stack sees), and
 * a device that stays behind when a daemon dies until someone deletes it. With
 * two queues the kernel spreads frames over both by flow hash, and closing a
 * queue drops what is still queued on it; `steer` (a two-instruction eBPF
 * program, TUNSETSTEERINGEBPF) points every new frame at the destination first,
 * so the source can drain its queue to empty before it closes, and nothing is
 * dropped. Without eBPF (no CAP_BPF) the hand-over still works; the frames that
 * arrive on the source's queue between its last read and its close are lost.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { NetnsNotFoundError, TapDeviceNotFoundError, TapError, TapPermissionError } from './errors.ts';
import { writeMac, type Mac } from '../common/mac.ts';

/** TUNSETOFFLOAD flags (linux/if_tun.h). */
export const TUN_F = {
  CSUM: 0x01,
  TSO4: 0x02,
  TSO6: 0x04,
  TSO_ECN: 0x08,
  UFO: 0x10,
  USO4: 0x20,
  USO6: 0x40,
} as const;

export interface TapDeviceOptions {
  /** Interface name (at most 15 bytes); empty lets the kernel choose tapN. */
  name: string;
  /**
   * A network namespace (a name under /var/run/netns, or a path such as
   * /proc/PID/ns/net): the device is created, or looked for, there. Default:
   * this process's namespace.
   */
  netns?: string;
  /** Attach to an existing device (one more queue): never create one, configure nothing, take its vnet_hdr setting. */
  attach?: boolean;
  /** IFF_MULTI_QUEUE when creating (a device whose attachment can be handed over); attaching always tries it first. */
  multiQueue?: boolean;
  /** Open with IFF_VNET_HDR: every frame read or written carries a virtio_net_hdr. */
  vnetHdr?: boolean;
  /** 10 (virtio_net_hdr) or 12 (virtio_net_hdr_mrg_rxbuf); default 10. */
  vnetHdrSize?: 10 | 12;
  /** With vnetHdr: ask the kernel for CSUM|TSO4|TSO6 (and USO4|USO6 where supported). Default true. */
  offload?: boolean;
  /** TUNSETPERSIST on or off; left alone when undefined. */
  persist?: boolean;
  mac?: Mac;
  mtu?: number;
  /** Bring the link up after configuring it. */
  up?: boolean;
}

/** Called with one batch of reads: `records[2i]` is the offset and `records[2i+1]` the length of record i. */
export type TapBatchHandler = (buffer: Buffer, records: Uint32Array, count: number) => void;

export interface TapWriteBatchResult {
  written: number;
  /** Frames not delivered: queue full, malformed, or left unwritten after a fatal error. */
  dropped: number;
  /** errno of the device-level error that stopped the batch, or 0. */
  fatalErrno: number;
}

interface NativeTapHandle {
  readonly name: string;
  readonly fd: number;
  readonly vnetHdrSize: number;
  readonly offloadFlags: number;
  readonly multiQueue: boolean;
  steer(queue: number): number;
  drain(): number;
  start(onBatch: TapBatchHandler, onError: (errno: number, code: string, syscall: string) => void): void;
  setPolling(on: boolean): void;
  write(frame: Uint8Array, hdr?: Uint8Array): number;
  writeBatch(frames: readonly Uint8Array[], hdrs?: readonly (Uint8Array | undefined)[]): [number, number, number];
  close(): void;
}

interface NativeModule {
  TapHandle: new (opts: Record<string, unknown>) => NativeTapHandle;
}

const ADDON_PATH = new URL('../../build/Release/vnet_tap.node', import.meta.url).pathname;

let loaded: unknown;

/** The vnet_tap addon's exports (TapHandle, PacketHandle, the forwarder, the RAM digest); throws TapError when it is not built. */
export function vnetTapAddon(): unknown {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON_PATH) as unknown;
    } catch (err) {
      throw new TapError(`the TAP addon is not built (${ADDON_PATH}); run \`npm ci\` or \`npx node-gyp rebuild\``, undefined, { cause: err });
    }
  }
  return loaded;
}

function nativeModule(): NativeModule {
  return vnetTapAddon() as NativeModule;
}

/** errno values after which the device is gone for good (as opposed to one frame not delivered). */
export function isFatalTapErrno(errno: number): boolean {
  // EAGAIN 11, ENOBUFS 105, EINVAL 22, EMSGSIZE 90, EFAULT 14 concern one frame only;
  // EIO 5 on a write means the interface is down (not yet up in the VM's namespace): drop, not fail.
  return !(errno === 5 || errno === 11 || errno === 105 || errno === 22 || errno === 90 || errno === 14);
}

/** "EBADFD (errno 77)", or "errno N" for a number Node has no name for. */
export function errnoName(errno: number): string {
  if (errno === 77) return 'EBADFD (errno 77)'; // the usual one for a deleted device; not in os.constants
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === errno) return `${name} (errno ${errno})`;
  return `errno ${errno}`;
}

const EPERM = 1;
const ENOENT = 2;
const EACCES = 13;
const ENODEV = 19;
const EINVAL = 22;

function errnoError(err: unknown, what: string, opts?: Pick<TapDeviceOptions, 'name' | 'netns'>): TapError {
  const e = err as { errno?: unknown; code?: unknown; message?: unknown; syscall?: unknown };
  const errno = typeof e.errno === 'number' ? e.errno : undefined;
  const syscall = typeof e.syscall === 'string' ? e.syscall : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (opts?.netns !== undefined && syscall === 'open(netns)' && errno === ENOENT) return new NetnsNotFoundError(opts.netns, errno, { cause: err });
  // `ip netns del` unmounts the namespace before it unlinks its file: in between, the file is no namespace.
  if (opts?.netns !== undefined && syscall === 'setns(CLONE_NEWNET)' && errno === EINVAL) return new NetnsNotFoundError(opts.netns, errno, { cause: err });
  if (opts !== undefined && syscall === 'ioctl(SIOCGIFINDEX)' && errno === ENODEV) return new TapDeviceNotFoundError(opts.name, opts.netns, errno, { cause: err });
  if (errno === EPERM || errno === EACCES) return new TapPermissionError(`${what}: ${message}`, errno, { cause: err });
  return new TapError(`${what}: ${message}`, errno, { cause: err });
}

/** The file of a network namespace: a name under /var/run/netns, or a path as it is. */
export function netnsPath(netns: string): string {
  return netns.includes('/') ? netns : `/var/run/netns/${netns}`;
}

export class TapDevice {
  readonly #handle: NativeTapHandle;
  #closed = false;

  private constructor(handle: NativeTapHandle) {
    this.#handle = handle;
  }

  /**
   * Opens (creating or attaching) a TAP device; throws TapError (with errno) on
   * failure: NetnsNotFoundError, TapDeviceNotFoundError (attach only) and
   * TapPermissionError for those causes.
   */
  static open(opts: TapDeviceOptions): TapDevice {
    const native = nativeModule();
    // A name is a file under /var/run/netns ("." and ".." are none); anything with a slash is a path as given.
    if (opts.netns !== undefined && (opts.netns === '' || opts.netns === '.' || opts.netns === '..' || opts.netns.includes('\0'))) {
      throw new NetnsNotFoundError(opts.netns);
    }
    const raw: Record<string, unknown> = {
      name: opts.name,
      attach: opts.attach ?? false,
      multiQueue: opts.multiQueue ?? false,
      vnetHdr: opts.vnetHdr ?? false,
      vnetHdrSize: opts.vnetHdrSize ?? 10,
      offload: opts.offload ?? true,
      up: opts.up ?? false,
    };
    if (opts.netns !== undefined) raw.netns = netnsPath(opts.netns);
    if (opts.persist !== undefined) raw.persist = opts.persist;
    if (opts.mtu !== undefined) raw.mtu = opts.mtu;
    if (opts.mac !== undefined) {
      const mac = new Uint8Array(6);
      writeMac(opts.mac, mac, 0);
      raw.mac = mac;
    }
    try {
      return new TapDevice(new native.TapHandle(raw));
    } catch (err) {
      const where = opts.netns === undefined ? '' : ` in network namespace ${opts.netns}`;
      throw errnoError(err, `cannot ${opts.attach === true ? 'attach to' : 'open'} TAP device ${JSON.stringify(opts.name)}${where}`, opts);
    }
  }

  /** The interface name the kernel gave the device. */
  get name(): string {
    return this.#handle.name;
  }

  /** The file descriptor (-1 once closed). */
  get fd(): number {
    return this.#handle.fd;
  }

  /** Bytes of virtio_net_hdr before each frame; 0 without vnet_hdr. */
  get vnetHdrSize(): number {
    return this.#handle.vnetHdrSize;
  }

  /** TUN_F_* flags the kernel accepted (0 without vnet_hdr). */
  get offloadFlags(): number {
    return this.#handle.offloadFlags;
  }

  /** Whether the device is IFF_MULTI_QUEUE (its attachment can be handed over without a gap). */
  get multiQueue(): boolean {
    return this.#handle.multiQueue;
  }

  /**
   * Sends every frame the kernel transmits on the device to queue `queue`
   * (modulo the number of queues; queues are numbered in the order they were
   * attached, a closed one's place taken by the last), or back to the flow
   * hash with `null`. Device-wide. Throws TapError (EPERM without CAP_BPF).
   */
  steer(queue: number | null): void {
    try {
      this.#handle.steer(queue ?? -1);
    } catch (err) {
      throw errnoError(err, `cannot steer TAP device ${this.#handle.name}`);
    }
  }

  /** Reads every frame queued on this fd now, through the batch handler, before returning; the count. 0 unless started. */
  drain(): number {
    return this.#handle.drain();
  }

  /** After a hand-over to this queue: back to the flow hash, so a later newcomer does not take the frames as soon as it attaches. */
  releaseSteering(): void {
    this.steer(null);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Begins delivering read batches; once only. `onError` is called at most once, after which reads stop. */
  start(onBatch: TapBatchHandler, onError: (err: TapError) => void): void {
    try {
      this.#handle.start(onBatch, (errno, code, syscall) => {
        onError(new TapError(`TAP device ${this.#handle.name} failed: ${syscall}: ${code}`, errno));
      });
    } catch (err) {
      throw errnoError(err, `cannot poll TAP device ${this.#handle.name}`);
    }
  }

  /** Stop (false) or restart (true) the event loop's reads of a started device, while the native forwarder reads it. */
  setPolling(on: boolean): void {
    this.#handle.setPolling(on);
  }

  /** Writes one frame (with its virtio_net_hdr, zeros if absent, when vnet_hdr is on). Returns bytes written or -errno. */
  write(frame: Uint8Array, hdr?: Uint8Array): number {
    return hdr === undefined ? this.#handle.write(frame) : this.#handle.write(frame, hdr);
  }

  /** Writes frames in one call into the addon; `hdrs[i]` goes with `frames[i]`. */
  writeBatch(frames: readonly Uint8Array[], hdrs?: readonly (Uint8Array | undefined)[]): TapWriteBatchResult {
    const [written, dropped, fatalErrno] = hdrs === undefined ? this.#handle.writeBatch(frames) : this.#handle.writeBatch(frames, hdrs);
    return { written, dropped, fatalErrno };
  }

  /** Stops polling and closes the fd (a non-persistent device disappears). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
  }
}
