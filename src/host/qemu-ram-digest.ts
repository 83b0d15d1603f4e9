/**
 * The digest of a stopped QEMU guest's RAM, read from the QEMU process
 * itself: the destination's loaded copy is compared with the source's
 * stopped guest before the copy may run (docs/migration-protocol.md, "QEMU
 * VMs: the copy verified").
 *
 *   mapping   QEMU backs the guest's RAM (`-m N`, one RAM block, pc.ram) by
 *             one anonymous private mapping of exactly N MiB, `rw-p`, no
 *             file; found in /proc/PID/maps. None, or more than one, is a
 *             QemuRamDigestError naming what was found: never a guess.
 *   read and hash, by one of two readers (the same digest either way):
 *     native    (the default when the TAP addon is built) process_vm_readv(2)
 *               into one reused buffer of `chunkBytes` (default 512 KiB, so
 *               it stays in cache), hashed with the addon's own xxh64 as it
 *               goes, on a libuv worker thread (ram-digest-native.ts)
 *     proc-mem  (the fallback: a daemon without the addon) /proc/PID/mem in
 *               preads of `chunkBytes` (default 4 MiB) into one reused
 *               buffer, hashed with xxhash-wasm. Slower: the kernel copies
 *               each page through a bounce page, and xxhash-wasm copies each
 *               chunk again into wasm memory
 *             Measured (bench/migration/ram-digest.ts, a child's mapping on
 *             this shared 2-core machine, so noisy): 128 MiB in about 36 ms
 *             native (some 25 ms of it in process_vm_readv, 9 ms hashing)
 *             against 62 ms proc-mem, 1.7x; 512 MiB 143 against 215 ms. The
 *             read, bound by memory, is most of what is left
 *   hash      xxh64, seed 0, streaming: about 4x faster than SHA-256 and 2x
 *             faster than SHA-1 in Node. Not a defence against a forger (both
 *             peers are authenticated by the channel's mutual TLS): it
 *             catches a copy QEMU got wrong.
 *   errors    a read that fails is a QemuRamDigestError naming the pid, the
 *             address the read started at and the errno (ESRCH: QEMU is
 *             gone; EPERM: no ptrace access; EFAULT/EIO: not mapped), or, a
 *             read that comes back short without an errno, the bytes read;
 *             an aborted `signal` ends either reader within one chunk.
 *
 * The guest must not run while it is read (the source's after `completed`,
 * the destination's under `-S` before `cont`), or the digest means nothing.
 * Reading another process's memory needs ptrace access to it: root, or the
 * daemon as QEMU's parent (QEMU is its child through `setpriv`'s exec).
 */
import { open, type FileHandle } from 'node:fs/promises';
import xxhash from 'xxhash-wasm';
import { QemuRamDigestError } from './errors.ts';
import { digestRangeNative, ramDigestAddon } from './ram-digest-native.ts';

const MIB = 1024 * 1024;
/** The proc-mem reader's default chunk. */
export const DEFAULT_RAM_CHUNK_BYTES = 4 * MIB;
/** The native reader's default buffer (bench/migration/ram-digest.ts measures the choice). */
export const DEFAULT_NATIVE_RAM_CHUNK_BYTES = 512 * 1024;
const MIN_RAM_CHUNK_BYTES = 4096;
const MAX_RAM_CHUNK_BYTES = 16 * MIB;

/** How the RAM is read and hashed (see the header). */
export type RamReader = 'native' | 'proc-mem';

export interface RamMapping {
  readonly start: number;
  readonly end: number;
}

export interface QemuRamDigest {
  /** xxh64 of the RAM, 16 lowercase hex digits. */
  readonly xxh64: string;
  readonly bytes: number;
}

export interface RamRangeDigest extends QemuRamDigest {
  readonly reader: RamReader;
}

export interface RamDigestOptions {
  /** Default: native when the TAP addon has it, else proc-mem. */
  readonly reader?: RamReader;
  /** Bytes per read, 4 KiB..16 MiB (default: per reader, see the header). */
  readonly chunkBytes?: number;
  readonly signal?: AbortSignal;
}

const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ [0-9a-f]+:[0-9a-f]+ (\d+)\s*(.*)$/;

