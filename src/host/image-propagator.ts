/**
 * A site's daemon bringing the image versions the controller asks it to hold
 * into its chunk store (docs/images.md, "Propagation"; the messages:
 * src/control/image-control.ts).
 *
 *   image-hold     validated (validateManifest); the replicas replace the
 *                  ones known; a version already complete or under way is
 *                  only re-reported; a new one is queued
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
 *                  after `retryMs`, doubling to 60 s
 *
 *   keep           (feature image-keep) a hold's `keep` names every version
 *                  the catalogue keeps: a version known here that is not in
 *                  it was deleted and is forgotten, as is a `release`d one;
 *                  a `retain`ed one is known (VMs may open it) but not
 *                  fetched ahead of them. `liveDigests` — what collection
 *                  keeps — is defined only once every kept version is known
 *   uses           the VMs here on an image version (`open`/`reader` with a
 *                  VM's name), reported (`image-uses`) to a controller that
 *                  sent a keep: a version in use is not deleted
 *
 * Resumable: a chunk is whole on disk or absent (chunk-store.ts) and the
 * controller re-sends its holds after every welcome, so a daemon restarted
 * mid-propagation picks up from what its store holds, fetching nothing twice.
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { ImageAnnounce, ImageBootTraceReport, ImageControl, ImageHold, ImageHoldReplica, ImageReport, ImageUsesReport } from '../control/image-control.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import { ChunkFetcher } from '../images/chunk-fetcher.ts';
import type { ChunkStore } from '../images/chunk-store.ts';
import { validateManifest, type ImageManifest } from '../images/manifest.ts';
import { propagate, propagationProgress } from '../images/replication.ts';
import { RemoteChunkSource } from '../images/remote-chunk-source.ts';
import { checkCapacity } from '../images/store-capacity.ts';
import { ImageUses, type ImageUse } from './image-uses.ts';

export interface ImagePropagatorComponents {
  store: ChunkStore;
  logger: Logger;
  clock: Clock;
}

export interface ImagePropagatorInit {
  /** This host's certificate (mutual TLS to the other sites' chunk servers). */
  credentials: TlsCredentials;
  /** Where this daemon's chunk server listens (announced in the hello). */
  announce: ImageAnnounce;
  /** Chunks in flight per version (default 4). */
  concurrency?: number;
  /** Versions propagating at once (default 2). */
  maxVersions?: number;
  /** Least time between two progress reports of a version while it runs (default 1000 ms). */
  reportEveryMs?: number;
  /** First wait before retrying a stalled version (default 2000 ms; doubles to 60 s). */
  retryMs?: number;
  /** Bring every version held here in the background (default true); false: chunks come only when a VM here reads them. */
  prefetch?: boolean;
  /** A version whose missing chunks do not fit beside what the store holds is not propagated: stalled, VNET_ERR_IMAGE_CAPACITY (retried). */
  capacityBytes?: number | undefined;
}

/** An image version a VM here reads from: its manifest and a fetcher over its own connections to the replicas (close it with the VM). */
export interface OpenedImage {
  readonly manifest: ImageManifest;
  readonly fetcher: ChunkFetcher;
  close(): void;
}

type JobState = 'queued' | 'propagating' | 'complete' | 'stalled';

interface Job {
  readonly manifest: ImageManifest;
  readonly total: number;
  state: JobState;
  held: number;
  /** Chunks fetched from other sites (all runs). */
  fetched: number;
  error: { code: string; message: string } | undefined;
  lastReportMs: number;
  retryMs: number;
  retry: TimerHandle | undefined;
}

const MAX_RETRY_MS = 60_000;
const keyOf = (imageId: string, version: number): string => `${imageId}@${version}`;

