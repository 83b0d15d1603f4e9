/**
 * The versions a site's daemon is bringing into its chunk store, one job
 * each (docs/images.md, "Propagation"), for the image propagator
 * (image-propagator.ts), which decides what is held.
 *
 *   queue          at most `maxVersions` versions propagate at once, in the
 *                  order they were asked for
 *   a version      `propagate` in boot order, `concurrency` chunks in flight
 *                  (each worker its own TLS connections), every chunk from
 *                  the nearest replica holding it and verified (SHA-256)
 *                  before it is stored; then every chunk is checked present
 *   progress       `image-progress` at start, at most once per `reportEveryMs`
 *                  while chunks arrive, and at the end (complete / stalled)
 *   stalled        no replica had a chunk, or none could be reached, or the
 *                  store's capacity cannot fit it (store-capacity.ts): retried
 *                  after `retryMs`, doubling to 60 s; a hold again retries now
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import type { ImageProgressReport } from '../control/image-control.ts';
import type { ChunkFetcher } from '../images/chunk-fetcher.ts';
import type { ChunkStore } from '../images/chunk-store.ts';
import type { ImageManifest } from '../images/manifest.ts';
import { propagate, propagationProgress } from '../images/replication.ts';
import type { RemoteChunkSource } from '../images/remote-chunk-source.ts';
import { checkCapacity } from '../images/store-capacity.ts';

export interface PropagationJobsComponents {
  store: ChunkStore;
  logger: Logger;
  clock: Clock;
  /** A fetcher over its own connections to the replicas known now (closed by the job). */
  fetcher(): { fetcher: ChunkFetcher; sources: RemoteChunkSource[] };
  emit(r: ImageProgressReport): void;
}

export interface PropagationJobsInit {
  /** Chunks in flight per version (default 4). */
  concurrency?: number;
  /** Versions propagating at once (default 2). */
  maxVersions?: number;
  /** Least time between two progress reports of a version while it runs (default 1000 ms). */
  reportEveryMs?: number;
  /** First wait before retrying a stalled version (default 2000 ms; doubles to 60 s). */
  retryMs?: number;
  /** A version whose missing chunks do not fit beside what the store holds is not propagated: stalled, VNET_ERR_IMAGE_CAPACITY (retried). */
  capacityBytes?: number | undefined;
}

export type JobState = 'queued' | 'propagating' | 'complete' | 'stalled';

export interface JobStatus {
  state: JobState;
  held: number;
  total: number;
  /** Chunks fetched from other sites (all runs). */
  fetched: number;
}

interface Job {
  readonly manifest: ImageManifest;
  readonly total: number;
  state: JobState;
  held: number;
  fetched: number;
  error: { code: string; message: string } | undefined;
  lastReportMs: number;
  retryMs: number;
  retry: TimerHandle | undefined;
}

const MAX_RETRY_MS = 60_000;

export const versionKey = (imageId: string, version: number): string => `${imageId}@${version}`;

export class PropagationJobs {
  readonly #c: PropagationJobsComponents;
  readonly #init: PropagationJobsInit;
  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #active = 0;

  constructor(c: PropagationJobsComponents, init: PropagationJobsInit) {
    this.#c = c;
    this.#init = init;
  }

  /** Where a version stands here (undefined: never asked to hold it). */
  status(imageId: string, version: number): JobStatus | undefined {
    const j = this.#jobs.get(versionKey(imageId, version));
    return j === undefined ? undefined : { state: j.state, held: j.held, total: j.total, fetched: j.fetched };
  }

  /** A version to hold: queued when new; retried now when stalled (new replicas may have what was missing); else only re-reported. */
  hold(manifest: ImageManifest): void {
    const key = versionKey(manifest.imageId, manifest.version);
    const known = this.#jobs.get(key);
    if (known !== undefined) {
      if (known.state === 'stalled' && known.retry !== undefined) {
        known.retry.cancel();
        known.retry = undefined;
        this.#enqueue(known);
      } else {
        this.#report(known);
      }
      return;
    }
    const job: Job = {
      manifest, total: new Set(manifest.chunks).size, state: 'queued', held: 0, fetched: 0, error: undefined, lastReportMs: -Infinity,
      retryMs: this.#init.retryMs ?? 2000, retry: undefined,
    };
    this.#jobs.set(key, job);
    this.#enqueue(job);
  }