/** The guest RAM's mapping in the text of /proc/PID/maps: the one anonymous `rw-p` mapping of exactly `memoryMiB` MiB. */
export function findRamMapping(maps: string, memoryMiB: number): RamMapping | QemuRamDigestError {
  const size = memoryMiB * MIB;
  const found: RamMapping[] = [];
  const large: string[] = [];
  for (const line of maps.split('\n')) {
    const m = MAPS_LINE.exec(line);
    if (m === null) continue;
    const start = parseInt(m[1]!, 16);
    const end = parseInt(m[2]!, 16);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end <= start) continue;
    const anonymous = m[4] === '0' && m[5] === '';
    if (anonymous && m[3] === 'rw-p' && end - start === size) found.push({ start, end });
    else if (end - start >= size / 2) large.push(`${m[3]} ${((end - start) / MIB).toFixed(1)} MiB${m[5] !== '' ? ` ${m[5]}` : ''}`);
  }
  if (found.length === 1) return found[0]!;
  if (found.length === 0) return new QemuRamDigestError(`no anonymous rw-p mapping of exactly ${memoryMiB} MiB in QEMU's maps (mappings of at least ${memoryMiB / 2} MiB: ${large.join(', ') || 'none'})`);
  return new QemuRamDigestError(`${found.length} anonymous rw-p mappings of exactly ${memoryMiB} MiB in QEMU's maps (${found.map((f) => f.start.toString(16)).join(', ')}): cannot tell which is the guest's RAM`);
}

/** The xxh64 of a digest as the line carries it. */
export function formatXxh64(h: bigint): string {
  return h.toString(16).padStart(16, '0');
}

/** The reader `digestQemuRam` takes when not told: native when the TAP addon has it. */
export function defaultRamReader(): RamReader {
  return ramDigestAddon() !== undefined ? 'native' : 'proc-mem';
}

/** Digest the RAM of the stopped guest that QEMU process `pid` runs with `memoryMiB` MiB. Throws QemuRamDigestError. */
export async function digestQemuRam(pid: number, memoryMiB: number, opts: RamDigestOptions = {}): Promise<RamRangeDigest> {
  let maps: string;
  try {
    const f = await open(`/proc/${pid}/maps`, 'r');
    try { maps = await f.readFile('latin1'); } finally { await f.close(); }
  } catch (err) {
    throw new QemuRamDigestError(`cannot read QEMU ${pid}'s maps: ${(err as Error).message}`, { cause: err, pid });
  }
  const mapping = findRamMapping(maps, memoryMiB);
  if (mapping instanceof QemuRamDigestError) throw new QemuRamDigestError(`QEMU ${pid}: ${mapping.message}`, { pid });
  return digestProcessRange(pid, mapping, opts);
}

/** Digest [start, end) of process `pid`'s memory (the process must not write it meanwhile). Throws QemuRamDigestError. */
export async function digestProcessRange(pid: number, mapping: RamMapping, opts: RamDigestOptions = {}): Promise<RamRangeDigest> {
  const reader = opts.reader ?? defaultRamReader();
  const chunk = opts.chunkBytes ?? (reader === 'native' ? DEFAULT_NATIVE_RAM_CHUNK_BYTES : DEFAULT_RAM_CHUNK_BYTES);
  if (!Number.isInteger(chunk) || chunk < MIN_RAM_CHUNK_BYTES || chunk > MAX_RAM_CHUNK_BYTES) throw new QemuRamDigestError(`chunk of ${chunk} bytes: not an integer in [${MIN_RAM_CHUNK_BYTES}, ${MAX_RAM_CHUNK_BYTES}]`);
  if (!Number.isSafeInteger(mapping.start) || !Number.isSafeInteger(mapping.end) || mapping.start < 0 || mapping.end < mapping.start) {
    throw new QemuRamDigestError(`QEMU ${pid}: [${mapping.start}, ${mapping.end}) is not a range of addresses`, { pid });
  }
  if (opts.signal?.aborted === true) throw cancelled(pid);
  const h = reader === 'native' ? await readNative(pid, mapping, chunk, opts.signal) : await readProcMem(pid, mapping, chunk, opts.signal);
  return { xxh64: formatXxh64(h), bytes: mapping.end - mapping.start, reader };
}