export class ImagePropagator implements ImageControl {
  readonly announce: ImageAnnounce;
  readonly #store: ChunkStore;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #init: ImagePropagatorInit;
  readonly #handlers = new Set<(r: ImageReport) => void>();
  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #replicas: readonly ImageHoldReplica[] = [];
  #active = 0;
  /** Versions the controller announced, by image: the manifests VMs here may open. */
  readonly #known = new Map<string, Map<number, ImageManifest>>();
  readonly #waiters = new Set<() => void>();
  /** The versions the controller keeps (its last hold's `keep`); undefined: it never said (no collection). */
  #keep: ReadonlySet<string> | undefined;
  readonly #uses: ImageUses;
  readonly #holdsChanged = new Set<() => void>();

  constructor(components: ImagePropagatorComponents, init: ImagePropagatorInit) {
    this.#store = components.store;
    this.#log = componentLogger(components.logger, 'image-propagator', { site: components.store.site });
    this.#clock = components.clock;
    this.#init = init;
    this.announce = init.announce;
    this.#uses = new ImageUses({ clock: this.#clock, emit: (r) => this.#emit(r), reportable: () => this.#keep !== undefined, ended: () => this.#changed() });
  }

  onReport(handler: (r: ImageReport) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Where a version stands here (undefined: never asked to hold it). */
  status(imageId: string, version: number): { state: JobState; held: number; total: number; fetched: number } | undefined {
    const j = this.#jobs.get(`${imageId}@${version}`);
    return j === undefined ? undefined : { state: j.state, held: j.held, total: j.total, fetched: j.fetched };
  }

  handle(hold: ImageHold): void {
    if (this.#abort.signal.aborted) return;
    this.#replicas = hold.replicas.filter((r) => r.site !== this.#store.site);
    let manifest: ImageManifest;
    try {
      manifest = validateManifest(hold.manifest);
    } catch (err) {
      const e = err as { code?: string; message: string };
      this.#log.warn({ image: hold.manifest.imageId, version: hold.manifest.version, detail: e.message }, 'image hold refused: not a valid manifest');
      this.#emit({
        type: 'image-progress', imageId: hold.manifest.imageId, version: hold.manifest.version, held: 0, total: 0, state: 'stalled',
        error: { code: e.code ?? 'VNET_ERR_IMAGE_MANIFEST', message: e.message.slice(0, 4096) },
      });
      return;
    }
    if (hold.keep !== undefined) this.#applyKeep(new Set(hold.keep.map((k) => keyOf(k.imageId, k.version))));
    if (hold.mode === 'release') {
      this.#forget(manifest.imageId, manifest.version);
      this.#changed();
      return;
    }
    let versions = this.#known.get(manifest.imageId);
    if (versions === undefined) this.#known.set(manifest.imageId, versions = new Map());
    versions.set(manifest.version, manifest);
    for (const w of [...this.#waiters]) w();
    this.#changed();
    if (this.#init.prefetch === false || hold.mode === 'retain') return;
    const key = keyOf(manifest.imageId, manifest.version);
    const known = this.#jobs.get(key);
    if (known !== undefined) {
      if (known.state === 'stalled' && known.retry !== undefined) {
        // New replicas may have what was missing: retry now.
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

  /** The controller's keep: versions known here that it does not name were deleted; the collection may run once it is known. */
  #applyKeep(keep: ReadonlySet<string>): void {
    this.#keep = keep;
    for (const [imageId, versions] of [...this.#known]) {
      for (const v of [...versions.keys()]) if (!keep.has(keyOf(imageId, v))) this.#forget(imageId, v);
    }
    this.#uses.scheduleReport();
  }

  /** A deleted version: no longer known here, its propagation dropped (chunks it stored are collected later). */
  #forget(imageId: string, version: number): void {
    const versions = this.#known.get(imageId);
    versions?.delete(version);
    if (versions?.size === 0) this.#known.delete(imageId);
    const key = keyOf(imageId, version);
    const job = this.#jobs.get(key);
    if (job === undefined) return;
    job.retry?.cancel();
    job.retry = undefined;
    this.#jobs.delete(key);
    const queued = this.#queue.indexOf(job);
    if (queued >= 0) this.#queue.splice(queued, 1);
    this.#log.info({ image: imageId, version }, 'image version deleted: no longer held here');
  }

  /** Calls `handler` when the versions held here change (a hold, a keep, a release) or a VM's use ends. Returns the unsubscribe function. */
  onHoldsChanged(handler: () => void): () => void {
    this.#holdsChanged.add(handler);
    return () => this.#holdsChanged.delete(handler);
  }

  #changed(): void {
    for (const h of this.#holdsChanged) h();
  }

  /**
   * Every chunk a version held here or a VM here references: what a
   * collection keeps. Undefined while it cannot be known whole: the
   * controller has not sent a keep, or a version it keeps is not known here yet.
   */
  liveDigests(): Set<string> | undefined {
    const keep = this.#keep;
    if (keep === undefined) return undefined;
    for (const k of keep) {
      const at = k.lastIndexOf('@');
      if (this.#known.get(k.slice(0, at))?.get(Number(k.slice(at + 1))) === undefined) return undefined;
    }
    const live = new Set<string>();
    for (const versions of this.#known.values()) for (const m of versions.values()) for (const d of m.chunks) live.add(d);
    this.#uses.addChunks(live);
    return live;
  }

  /** The VMs here on image versions (image-uses.ts). */
  uses(): ImageUsesReport['vms'] {
    return this.#uses.list();
  }

  /**
   * An image version for a VM here, once the controller has announced it
   * (`version` absent: the latest announced so far). Waits until then, or
   * until `signal` aborts or the propagator closes. With `vm`, the VM's use
   * of the version is reported (from now: it is configured) until `close`.
   */
  async open(imageId: string, version: number | undefined, signal?: AbortSignal, vm?: string): Promise<OpenedImage> {
    const use = this.#uses.begin(vm, imageId, version);
    try {
      return await this.#open(imageId, version, use, vm, signal);
    } catch (err) {
      this.#uses.end(vm, use);
      throw err;
    }
  }

  async #open(imageId: string, version: number | undefined, use: ImageUse, vm: string | undefined, signal?: AbortSignal): Promise<OpenedImage> {
    for (;;) {
      const versions = this.#known.get(imageId);
      const v = version ?? (versions === undefined || versions.size === 0 ? undefined : Math.max(...versions.keys()));
      const manifest = v === undefined ? undefined : versions?.get(v);
      if (manifest !== undefined) {
        this.#uses.opened(use, manifest);
        return this.#opened(manifest, () => this.#uses.end(vm, use));
      }
      signal?.throwIfAborted();
      this.#abort.signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.#waiters.delete(done);
          signal?.removeEventListener('abort', done);
          this.#abort.signal.removeEventListener('abort', done);
          resolve();
        };
        this.#waiters.add(done);
        signal?.addEventListener('abort', done);
        this.#abort.signal.addEventListener('abort', done);
      });
    }
  }

  /** A fetcher for a version known otherwise (a VM that arrived with its manifest), over its own connections to the replicas known now; with `vm`, its use is reported until `close`. */
  reader(manifest: ImageManifest, vm?: string): OpenedImage {
    const use = this.#uses.begin(vm, manifest.imageId, manifest.version, manifest);
    return this.#opened(manifest, () => this.#uses.end(vm, use));
  }

  #opened(manifest: ImageManifest, ended: () => void): OpenedImage {
    const { fetcher, sources } = this.#fetcher();
    let closed = false;
    return {
      manifest, fetcher, close: () => {
        if (closed) return;
        closed = true;
        for (const s of sources) s.close();
        ended();
      },
    };
  }

  /** Stops every propagation (the chunks stored so far stay) and waits for them to wind down. */
  async close(): Promise<void> {
    this.#abort.abort();
    this.#uses.close();
    for (const j of this.#jobs.values()) j.retry?.cancel();
    await Promise.allSettled([...this.#running]);
  }

  #enqueue(job: Job): void {
    if (this.#jobs.get(keyOf(job.manifest.imageId, job.manifest.version)) !== job) return; // deleted meanwhile
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
    const signal = this.#abort.signal;
    job.state = 'propagating';
    job.error = undefined;
    const workers = Array.from({ length: Math.max(1, this.#init.concurrency ?? 4) }, () => this.#fetcher());
    try {
      job.held = (await propagationProgress(this.#store, manifest)).held;
      this.#report(job, true);
      if (job.held < job.total && this.#init.capacityBytes !== undefined) await checkCapacity(this.#store, manifest, this.#init.capacityBytes);
      if (job.held < job.total) {
        this.#log.info({ image: manifest.imageId, version: manifest.version, held: job.held, total: job.total, replicas: workers[0]!.fetcher.replicaOrder }, 'propagating an image version');
        await propagate(this.#store, workers.map((w) => w.fetcher), manifest, {
          signal,
          onChunk: (r) => {
            job.held++;
            if (r.from !== this.#store.site) job.fetched++;
            this.#report(job);
          },
        });
      }
      // Verified as each arrived; now that every one is here.
      job.held = (await propagationProgress(this.#store, manifest)).held;
      if (job.held < job.total) throw new Error(`${job.total - job.held} chunks are still missing after propagation`);
      job.state = 'complete';
      job.retryMs = this.#init.retryMs ?? 2000;
      this.#log.info({ image: manifest.imageId, version: manifest.version, total: job.total }, 'image version complete at this site');
      this.#report(job, true);
    } catch (err) {
      if (signal.aborted) return;
      const e = err as { code?: string; message?: string };
      job.state = 'stalled';
      job.error = { code: e.code ?? 'VNET_ERR_IMAGE_PROPAGATION', message: String(e.message ?? err).slice(0, 4096) };
      job.held = (await propagationProgress(this.#store, manifest).catch(() => ({ held: job.held }))).held;
      this.#log.warn({ image: manifest.imageId, version: manifest.version, held: job.held, total: job.total, code: job.error.code, detail: job.error.message, retryInMs: job.retryMs }, 'image propagation stalled; retrying');
      this.#report(job, true);
      job.retry = this.#clock.setTimeout(() => {
        job.retry = undefined;
        if (job.state === 'stalled') this.#enqueue(job);
      }, job.retryMs);
      job.retryMs = Math.min(MAX_RETRY_MS, job.retryMs * 2);
    } finally {
      for (const w of workers) for (const s of w.sources) s.close();
    }
  }

  /** A fetcher over its own connections to the replicas known now. */
  #fetcher(): { fetcher: ChunkFetcher; sources: RemoteChunkSource[] } {
    const rtt = new Map(this.#replicas.map((r) => [r.site, r.rttMs]));
    const sources = this.#replicas.map((r) => new RemoteChunkSource({ ...this.#init.credentials, site: r.site, peer: r.peer, address: r.address }));
    const fetcher = new ChunkFetcher({ local: this.#store, replicas: sources, latencyMs: (_from, to) => rtt.get(to) ?? Number.MAX_SAFE_INTEGER });
    return { fetcher, sources };
  }

  #report(job: Job, force = false): void {
    const now = this.#clock.now();
    if (!force && job.state === 'propagating' && now - job.lastReportMs < (this.#init.reportEveryMs ?? 1000)) return;
    job.lastReportMs = now;
    const state = job.state === 'queued' ? 'propagating' : job.state;
    this.#emit({
      type: 'image-progress', imageId: job.manifest.imageId, version: job.manifest.version, held: job.held, total: job.total, state,
      ...(state === 'stalled' && job.error !== undefined ? { error: job.error } : {}),
    });
  }

  /** A VM here recorded its boot trace on a disk from an image version: sent to the controller. */
  reportBootTrace(trace: Omit<ImageBootTraceReport, 'type'>): void {
    if (trace.accessOrder.length > 0) this.#emit({ type: 'image-boot-trace', ...trace });
  }

  #emit(r: ImageReport): void {
    for (const h of this.#handlers) h(r);
  }
}
