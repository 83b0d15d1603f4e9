/**
 * Geo-replicated images in CloudNet's setting (topologies/wan-3-site.yaml:
 * the origin in Illinois; Texas 465 Mbit/s, 27 ms RTT; California 300 Mbit/s,
 * 52 ms; Texas–California 400 Mbit/s, 36 ms), in virtual time.
 *
 *   node --import tsx bench/images/run.ts [--quick]
 *
 * The image is 10 GiB (CloudNet's disk) in 4 MiB chunks; a recorded boot
 * reads 64 of them (256 MiB) in a scattered order. The real code runs — chunk stores on disk,
 * `publishImage`, `propagate` in `propagationOrder`, the `ChunkFetcher`
 * ranking replicas by latency and verifying every chunk — but each chunk's
 * bytes on disk are a 4 KiB stand-in, and a read over a WAN link advances
 * the destination's virtual clock by RTT + 4 MiB / bandwidth (one chunk at a
 * time per destination, as `propagate` and a reader ask for them). Asking a
 * replica whether it has a chunk is not charged (the controller's progress
 * records say who holds what).
 *
 * Printed: when every boot chunk is local at California and when the whole
 * image is, propagating in boot order vs image order; a boot at
 * California that reads on demand, from the origin vs from the nearest
 * replica (Texas, once it holds the image); and the time until a VM can
 * boot at Texas (CloudNet's 465 Mbit/s, 27 ms) after a full copy, on
 * demand, and with the boot chunks prefetched first.
 * The disk phase of a migration with the chunk store: bench/images/migration.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore, type ChunkSource } from '../../src/images/chunk-store.ts';
import { ChunkFetcher } from '../../src/images/chunk-fetcher.ts';
import { ImageReader } from '../../src/images/image-reader.ts';
import { chunkImage, type ImageManifest } from '../../src/images/manifest.ts';
import { propagate, publishImage, type ManifestRegistry } from '../../src/images/replication.ts';

const quick = process.argv.includes('--quick');
const CHUNK_BYTES = 4 * 1024 * 1024;
const STAND_IN = 4096;
const CHUNKS = quick ? 128 : 2560;
const BOOT = quick ? 16 : 64;
const WAN: Record<string, { mbit: number; rttMs: number }> = {
  'illinois|texas': { mbit: 465, rttMs: 27 },
  'california|illinois': { mbit: 300, rttMs: 52 },
  'california|texas': { mbit: 400, rttMs: 36 },
};
const link = (a: string, b: string): { mbit: number; rttMs: number } => WAN[[a, b].sort().join('|')]!;
const latencyMs = (a: string, b: string): number => (a === b ? 0 : link(a, b).rttMs);

/** Virtual time per destination site, advanced by each chunk it reads over a WAN link. */
const clocks = new Map<string, number>();

function timed(src: ChunkStore, to: string): ChunkSource {
  return {
    site: src.site,
    has: (d) => src.has(d),
    async read(d) {
      const l = link(src.site, to);
      clocks.set(to, (clocks.get(to) ?? 0) + l.rttMs + (CHUNK_BYTES * 8) / (l.mbit * 1000));
      return src.read(d);
    },
  };
}

