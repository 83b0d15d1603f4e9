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
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { TapError } from './errors.ts';
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
  start(onBatch: TapBatchHandler, onError: (errno: number, code: string, syscall: string) => void): void;
  write(frame: Uint8Array, hdr?: Uint8Array): number;
  writeBatch(frames: readonly Uint8Array[], hdrs?: readonly (Uint8Array | undefined)[]): [number, number, number];
  close(): void;
}

interface NativeModule {
  TapHandle: new (opts: Record<string, unknown>) => NativeTapHandle;
}

const ADDON_PATH = new URL('../../build/Release/vnet_tap.node', import.meta.url).pathname;

let loaded: NativeModule | undefined;

function nativeModule(): NativeModule {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeModule;
    } catch (err) {
      throw new TapError(`the TAP addon is not built (${ADDON_PATH}); run \`npm ci\` or \`npx node-gyp rebuild\``, undefined, { cause: err });
    }
  }
  return loaded;
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

function errnoError(err: unknown, what: string): TapError {
  const e = err as { errno?: unknown; code?: unknown; message?: unknown };
  const errno = typeof e.errno === 'number' ? e.errno : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  return new TapError(`${what}: ${message}`, errno, { cause: err });
}

export class TapDevice {
  readonly #handle: NativeTapHandle;
  #closed = false;

  private constructor(handle: NativeTapHandle) {
    this.#handle = handle;
  }

  /** Opens (creating or attaching) a TAP device; throws TapError (with errno) on failure. */
  static open(opts: TapDeviceOptions): TapDevice {
    const native = nativeModule();
    const raw: Record<string, unknown> = {
      name: opts.name,
      vnetHdr: opts.vnetHdr ?? false,
      vnetHdrSize: opts.vnetHdrSize ?? 10,
      offload: opts.offload ?? true,
      up: opts.up ?? false,
    };
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
      throw errnoError(err, `cannot open TAP device ${JSON.stringify(opts.name)}`);
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