async function readNative(pid: number, mapping: RamMapping, chunk: number, signal: AbortSignal | undefined): Promise<bigint> {
  const addon = ramDigestAddon();
  if (addon === undefined) throw new QemuRamDigestError('the native RAM digest is not in the TAP addon (not built, or built before it): rebuild the addon, or digest with the proc-mem reader');
  try {
    return (await digestRangeNative(addon, pid, mapping.start, mapping.end - mapping.start, chunk, signal)).xxh64;
  } catch (err) {
    const e = err as { code?: unknown; address?: unknown; bytesRead?: unknown };
    const at = typeof e.address === 'number' ? e.address : mapping.start;
    if (e.code === 'SHORT_READ') throw shortRead(pid, at, 0, Math.min(chunk, mapping.end - at), err);
    throw readError(pid, at, err);
  }
}

let hasher: Awaited<ReturnType<typeof xxhash>> | undefined;

async function readProcMem(pid: number, mapping: RamMapping, chunk: number, signal: AbortSignal | undefined): Promise<bigint> {
  hasher ??= await xxhash();
  const h = hasher.create64(0n);
  const buf = Buffer.allocUnsafe(chunk);
  let mem: FileHandle;
  try {
    mem = await open(`/proc/${pid}/mem`, 'r');
  } catch (err) {
    throw new QemuRamDigestError(`cannot open QEMU ${pid}'s memory: ${(err as Error).message}`, { cause: err, pid, ...errnoOf(err) });
  }
  try {
    for (let at = mapping.start; at < mapping.end; at += chunk) {
      if (signal?.aborted === true) throw cancelled(pid);
      const len = Math.min(chunk, mapping.end - at);
      let r: { bytesRead: number };
      try {
        r = await mem.read(buf, 0, len, at);
      } catch (err) {
        throw readError(pid, at, err);
      }
      if (r.bytesRead !== len) throw shortRead(pid, at, r.bytesRead, len);
      h.update(buf.subarray(0, len));
    }
  } finally {
    await mem.close();
  }
  return h.digest();
}

const ERRNO_MEANS: Readonly<Record<string, string>> = {
  ESRCH: 'the process is gone',
  ENOENT: 'the process is gone',
  EPERM: 'no ptrace access to it (root, or its parent, may read it)',
  EACCES: 'no ptrace access to it (root, or its parent, may read it)',
  EFAULT: 'that address is not mapped (readable) in it',
  EIO: 'that address is not mapped (readable) in it',
};

function errnoOf(err: unknown): { errno?: number } {
  const n = (err as { errno?: unknown }).errno;
  return typeof n === 'number' ? { errno: Math.abs(n) } : {};
}

/** A read that failed, on either reader: the pid, the address it started at, the call and its errno. */
function readError(pid: number, at: number, err: unknown): QemuRamDigestError {
  const e = err as { code?: unknown; syscall?: unknown; message?: unknown };
  if (e.code === 'ECANCELED') return cancelled(pid);
  const { errno } = errnoOf(err);
  const code = typeof e.code === 'string' ? e.code : 'an error';
  const call = typeof e.syscall === 'string' && e.syscall !== '' ? e.syscall : 'read';
  const means = ERRNO_MEANS[code];
  const why = errno !== undefined ? `${call} failed with ${code} (errno ${errno})` : `${call} failed: ${String(e.message)}`;
  return new QemuRamDigestError(`cannot read QEMU ${pid}'s RAM at 0x${at.toString(16)}: ${why}${means !== undefined ? `: ${means}` : ''}`, { cause: err, pid, address: at, ...errnoOf(err) });
}

function shortRead(pid: number, at: number, got: number, want: number, cause?: unknown): QemuRamDigestError {
  return new QemuRamDigestError(`QEMU ${pid}'s RAM: ${got} of ${want} bytes read at 0x${at.toString(16)}`, { cause, pid, address: at });
}

function cancelled(pid: number): QemuRamDigestError {
  return new QemuRamDigestError(`QEMU ${pid}: the RAM digest was cancelled`, { pid });
}
