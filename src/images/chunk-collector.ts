/**
 * One collection pass over a site's chunk store: the chunks no version
 * the site keeps references are removed, safely (docs/images.md,
 * "Collecting chunks").
 *
 *   live       the digests to keep: every chunk of every version the site
 *              holds or retains, and of the versions its VMs run on (the
 *              caller's; a pass needs it whole, so the daemon runs none
 *              until the controller has said what it keeps)
 *   grace      a chunk not live is removed only once its file time (when
 *              it was written, or put again: chunk-store.ts) is older than
 *              `graceMs`: a chunk a publish uploaded before its manifest
 *              exists, or a propagation has just stored, is young
 *   bounded    at most `maxRemovals` removals a pass (`more` says a pass
 *              stopped there: the caller runs the next one soon)
 *   crash-safe each removal is one unlink (ChunkStore.removeStale): a pass
 *              cut off anywhere leaves every chunk whole or gone, and the
 *              next pass goes on from what is on disk
 */
import type { ChunkStore } from './chunk-store.ts';

export interface CollectionOptions {
  /** Wall-clock now (ms since the epoch; file times are wall-clock). */
  readonly nowMs: number;
  /** A chunk not live is removed only when its file is older than this. */
  readonly graceMs: number;
  /** The most chunks one pass removes. */
  readonly maxRemovals: number;
  readonly signal?: AbortSignal;
  /** Called after each removal (tests inject a crash here). */
  readonly onRemoved?: (digest: string, bytes: number) => void;
}

export interface CollectionPass {
  /** Chunks on disk when the pass began. */
  readonly examined: number;
  /** Of them, live (kept). */
  readonly live: number;
  /** Not live but younger than the grace (kept for now). */
  readonly young: number;
  readonly removedChunks: number;
  readonly removedBytes: number;
  /** The pass stopped at `maxRemovals` with more to remove. */
  readonly more: boolean;
}

/** Removes what `live` does not name and the grace no longer protects, oldest first, up to `maxRemovals`. */
export async function collectChunks(store: ChunkStore, live: ReadonlySet<string>, opts: CollectionOptions): Promise<CollectionPass> {
  const cutoffMs = opts.nowMs - opts.graceMs;
  const entries = await store.entries();
  const stale = entries.filter((e) => !live.has(e.digest) && e.mtimeMs < cutoffMs).sort((a, b) => a.mtimeMs - b.mtimeMs);
  const liveCount = entries.filter((e) => live.has(e.digest)).length;
  let removedChunks = 0;
  let removedBytes = 0;
  for (const e of stale.slice(0, Math.max(0, opts.maxRemovals))) {
    opts.signal?.throwIfAborted();
    const bytes = await store.removeStale(e.digest, cutoffMs);
    if (bytes === undefined) continue; // put again meanwhile, or already gone
    removedChunks++;
    removedBytes += bytes;
    opts.onRemoved?.(e.digest, bytes);
  }
  return {
    examined: entries.length, live: liveCount, young: entries.length - liveCount - stale.length,
    removedChunks, removedBytes, more: stale.length > opts.maxRemovals,
  };
}
