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
 *   read      /proc/PID/mem at that mapping, in chunks of `chunkBytes`
 *             (default 4 MiB; never the whole RAM at once), each chunk into
 *             one reused buffer; a short read is an error
 *   hash      xxh64 (xxhash-wasm, seed 0, streaming): measured here about 4x
 *             faster than SHA-256 and 2x faster than SHA-1 in Node. Not a
 *             defence against a forger (both peers are authenticated by the
 *             channel's mutual TLS): it catches a copy QEMU got wrong.
 *
 * The guest must not run while it is read (the source's after `completed`,
 * the destination's under `-S` before `cont`), or the digest means nothing.
 * Reading another process's memory needs ptrace access to it: root, or the
 * daemon as QEMU's parent (QEMU is its child through `setpriv`'s exec).
 */
import { open, type FileHandle } from 'node:fs/promises';
import xxhash from 'xxhash-wasm';
import { QemuRamDigestError } from './errors.ts';

const MIB = 1024 * 1024;
export const DEFAULT_RAM_CHUNK_BYTES = 4 * MIB;
const MAX_RAM_CHUNK_BYTES = 16 * MIB;

export interface RamMapping {
  readonly start: number;
  readonly end: number;
}

export interface QemuRamDigest {
  /** xxh64 of the RAM, 16 lowercase hex digits. */
  readonly xxh64: string;
  readonly bytes: number;
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

let hasher: Awaited<ReturnType<typeof xxhash>> | undefined;

/** The xxh64 of a digest as the line carries it. */
export function formatXxh64(h: bigint): string {
  return h.toString(16).padStart(16, '0');
}

/** Digest the RAM of the stopped guest that QEMU process `pid` runs with `memoryMiB` MiB. Throws QemuRamDigestError. */
export async function digestQemuRam(pid: number, memoryMiB: number, opts: { chunkBytes?: number; signal?: AbortSignal } = {}): Promise<QemuRamDigest> {
  const chunk = opts.chunkBytes ?? DEFAULT_RAM_CHUNK_BYTES;
  if (!Number.isInteger(chunk) || chunk < 4096 || chunk > MAX_RAM_CHUNK_BYTES) throw new QemuRamDigestError(`chunk of ${chunk} bytes: not an integer in [4096, ${MAX_RAM_CHUNK_BYTES}]`);
  let maps: string;
  try {
    const f = await open(`/proc/${pid}/maps`, 'r');
    try { maps = await f.readFile('latin1'); } finally { await f.close(); }
  } catch (err) {
    throw new QemuRamDigestError(`cannot read QEMU ${pid}'s maps: ${(err as Error).message}`, { cause: err });
  }
  const mapping = findRamMapping(maps, memoryMiB);
  if (mapping instanceof QemuRamDigestError) throw new QemuRamDigestError(`QEMU ${pid}: ${mapping.message}`);
  hasher ??= await xxhash();
  const h = hasher.create64(0n);
  const buf = Buffer.allocUnsafe(chunk);
  let mem: FileHandle;
  try {
    mem = await open(`/proc/${pid}/mem`, 'r');
  } catch (err) {
    throw new QemuRamDigestError(`cannot open QEMU ${pid}'s memory: ${(err as Error).message}`, { cause: err });
  }
  try {
    for (let at = mapping.start; at < mapping.end; at += chunk) {
      if (opts.signal?.aborted === true) throw new QemuRamDigestError(`QEMU ${pid}: the RAM digest was cancelled`);
      const len = Math.min(chunk, mapping.end - at);
      let r: { bytesRead: number };
      try {
        r = await mem.read(buf, 0, len, at);
      } catch (err) {
        throw new QemuRamDigestError(`cannot read QEMU ${pid}'s RAM at 0x${at.toString(16)}: ${(err as Error).message}`, { cause: err });
      }
      if (r.bytesRead !== len) throw new QemuRamDigestError(`QEMU ${pid}'s RAM: ${r.bytesRead} of ${len} bytes read at 0x${at.toString(16)}`);
      h.update(buf.subarray(0, len));
    }
  } finally {
    await mem.close();
  }
  return { xxh64: formatXxh64(h.digest()), bytes: mapping.end - mapping.start };
}