function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'vnet-bench-images-'));
  try {
    const open = (site: string, tag: string): Promise<ChunkStore> => ChunkStore.open({ site, dir: join(root, `${tag}-${site}`) });
    const origin = await open('illinois', 'x');
    const rnd = seeded(7);
    const image = new Uint8Array(CHUNKS * STAND_IN);
    for (let i = 0; i < image.length; i += 4) image[i] = Math.floor(rnd() * 256);
    const pool = [...Array(CHUNKS).keys()];
    const accessOrder: number[] = [];
    for (let i = 0; i < BOOT; i++) accessOrder.push(pool.splice(Math.floor(rnd() * pool.length), 1)[0]!);
    const { manifest, chunkBytes } = chunkImage({ imageId: 'bench', version: 1, chunkSize: STAND_IN, accessOrder }, image, origin.hasher);
    const versions: ImageManifest[] = [];
    const registry: ManifestRegistry = { publish: (m) => void versions.push(m), latest: () => versions.at(-1) };
    await publishImage(origin, registry, manifest, chunkBytes);
    const boot = new Set(accessOrder.map((i) => manifest.chunks[i]!));

    const propagation = async (tag: string, order: 'boot' | 'image', site = 'california'): Promise<{ bootLocalS: number; allLocalS: number }> => {
      const ca = await open(site, tag);
      clocks.set(site, 0);
      const m = order === 'boot' ? manifest : { ...manifest, accessOrder: [] };
      let seen = 0;
      let bootLocal = 0;
      await propagate(ca, new ChunkFetcher({ local: ca, replicas: [timed(origin, site)], latencyMs }), m, {
        onChunk: (r) => {
          if (boot.has(r.digest) && ++seen === boot.size) bootLocal = clocks.get(site)!;
        },
      });
      return { bootLocalS: bootLocal / 1000, allLocalS: clocks.get(site)! / 1000 };
    };
    const byBoot = await propagation('boot', 'boot');
    const byImage = await propagation('image', 'image');

    const bootOnDemand = async (tag: string, replicas: ChunkSource[], site = 'california'): Promise<{ seconds: number; from: string }> => {
      const ca = await open(site, tag);
      clocks.set(site, 0);
      const from = new Set<string>();
      const reader = new ImageReader(manifest, new ChunkFetcher({ local: ca, replicas, latencyMs }), (r) => from.add(r.from));
      for (const i of accessOrder) await reader.readChunk(i);
      return { seconds: clocks.get(site)! / 1000, from: [...from].join('+') };
    };
    const fromOrigin = await bootOnDemand('od-origin', [timed(origin, 'california')]);
    // Time until a VM can boot at Texas: after a full copy (image order), reading on demand, or with its boot chunks prefetched first.
    const txFull = await propagation('tx-full', 'image', 'texas');
    const txPrefetch = await propagation('tx-prefetch', 'boot', 'texas');
    const txOnDemand = await bootOnDemand('tx-od', [timed(origin, 'texas')], 'texas');
    const texas = await open('texas', 'x');
    clocks.set('texas', 0);
    await propagate(texas, new ChunkFetcher({ local: texas, replicas: [timed(origin, 'texas')], latencyMs }), manifest);
    const texasFullS = clocks.get('texas')! / 1000;
    const fromNearest = await bootOnDemand('od-nearest', [timed(origin, 'california'), timed(texas, 'california')]);

    const mib = (n: number): string => `${(n * CHUNK_BYTES) / 2 ** 20} MiB`;
    console.log(`image ${mib(CHUNKS)} in ${CHUNKS} chunks of 4 MiB; a boot reads ${BOOT} (${mib(BOOT)}); virtual time, CloudNet's WAN (wan-3-site)`);
    console.log('');
    console.log('propagation Illinois → California (300 Mbit/s, 52 ms)   boot chunks local   whole image local');
    console.log(`  boot order first (propagationOrder)                  ${byBoot.bootLocalS.toFixed(1).padStart(8)} s ${byBoot.allLocalS.toFixed(1).padStart(16)} s`);
    console.log(`  image order                                          ${byImage.bootLocalS.toFixed(1).padStart(8)} s ${byImage.allLocalS.toFixed(1).padStart(16)} s`);
    console.log('');
    console.log('a boot at California reading every chunk on demand          boot I/O   served by');
    console.log(`  only the origin holds the image                     ${fromOrigin.seconds.toFixed(1).padStart(8)} s   ${fromOrigin.from}`);
    console.log(`  Texas holds it too (propagated in ${texasFullS.toFixed(1)} s)            ${fromNearest.seconds.toFixed(1).padStart(8)} s   ${fromNearest.from}`);
    console.log('');
    console.log('a VM booting at Texas (465 Mbit/s, 27 ms; CloudNet)        can boot after   its boot then waits on the WAN');
    console.log(`  full copy first                                       ${txFull.allLocalS.toFixed(1).padStart(8)} s   ${'0.0'.padStart(12)} s`);
    console.log(`  on demand (nothing copied ahead)                      ${'0.0'.padStart(8)} s   ${txOnDemand.seconds.toFixed(1).padStart(12)} s`);
    console.log(`  prefetched: boot chunks first, from the publish       ${txPrefetch.bootLocalS.toFixed(1).padStart(8)} s   ${'0.0'.padStart(12)} s   (whole image local after ${txPrefetch.allLocalS.toFixed(1)} s)`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
