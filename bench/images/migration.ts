/**
 * A migration's disk phase with and without the destination's chunk store,
 * in CloudNet's setting (one VM of 1.7 GiB RAM and a 10 GiB disk, 465 Mbit/s,
 * 27 ms RTT; the tpc-w profile writing its disk throughout), in virtual time.
 *
 *   node --import tsx bench/images/migration.ts [--quick]     (--quick: a 1 GiB disk)
 *
 * The real engine runs (MigrationSender, MigrationReceiver, the emulated
 * link; runVirtualMigration): with the chunk store the sender asks the
 * destination which of the disk's 4 MiB image chunks it holds (the
 * chunk-query's round trip is charged) and sends a chunk record instead of
 * every span it holds that the VM has not changed. Synthetic content stands
 * in for the bytes: a base image's block b is the descriptor {base: B + b,
 * ver: 0}; a chunk's digest is the SHA-256 of its name; a span "matches" its
 * chunk while every block still holds the base's descriptor. The
 * destination's read of a chunk from its own disk is not charged.
 *
 * Two VMs: one cloned from a base image the destination's site holds (its
 * own writes: 5% of the disk, in runs, before the migration, plus what
 * tpc-w writes during it), and one with a unique disk (no chunk of it is at
 * the destination). Printed: disk bytes, total time, downtime for each with
 * and without the chunk store.
 */
import { createHash } from 'node:crypto';
import { BLOCK_SIZE, type PageContent, type SynthContent } from '../../src/migration/guest.ts';
import { ModelGuest } from '../../src/migration/guests/memory-guest.ts';
import { PROFILES, SCENARIOS } from '../../src/migration/guests/workload-profiles.ts';
import { runVirtualMigration } from '../../src/migration/drivers/virtual-time.ts';
import type { MigrationResult } from '../../src/migration/engine/migration-result.ts';
import { SmartStop } from '../../src/migration/stop-rules/smart-stop.ts';

const quick = process.argv.includes('--quick');
const cn = SCENARIOS.cloudnet;
const CHUNK_BLOCKS = (4 * 1024 * 1024) / BLOCK_SIZE;
const BLOCKS = Math.round((quick ? 1024 ** 3 : cn.diskBytes) / BLOCK_SIZE);
const PAGES = Math.round(cn.ramBytes / 4096);
const CHUNKS = Math.ceil(BLOCKS / CHUNK_BLOCKS);

const digestOf = (name: string): string => {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 16)}-${h}`;
};

interface BaseImage { readonly name: string; readonly offset: number; readonly chunks: readonly string[] }

function baseImage(name: string, offset: number): BaseImage {
  return { name, offset, chunks: Array.from({ length: CHUNKS }, (_, c) => digestOf(`${name}:${c}`)) };
}

/** A VM whose disk starts as `base`; `ownWrites` of its blocks (in runs of 2048) then hold its own content. */
function vmOn(base: BaseImage, ownWrites: number, seed: number): ModelGuest {
  const g = new ModelGuest({ name: `vm-${base.name}`, pageCount: PAGES, blockCount: BLOCKS, representation: 'synthetic', memoryWorkload: PROFILES['tpc-w'].memory, diskWorkload: PROFILES['tpc-w'].disk, seed });
  const disk = g.disk!;
  for (let b = 0; b < BLOCKS; b++) disk.writeBlock(b, { base: base.offset + b, ver: 0 });
  const runs = Math.ceil(ownWrites / 2048);
  for (let r = 0; r < runs; r++) {
    const start = Math.floor(((r * 7919) % runs) * (BLOCKS / runs));
    for (let b = start; b < Math.min(BLOCKS, start + 2048); b++) disk.writeBlock(b, { base: 9_000_000 + b, ver: 1 });
  }
  return g;
}

function imageOf(g: ModelGuest, base: BaseImage, held: ReadonlySet<string>) {
  const disk = g.disk!;
  return {
    chunkBlocks: CHUNK_BLOCKS,
    chunks: base.chunks,
    held,
    matches(first: number, count: number, digest: string): boolean {
      if (base.chunks[first / CHUNK_BLOCKS] !== digest) return false;
      for (let i = 0; i < count; i++) {
        const c = disk.readBlock(first + i) as SynthContent;
        if (c.base !== base.offset + first + i || c.ver !== 0) return false;
      }
      return true;
    },
    localBlocks(rec: { first: number; count: number }): PageContent[] {
      return Array.from({ length: rec.count }, (_, i) => ({ base: base.offset + rec.first + i, ver: 0 }));
    },
  };
}

async function run(base: BaseImage, withStore: boolean, destination: ReadonlySet<string>): Promise<MigrationResult> {
  const g = vmOn(base, base.name === 'shared' ? Math.round(BLOCKS * 0.05) : 0, 11);
  return runVirtualMigration({
    // The destination's answer to the chunk-query: the digests asked that its store holds.
    guest: g, rule: new SmartStop(), ...(withStore ? { diskImage: imageOf(g, base, new Set(base.chunks.filter((x) => destination.has(x)))) } : {}),
  }, { link: { bandwidthBps: cn.bandwidthBps, rttMs: cn.rttMs }, batchBytes: 1 << 20 });
}

const shared = baseImage('shared', 1_000_000);
const unique = baseImage('unique', 5_000_000);
// The destination's site holds the shared base image (every chunk), nothing of the unique disk.
const atDestination = new Set(shared.chunks);

console.log(`one VM: ${(cn.ramBytes / 2 ** 30).toFixed(1)} GiB RAM (tpc-w), ${((BLOCKS * BLOCK_SIZE) / 2 ** 30).toFixed(0)} GiB disk in ${CHUNKS} chunks of 4 MiB; ${cn.bandwidthBps / 1e6} Mbit/s, ${cn.rttMs} ms RTT; smart stop; virtual time`);
console.log('');
console.log('disk                                chunk store   disk GB   total GB   total time   downtime   chunks filled at the destination');
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const rows: Array<[string, BaseImage, boolean]> = [
  ['base image + 5% own writes', shared, true],
  ['base image + 5% own writes', shared, false],
  ['unique', unique, true],
  ['unique', unique, false],
];
const results: MigrationResult[] = [];
for (const [label, base, store] of rows) {
  const r = await run(base, store, atDestination);
  results.push(r);
  const filled = r.sender.diskImage === undefined ? '-' : `${r.sender.diskImage.chunks} (${((r.sender.diskImage.blocks * BLOCK_SIZE) / 2 ** 30).toFixed(1)} GiB)`;
  console.log(`  ${label.padEnd(32)}  ${(store ? 'yes' : 'no').padEnd(11)} ${(r.bytes.disk / 1e9).toFixed(2).padStart(7)}   ${(r.bytes.total / 1e9).toFixed(2).padStart(8)}   ${s(r.totalMs).padStart(10)}   ${`${Math.round(r.downtimeMs)} ms`.padStart(8)}   ${filled}${r.ok ? '' : '  (FAILED)'}`);
}
const [a, b, c, d] = results as [MigrationResult, MigrationResult, MigrationResult, MigrationResult];
console.log('');
console.log(`base-image VM: disk bytes ×${(a.bytes.disk / b.bytes.disk).toFixed(3)}, total time ×${(a.totalMs / b.totalMs).toFixed(2)} with the chunk store; unique disk: ×${(c.bytes.disk / d.bytes.disk).toFixed(3)} bytes, ×${(c.totalMs / d.totalMs).toFixed(3)} time (the query's round trip)`);
