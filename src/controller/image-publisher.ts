/**
 * Publishing an image version through the controller (docs/images.md,
 * "Publish"; the API: `PUT /api/v1/images/{id}/chunks/{digest}`,
 * `POST /api/v1/images/{id}/versions`, operator scope).
 *
 *   chunk     the operator's bytes, checked against their digest here, are
 *             written to the origin site's chunk server over the chunk
 *             protocol (PUT), in mutual TLS with the controller's own
 *             certificate — the one identity a chunk server lets write; the
 *             server verifies them again before it stores them
 *   version   the manifest is validated; the origin is asked (HAS) for every
 *             distinct chunk; only when it holds them all is the manifest
 *             written (ImageCatalog.publish: durable before it answers), and
 *             the sites' servers are then asked to hold it
 *
 *   delete    refused while a VM is on the version (the daemons' image-uses
 *             reports), else the version's rows go in one transaction and
 *             the sites release it (ImageCatalog.deleteVersions)
 *
 * So, as with `publishImage` in one process, no reader ever sees a version
 * whose chunks cannot be fetched from its origin. The same manifest again is
 * a no-op; another under the same (image, version) a ConflictError (409); a
 * number the image had before, since deleted, an ImageVersionDeletedError
 * (409, before any chunk is checked): a version number is never reused.
 */
import type { TlsCredentials } from '../pki/certs.ts';
import { createChunkHasher } from '../images/chunk-digest.ts';
import { ChunkIntegrityError, ManifestError } from '../images/errors.ts';
import { validateManifest, type ImageManifest } from '../images/manifest.ts';
import { RemoteChunkSource } from '../images/remote-chunk-source.ts';
import { MAX_HOLD_CHUNKS } from '../control/image-control.ts';
import { ConflictError, ImageIncompleteError, NotFoundError } from './errors.ts';
import type { ImageCatalog } from './image-catalog.ts';
import type { ImageDistribution } from './image-distribution.ts';

/** HAS requests in flight at once when a version's chunks are checked at its origin. */
const HAS_BATCH = 256;

export interface ImagePublisherComponents {
  catalog: ImageCatalog;
  distribution: ImageDistribution;
  /** The controller's certificate (the chunk servers' writer) and the deployment CA. */
  credentials: TlsCredentials;
}

export class ImagePublisher {
  readonly #c: ImagePublisherComponents;
  /** The site an upload names none (the hub's). */
  readonly defaultSite: string;
  readonly #sources = new Map<string, RemoteChunkSource>();

  constructor(c: ImagePublisherComponents, init: { defaultSite: string }) {
    this.#c = c;
    this.defaultSite = init.defaultSite;
  }

  /** Stores one chunk at the site's chunk server (after checking the bytes are the digest's). */
  async storeChunk(site: string, digest: string, bytes: Uint8Array): Promise<void> {
    const got = (await createChunkHasher()).digest(bytes);
    if (got !== digest) throw new ChunkIntegrityError(digest, 'upload', got);
    await this.#source(site).write(digest, bytes);
  }

  /** Writes a version once its origin holds every chunk; `created` is false for a repeat of the same manifest. */
  async publish(raw: unknown, site: string): Promise<{ manifest: ImageManifest; created: boolean }> {
    const manifest = validateManifest(raw);
    if (manifest.chunks.length > MAX_HOLD_CHUNKS) throw new ManifestError('chunks', `${manifest.chunks.length} chunks: at most ${MAX_HOLD_CHUNKS} (the control channel carries a version in one message); use bigger chunks`);
    const existing = this.#c.catalog.manifest(manifest.imageId, manifest.version);
    if (existing !== undefined) {
      if (JSON.stringify(existing) !== JSON.stringify(manifest)) throw new ConflictError(`image ${manifest.imageId} version ${manifest.version} is already published with other content`);
      return { manifest, created: false };
    }
    this.#c.catalog.refuseDeleted(manifest.imageId, manifest.version);
    const origin = this.#source(site);
    const distinct = [...new Set(manifest.chunks)];
    const missing: string[] = [];
    // Pipelined on the one connection, a batch at a time: the origin may be a WAN round trip away.
    for (let i = 0; i < distinct.length; i += HAS_BATCH) {
      const batch = distinct.slice(i, i + HAS_BATCH);
      const held = await Promise.all(batch.map((d) => origin.has(d)));
      batch.forEach((d, j) => { if (!held[j]) missing.push(d); });
    }
    if (missing.length > 0) {
      throw new ImageIncompleteError(`${missing.length} of ${distinct.length} chunks of image ${manifest.imageId} version ${manifest.version} are not at site ${site} (first: ${missing[0]}): upload every chunk first`);
    }
    await this.#c.catalog.publish(manifest, site);
    return { manifest, created: true };
  }

  /**
   * A VM's recorded boot trace becomes the image's boot order: the latest
   * version again, as the image's next never-used version with the trace as
   * its `accessOrder` (a version is written once), at the same origin. The trace must be of
   * the latest version (an older one would bring old content back).
   */
  async publishBootTrace(imageId: string, vm: string): Promise<{ manifest: ImageManifest; created: boolean }> {
    const trace = this.#c.distribution.bootTraceOf(vm);
    if (trace === undefined) throw new NotFoundError(`a boot trace of VM ${JSON.stringify(vm)} (none reported since the controller started: the VM must run on a disk from an image)`);
    if (trace.imageId !== imageId) throw new ConflictError(`VM ${vm}'s boot trace is of image ${trace.imageId}, not ${imageId}`);
    const image = this.#c.catalog.get(imageId);
    const latest = image.versions.find((v) => v.version === image.latest);
    const base = this.#c.catalog.manifest(imageId, image.latest);
    if (latest === undefined || base === undefined) throw new NotFoundError(`image ${imageId}`);
    if (trace.version !== image.latest) throw new ConflictError(`VM ${vm}'s boot trace is of ${imageId} version ${trace.version}, the latest is ${image.latest}: record a boot on the latest`);
    if (JSON.stringify(base.accessOrder) === JSON.stringify(trace.accessOrder)) return { manifest: base, created: false };
    return this.publish({ ...base, version: image.nextVersion, accessOrder: [...trace.accessOrder] }, latest.originSite);
  }

  /**
   * Deletes a version (or, `version` absent, every version of the image):
   * refused (ImageInUseError, 409) while a daemon says a VM is configured or
   * running on one; the sites then release it and collect its chunks.
   */
  async deleteVersions(imageId: string, version: number | undefined): Promise<number[]> {
    return this.#c.catalog.deleteVersions(imageId, version, (i, v) => this.#c.distribution.usersOf(i, v));
  }

  /** The VMs daemons say are configured or running on a version of the image (`version` absent: any), as `vm@host (version v)`. */
  usersOf(imageId: string, version?: number): string[] {
    return this.#c.distribution.usersOf(imageId, version);
  }

  close(): void {
    for (const s of this.#sources.values()) s.close();
    this.#sources.clear();
  }

  /** One connection per site's server, reused (and replaced when the server moved). */
  #source(site: string): RemoteChunkSource {
    const { peer, address } = this.#c.distribution.serverOf(site);
    const key = `${site}\0${peer}\0${address.host}\0${address.port}`;
    let s = this.#sources.get(key);
    if (s === undefined) {
      for (const [k, old] of this.#sources) if (k.startsWith(`${site}\0`)) { old.close(); this.#sources.delete(k); }
      s = new RemoteChunkSource({ ...this.#c.credentials, site, peer, address });
      this.#sources.set(key, s);
    }
    return s;
  }
}
