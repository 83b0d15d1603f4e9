/**
 * Reads chunks a site lacks from the nearest replica that has them.
 *
 * Replicas are ranked by the deployment's site latencies (from this site);
 * a chunk is asked of each in that order. Bytes that arrive are verified
 * against the digest (sha256, since they crossed sites): a copy that does
 * not match is refused and fetched again — once more from the same replica
 * (a transfer fault), then from the next one; a replica that cannot be
 * reached is passed over. A verified chunk is stored
 * locally (atomically) before it is returned, so it is fetched once.
 */
import type { ChunkSource, ChunkStore } from './chunk-store.ts';
import { ChunkIntegrityError, ChunkUnavailableError } from './errors.ts';

export type SiteLatencyMs = (from: string, to: string) => number;

export interface FetchRecord {
  readonly digest: string;
  /** The site the chunk came from (this site's own when it was local). */
  readonly from: string;
  /** Copies refused for not matching the digest. */
  readonly refused: number;
}

export interface ChunkFetcherInit {
  readonly local: ChunkStore;
  readonly replicas: readonly ChunkSource[];
  readonly latencyMs: SiteLatencyMs;
  /** Attempts per replica when copies arrive corrupted (default 2). */
  readonly attemptsPerReplica?: number;
}

/** Replicas nearest first (ties by site name, so the order is stable). */
export function rankReplicas(site: string, replicas: readonly ChunkSource[], latencyMs: SiteLatencyMs): ChunkSource[] {
  return replicas
    .filter((r) => r.site !== site)
    .map((r) => ({ r, ms: latencyMs(site, r.site) }))
    .sort((a, b) => a.ms - b.ms || (a.r.site < b.r.site ? -1 : a.r.site > b.r.site ? 1 : 0))
    .map((x) => x.r);
}

export class ChunkFetcher {
  readonly #local: ChunkStore;
  readonly #ranked: ChunkSource[];
  readonly #attempts: number;

  constructor(init: ChunkFetcherInit) {
    this.#local = init.local;
    this.#ranked = rankReplicas(init.local.site, init.replicas, init.latencyMs);
    this.#attempts = Math.max(1, init.attemptsPerReplica ?? 2);
  }

  get replicaOrder(): string[] {
    return this.#ranked.map((r) => r.site);
  }

  /** The verified chunk: local if held intact, else from the nearest replica holding it. */
  async fetch(digest: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; record: FetchRecord }> {
    let refused = 0;
    if (await this.#local.has(digest)) {
      try {
        return { bytes: await this.#local.get(digest), record: { digest, from: this.#local.site, refused } };
      } catch (e) {
        if (!(e instanceof ChunkIntegrityError)) throw e;
        refused++;
      }
    }
    const tried: string[] = [];
    let lastError: unknown;
    for (const replica of this.#ranked) {
      signal?.throwIfAborted();
      let held: boolean;
      try {
        held = await replica.has(digest);
      } catch (e) {
        lastError = e; // unreachable: the next replica
        continue;
      }
      if (!held) continue;
      tried.push(replica.site);
      for (let attempt = 0; attempt < this.#attempts; attempt++) {
        let bytes: Uint8Array;
        try {
          bytes = await replica.read(digest);
        } catch (e) {
          lastError = e;
          break;
        }
        try {
          await this.#local.put(bytes, digest);
        } catch (e) {
          if (!(e instanceof ChunkIntegrityError)) throw e;
          lastError = e;
          refused++;
          continue;
        }
        return { bytes, record: { digest, from: replica.site, refused } };
      }
    }
    throw new ChunkUnavailableError(digest, tried, { cause: lastError });
  }
}
