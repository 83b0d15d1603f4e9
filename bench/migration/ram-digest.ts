/**
 * The RAM digest a QEMU migration's verification takes on both daemons
 * (src/host/qemu-ram-digest.ts): the native reader (process_vm_readv into a
 * reused buffer, the addon's xxh64, on a worker thread) against the proc-mem
 * fallback (/proc/PID/mem in 4 MiB preads, xxhash-wasm), over a child
 * process's anonymous mapping of 128 and 512 MiB filled with random bytes
 * (test/helpers/memory-child.ts: QEMU's shape of a guest's RAM).
 *
 *   node --import tsx bench/migration/ram-digest.ts [--reps N] [--sizes 128,512]
 *
 * Per size: the median and the fastest of N digests on each path (one
 * warm-up each first), their ratio, and the native reader at buffer sizes
 * 256 KiB..4 MiB with its time split into reading and hashing (the worker
 * thread's clock). Both paths' digests are checked equal. Wall-clock
 * figures: on a shared machine they are noisy, read the fastest too.
 */
import { defaultRamReader, digestProcessRange, type RamMapping, type RamReader } from '../../src/host/qemu-ram-digest.ts';
import { digestRangeNative, ramDigestAddon } from '../../src/host/ram-digest-native.ts';
import { startMemoryChild } from '../../test/helpers/memory-child.ts';

const MIB = 1024 * 1024;
const KIB = 1024;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const reps = Number(arg('--reps', '7'));
const sizes = arg('--sizes', '128,512').split(',').map(Number);
const addon = ramDigestAddon();
if (addon === undefined || defaultRamReader() !== 'native') throw new Error('the TAP addon with the native RAM digest is not built (build/Release/vnet_tap.node)');

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number): string => x.toFixed(1).padStart(7);

async function timed(pid: number, mapping: RamMapping, reader: RamReader, chunkBytes?: number): Promise<{ ms: number; xxh64: string }> {
  const t0 = performance.now();
  const d = await digestProcessRange(pid, mapping, chunkBytes === undefined ? { reader } : { reader, chunkBytes });
  return { ms: performance.now() - t0, xxh64: d.xxh64 };
}

console.log(`RAM digest of a child's anonymous mapping: native (process_vm_readv + addon xxh64) against proc-mem (/proc/PID/mem + xxhash-wasm); ${reps} reps, median (fastest)`);
console.log('(wall clock on a shared 2-core machine: noisy)\n');
for (const mib of sizes) {
  const child = await startMemoryChild(mib * MIB, mib);
  try {
    const runs: Record<RamReader, number[]> = { native: [], 'proc-mem': [] };
    const first = { native: await timed(child.pid, child.mapping, 'native'), 'proc-mem': await timed(child.pid, child.mapping, 'proc-mem') };
    if (first.native.xxh64 !== first['proc-mem'].xxh64) throw new Error(`${mib} MiB: the paths disagree (${first.native.xxh64} / ${first['proc-mem'].xxh64})`);
    for (let i = 0; i < reps; i++) {
      for (const reader of ['native', 'proc-mem'] as const) runs[reader].push((await timed(child.pid, child.mapping, reader)).ms);
    }
    const n = median(runs.native);
    const p = median(runs['proc-mem']);
    console.log(`${String(mib).padStart(4)} MiB   native ${ms(n)} ms (${ms(Math.min(...runs.native)).trim()})   proc-mem ${ms(p)} ms (${ms(Math.min(...runs['proc-mem'])).trim()})   proc-mem / native ${(p / n).toFixed(2)}x   ${(mib / 1024 / (n / 1000)).toFixed(1)} GiB/s native`);
    for (const buf of [256 * KIB, 512 * KIB, MIB, 4 * MIB]) {
      const walls: number[] = [];
      const reads: number[] = [];
      const hashes: number[] = [];
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        const d = await digestRangeNative(addon, child.pid, child.mapping.start, mib * MIB, buf);
        walls.push(performance.now() - t0);
        reads.push(d.readNs / 1e6);
        hashes.push(d.hashNs / 1e6);
      }
      console.log(`           native, buffer ${String(buf / KIB).padStart(4)} KiB: ${ms(median(walls))} ms (${ms(Math.min(...walls)).trim()})   of which read ${ms(median(reads)).trim()} ms, hash ${ms(median(hashes)).trim()} ms`);
    }
  } finally {
    await child.close();
  }
}
