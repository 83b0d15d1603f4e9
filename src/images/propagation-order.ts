/**
 * The order in which a site receives an image's chunks (pure): the chunks a
 * recorded boot reads, in the order it read them, then the rest in image
 * order; each distinct digest once, and none the site already holds. A VM
 * booted at the site while the image is still arriving then finds the
 * chunks it needs first already local.
 */
import type { ImageManifest } from './manifest.ts';

export function propagationOrder(manifest: ImageManifest, held: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  const taken = new Set<string>(held);
  const take = (i: number): void => {
    const d = manifest.chunks[i];
    if (d === undefined || taken.has(d)) return;
    taken.add(d);
    out.push(d);
  };
  for (const i of manifest.accessOrder) take(i);
  for (let i = 0; i < manifest.chunks.length; i++) take(i);
  return out;
}

/** Distinct digests of a manifest. */
export function distinctChunks(manifest: ImageManifest): Set<string> {
  return new Set(manifest.chunks);
}
