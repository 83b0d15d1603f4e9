/**
 * The native RAM digest in the TAP addon (native/tap/ram_digest.cc,
 * xxh64.cc): another process's memory read with process_vm_readv(2) into a
 * small reused buffer and hashed with xxh64 (seed 0) as it goes, on a libuv
 * worker thread, off the event loop. The xxh64 is the one xxhash-wasm's
 * `create64(0n)` gives for the same bytes, so a daemon on this path and one
 * on the /proc/PID/mem + xxhash-wasm path (qemu-ram-digest.ts) agree.
 *
 * `ramDigestAddon()` is undefined when the addon is not built, or was built
 * before the digest: the caller falls back to the other path.
 */
import { vnetTapAddon } from '../dataplane/tap-device.ts';

export interface NativeRangeDigest {
  readonly xxh64: bigint;
  readonly bytes: number;
  /** Time spent in process_vm_readv and in hashing (ns, the worker thread's). */
  readonly readNs: number;
  readonly hashNs: number;
}

/** What a failed native digest rejects with: errno's name in `code`, where the failed read started in `address`. */
export interface NativeRangeError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly address: number;
  readonly bytesRead: number;
}

export interface NativeXxh64 {
  update(bytes: Uint8Array): NativeXxh64;
  digest(): bigint;
}

export interface RamDigestAddon {
  /** XXH64, seed 0, of `bytes`, synchronously. */
  xxh64(bytes: Uint8Array): bigint;
  /** The same, streamed. */
  Xxh64: new () => NativeXxh64;
  /** [address, address + length) of process `pid`, in pieces of `bufferBytes` (4 KiB..16 MiB). */
  digestProcessMemory(pid: number, address: number, length: number, bufferBytes: number): { promise: Promise<NativeRangeDigest>; cancel(): void };
}

let addon: RamDigestAddon | null | undefined;

/** The addon's digest functions, or undefined when the addon is missing or predates them. */
export function ramDigestAddon(): RamDigestAddon | undefined {
  if (addon === undefined) {
    try {
      const a = vnetTapAddon() as Partial<RamDigestAddon>;
      addon = typeof a.digestProcessMemory === 'function' && typeof a.xxh64 === 'function' && typeof a.Xxh64 === 'function' ? a as RamDigestAddon : null;
    } catch {
      addon = null;
    }
  }
  return addon ?? undefined;
}

/**
 * Digest [address, address + length) of process `pid` natively; `signal`
 * cancels it within one piece. Rejects with a NativeRangeError (ECANCELED
 * when cancelled). The caller checks that the addon is there.
 */
export async function digestRangeNative(a: RamDigestAddon, pid: number, address: number, length: number, bufferBytes: number, signal?: AbortSignal): Promise<NativeRangeDigest> {
  const job = a.digestProcessMemory(pid, address, length, bufferBytes);
  const cancel = (): void => job.cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  if (signal?.aborted === true) job.cancel();
  try {
    return await job.promise;
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
}
