/**
 * A site's daemon bringing the image versions the controller asks it to hold
 * into its chunk store (docs/images.md, "Propagation"; the messages:
 * src/control/image-control.ts).
 *
 *   image-hold     validated (validateManifest); the replicas replace the
 *                  ones known; a version already complete or under way is
 *                  only re-reported; a new one is queued (propagation-jobs.ts:
 *                  the queue, the runs, progress reports, stalls and retries)
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
import type { Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { ImageAnnounce, ImageBootTraceReport, ImageControl, ImageHold, ImageHoldReplica, ImageReport, ImageUsesReport } from '../control/image-control.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import { ChunkFetcher } from '../images/chunk-fetcher.ts';
import type { ChunkStore } from '../images/chunk-store.ts';
import { validateManifest, type ImageManifest } from '../images/manifest.ts';
import { RemoteChunkSource } from '../images/remote-chunk-source.ts';
import { ImageUses, type ImageUse } from './image-uses.ts';
import { PropagationJobs, versionKey, type JobStatus, type PropagationJobsInit } from './propagation-jobs.ts';

export interface ImagePropagatorComponents {
  store: ChunkStore;
  logger: Logger;
  clock: Clock;
}

export interface ImagePropagatorInit extends PropagationJobsInit {
  /** This host's certificate (mutual TLS to the other sites' chunk servers). */
  credentials: TlsCredentials;
  /** Where this daemon's chunk server listens (announced in the hello). */
  announce: ImageAnnounce;
  /** Bring every version held here in the background (default true); false: chunks come only when a VM here reads them. */
  prefetch?: boolean;
}

/** An image version a VM here reads from: its manifest and a fetcher over its own connections to the replicas (close it with the VM). */
export interface OpenedImage {
  readonly manifest: ImageManifest;
  readonly fetcher: ChunkFetcher;
  close(): void;
}

export class ImagePropagator implements ImageControl {
  readonly announce: ImageAnnounce;
  readonly #store: ChunkStore;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #init: ImagePropagatorInit;
  readonly #handlers = new Set<(r: ImageReport) => void>();
  readonly #jobs: PropagationJobs;
  readonly #abort = new AbortController();
  #replicas: readonly ImageHoldReplica[] = [];
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
    this.#jobs = new PropagationJobs({ store: this.#store, logger: this.#log, clock: this.#clock, fetcher: () => this.#fetcher(), emit: (r) => this.#emit(r) }, init);
  }

  onReport(handler: (r: ImageReport) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Where a version stands here (undefined: never asked to hold it). */
  status(imageId: string, version: number): JobStatus | undefined {
    return this.#jobs.status(imageId, version);
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
    if (hold.keep !== undefined) this.#applyKeep(new Set(hold.keep.map((k) => versionKey(k.imageId, k.version))));
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
    this.#jobs.hold(manifest);
  }

  /** The controller's keep: versions known here that it does not name were deleted; the collection may run once it is known. */
  #applyKeep(keep: ReadonlySet<string>): void {
    this.#keep = keep;
    for (const [imageId, versions] of [...this.#known]) {
      for (const v of [...versions.keys()]) if (!keep.has(versionKey(imageId, v))) this.#forget(imageId, v);
    }
    this.#uses.scheduleReport();
  }

  /** A deleted version: no longer known here, its propagation dropped (chunks it stored are collected later). */
  #forget(imageId: string, version: number): void {
    const versions = this.#known.get(imageId);
    versions?.delete(version);
    if (versions?.size === 0) this.#known.delete(imageId);
    if (this.#jobs.drop(imageId, version)) this.#log.info({ image: imageId, version }, 'image version deleted: no longer held here');
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
    await this.#jobs.close();
  }

  /** A fetcher over its own connections to the replicas known now. */
  #fetcher(): { fetcher: ChunkFetcher; sources: RemoteChunkSource[] } {
    const rtt = new Map(this.#replicas.map((r) => [r.site, r.rttMs]));
    const sources = this.#replicas.map((r) => new RemoteChunkSource({ ...this.#init.credentials, site: r.site, peer: r.peer, address: r.address }));
    const fetcher = new ChunkFetcher({ local: this.#store, replicas: sources, latencyMs: (_from, to) => rtt.get(to) ?? Number.MAX_SAFE_INTEGER });
    return { fetcher, sources };
  }

  /** A VM here recorded its boot trace on a disk from an image version: sent to the controller. */
  reportBootTrace(trace: Omit<ImageBootTraceReport, 'type'>): void {
    if (trace.accessOrder.length > 0) this.#emit({ type: 'image-boot-trace', ...trace });
  }

  #emit(r: ImageReport): void {
    for (const h of this.#handlers) h(r);
  }
}
