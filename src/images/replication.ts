/**
 * Publishing an image version and propagating it between sites.
 *
 * Consistency is decoupled from data propagation: manifests are strongly
 * consistent in a `ManifestRegistry` (the controller's store), chunks flow
 * between the sites' stores in the background. The one rule that joins
 * them is the publish order: every chunk of a version is stored (durably,
 * verified) at the origin site before the manifest is written, so no reader
 * ever sees a version whose chunks cannot be fetched from somewhere.
 *
 * Propagation copies a version's chunks to a site in `propagationOrder`
 * (recorded boot order first), each from the nearest replica holding it.
 * A chunk is whole on disk or absent (chunk-store.ts), so a propagation cut
 * off by a crash resumes, after a restart, from what is on disk: the chunks
 * already there are not fetched again.
 */
import type { ChunkFetcher, FetchRecord } from './chunk-fetcher.ts';
import type { ChunkStore } from './chunk-store.ts';
import { ChunkUnavailableError } from './errors.ts';
import type { ImageManifest } from './manifest.ts';
import { propagationOrder } from './propagation-order.ts';

/** Where manifests are strongly consistent. */
export interface ManifestRegistry {
  /** Writes a version (durably, when it resolves); refuses a version that already exists with other content. */
  publish(manifest: ImageManifest, originSite: string): Promise<void> | void;
  latest(imageId: string): ImageManifest | undefined;
}

/**
 * Stores every chunk at the origin first, checks they are all there, then
 * writes the manifest. A failure before the last step leaves no manifest
 * (the stored chunks are harmless: content-addressed, shared by versions).
 */
export async function publishImage(
  origin: ChunkStore,
  registry: ManifestRegistry,
  manifest: ImageManifest,
  chunkBytes: readonly Uint8Array[],
): Promise<void> {
  for (let i = 0; i < manifest.chunks.length; i++) {
    const bytes = chunkBytes[i];
    const digest = manifest.chunks[i]!;
    if (bytes !== undefined) await origin.put(bytes, digest);
  }
  const missing: string[] = [];
  for (const d of new Set(manifest.chunks)) if (!(await origin.has(d))) missing.push(d);
  if (missing.length > 0) throw new ChunkUnavailableError(missing[0]!, [origin.site]);
  await registry.publish(manifest, origin.site);
}

export interface PropagationProgress {
  readonly imageId: string;
  readonly version: number;
  readonly site: string;
  /** Distinct chunks of the version. */
  readonly total: number;
  /** Of them, held at the site. */
  readonly held: number;
}

/** How much of a version a site holds. */
export async function propagationProgress(site: ChunkStore, manifest: ImageManifest): Promise<PropagationProgress> {
  const distinct = new Set(manifest.chunks);
  let held = 0;
  for (const d of distinct) if (await site.has(d)) held++;
  return { imageId: manifest.imageId, version: manifest.version, site: site.site, total: distinct.size, held };
}

/**
 * Brings a version's chunks to the site, boot order first. Returns what was
 * fetched; chunks already on disk are skipped (resume). With several
 * fetchers (each its own connections) that many chunks are in flight at
 * once, taken in propagation order.
 */
export async function propagate(
  site: ChunkStore,
  fetcher: ChunkFetcher | readonly ChunkFetcher[],
  manifest: ImageManifest,
  opts: { signal?: AbortSignal; onChunk?: (r: FetchRecord) => void } = {},
): Promise<FetchRecord[]> {
  const held = new Set<string>();
  for (const d of new Set(manifest.chunks)) if (await site.has(d)) held.add(d);
  const order = propagationOrder(manifest, held);
  const fetched: FetchRecord[] = [];
  let next = 0;
  let failed = false;
  const work = async (f: ChunkFetcher): Promise<void> => {
    while (next < order.length && !failed) {
      opts.signal?.throwIfAborted();
      try {
        const { record } = await f.fetch(order[next++]!, opts.signal);
        fetched.push(record);
        opts.onChunk?.(record);
      } catch (e) {
        failed = true; // the other workers stop after the chunk they are on
        throw e;
      }
    }
  };
  const fetchers = Array.isArray(fetcher) ? fetcher : [fetcher as ChunkFetcher];
  await Promise.all(fetchers.map(work));
  return fetched;
}
