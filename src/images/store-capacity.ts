/**
 * A site store's capacity (config `images.capacityBytes`, docs/images.md,
 * "Capacity"): a version is propagated only if the chunks it still lacks
 * fit beside what the store holds now. What the store holds counts every
 * chunk on disk (other versions', and unreferenced ones not yet collected);
 * what a VM reads on demand is never refused (the cap bounds propagation).
 */
import type { ChunkStore } from './chunk-store.ts';
import { ImageCapacityError } from './errors.ts';
import type { ImageManifest } from './manifest.ts';

/** The bytes of each distinct chunk of a version (the last chunk may be short). */
export function chunkSizes(manifest: ImageManifest): Map<string, number> {
  const sizes = new Map<string, number>();
  manifest.chunks.forEach((d, i) => {
    if (!sizes.has(d)) sizes.set(d, Math.min(manifest.chunkSize, manifest.size - i * manifest.chunkSize));
  });
  return sizes;
}

/** ImageCapacityError when the version's missing chunks do not fit under `capacityBytes` beside what the store holds. */
export async function checkCapacity(store: ChunkStore, manifest: ImageManifest, capacityBytes: number): Promise<void> {
  let missing = 0;
  let missingBytes = 0;
  for (const [d, bytes] of chunkSizes(manifest)) {
    if (await store.has(d)) continue;
    missing++;
    missingBytes += bytes;
  }
  if (missing === 0) return;
  const used = (await store.entries()).reduce((n, e) => n + e.bytes, 0);
  if (used + missingBytes <= capacityBytes) return;
  throw new ImageCapacityError(store.site, `cannot fit image ${manifest.imageId} version ${manifest.version}: its ${missing} missing chunks (${missingBytes} bytes) and the ${used} bytes held exceed the capacity of ${capacityBytes} bytes (images.capacityBytes): delete old versions or raise the cap`);
}