  /** A deleted version's job dropped (a run under way stops at its next chunk; chunks it stored are collected later); false when there was none. */
  drop(imageId: string, version: number): boolean {
    const key = versionKey(imageId, version);
    const job = this.#jobs.get(key);
    if (job === undefined) return false;
    job.retry?.cancel();
    job.retry = undefined;
    this.#jobs.delete(key);
    const queued = this.#queue.indexOf(job);
    if (queued >= 0) this.#queue.splice(queued, 1);
    return true;
  }

  /** Stops every propagation (the chunks stored so far stay) and waits for them to wind down. */
  async close(): Promise<void> {
    this.#abort.abort();
    for (const j of this.#jobs.values()) j.retry?.cancel();
    await Promise.allSettled([...this.#running]);
  }

  #enqueue(job: Job): void {
    if (this.#jobs.get(versionKey(job.manifest.imageId, job.manifest.version)) !== job) return; // deleted meanwhile
    job.state = 'queued';
    this.#queue.push(job);
    this.#pump();
  }

  #pump(): void {
    while (this.#active < Math.max(1, this.#init.maxVersions ?? 2) && this.#queue.length > 0 && !this.#abort.signal.aborted) {
      const job = this.#queue.shift()!;
      this.#active++;
      const run = this.#run(job).finally(() => {
        this.#active--;
        this.#running.delete(run);
        this.#pump();
      });
      this.#running.add(run);
    }
  }

  async #run(job: Job): Promise<void> {
    const { manifest } = job;
    const { store } = this.#c;
    const signal = this.#abort.signal;
    job.state = 'propagating';
    job.error = undefined;
    const workers = Array.from({ length: Math.max(1, this.#init.concurrency ?? 4) }, () => this.#c.fetcher());
    try {
      job.held = (await propagationProgress(store, manifest)).held;
      this.#report(job, true);
      if (job.held < job.total && this.#init.capacityBytes !== undefined) await checkCapacity(store, manifest, this.#init.capacityBytes);
      if (job.held < job.total) {
        this.#c.logger.info({ image: manifest.imageId, version: manifest.version, held: job.held, total: job.total, replicas: workers[0]!.fetcher.replicaOrder }, 'propagating an image version');
        await propagate(store, workers.map((w) => w.fetcher), manifest, {
          signal,
          onChunk: (r) => {
            job.held++;
            if (r.from !== store.site) job.fetched++;
            this.#report(job);
          },
        });
      }
      // Verified as each arrived; now that every one is here.
      job.held = (await propagationProgress(store, manifest)).held;
      if (job.held < job.total) throw new Error(`${job.total - job.held} chunks are still missing after propagation`);
      job.state = 'complete';
      job.retryMs = this.#init.retryMs ?? 2000;
      this.#c.logger.info({ image: manifest.imageId, version: manifest.version, total: job.total }, 'image version complete at this site');
      this.#report(job, true);
    } catch (err) {
      if (signal.aborted) return;
      const e = err as { code?: string; message?: string };
      job.state = 'stalled';
      job.error = { code: e.code ?? 'VNET_ERR_IMAGE_PROPAGATION', message: String(e.message ?? err).slice(0, 4096) };
      job.held = (await propagationProgress(store, manifest).catch(() => ({ held: job.held }))).held;
      this.#c.logger.warn({ image: manifest.imageId, version: manifest.version, held: job.held, total: job.total, code: job.error.code, detail: job.error.message, retryInMs: job.retryMs }, 'image propagation stalled; retrying');
      this.#report(job, true);
      job.retry = this.#c.clock.setTimeout(() => {
        job.retry = undefined;
        if (job.state === 'stalled') this.#enqueue(job);
      }, job.retryMs);
      job.retryMs = Math.min(MAX_RETRY_MS, job.retryMs * 2);
    } finally {
      for (const w of workers) for (const s of w.sources) s.close();
    }
  }

  #report(job: Job, force = false): void {
    const now = this.#c.clock.now();
    if (!force && job.state === 'propagating' && now - job.lastReportMs < (this.#init.reportEveryMs ?? 1000)) return;
    job.lastReportMs = now;
    const state = job.state === 'queued' ? 'propagating' : job.state;
    this.#c.emit({
      type: 'image-progress', imageId: job.manifest.imageId, version: job.manifest.version, held: job.held, total: job.total, state,
      ...(state === 'stalled' && job.error !== undefined ? { error: job.error } : {}),
    });
  }
}
