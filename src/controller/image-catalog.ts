/**
 * The controller's side of geo-replicated images (docs/images.md): the
 * published versions, strongly consistent in the store (SQLite or etcd:
 * `image_versions`), and how far each site has got (`image_replicas`).
 *
 * It is the `ManifestRegistry` of src/images/replication.ts: `publishImage`
 * stores every chunk at the origin first and only then calls `publish`, which
 * returns once the manifest is durable (at once on SQLite, after etcd's
 * answer on etcd). The origin is recorded as a complete replica in the same
 * transaction. Chunks never pass through here.
 *
 * `deleteVersions` removes a version (or every version of an image) with its
 * replicas' rows in one transaction, refused while a VM is configured or
 * running on it (ImageInUseError, naming them); once durable, `onDeleted`
 * tells the distribution, which has every site release it. The latest is
 * then the newest version left.
 *
 * A version number is never reused (docs/images.md, "Version numbers"): a
 * deleted version is remembered (`image_deleted_versions`, with when), so
 * publishing its number again is refused (ImageVersionDeletedError, 409),
 * and an image's `nextVersion` is above every number it ever had — also
 * once every version is deleted: `get` still answers for such an image
 * (no versions, latest 0), `list` leaves it out.
 */
import type { ImageManifest } from '../images/manifest.ts';
import type { ManifestRegistry, PropagationProgress } from '../images/replication.ts';
import { ConflictError, ImageInUseError, NotFoundError } from './errors.ts';
import type { ImageDeletedVersionRecord, ImageVersionRecord } from './store/image-tables.ts';
import type { ControllerStore } from './store/store.ts';

export interface ImageReplicaView {
  site: string;
  held: number;
  total: number;
  complete: boolean;
  updatedAt: number;
  /** The site's daemon could not complete it (retrying): why (no replica has a chunk, its store's capacity…); kept in memory. */
  stalled?: { code: string; message: string };
}

export interface ImageVersionView {
  version: number;
  size: number;
  chunkSize: number;
  /** Distinct chunks. */
  chunks: number;
  /** Chunks a recorded boot reads first (propagated first). */
  bootChunks: number;
  originSite: string;
  publishedAt: number;
  replicas: ImageReplicaView[];
}

export interface ImageDeletedVersionView {
  version: number;
  publishedAt: number;
  deletedAt: number;
}

export interface ImageView {
  imageId: string;
  /** The newest version left; 0 when every version was deleted. */
  latest: number;
  /** The next never-used version number: what a publish without a version takes. */
  nextVersion: number;
  versions: ImageVersionView[];
  /** Versions deleted: their numbers are never published again. */
  deleted: ImageDeletedVersionView[];
}

export class ImageCatalog implements ManifestRegistry {
  readonly #store: ControllerStore;
  readonly #wallClock: () => number;
  readonly #published = new Set<(manifest: ImageManifest, originSite: string) => void>();
  readonly #deleted = new Set<(deleted: ImageVersionRecord[]) => void>();
  /** Why a site's propagation of a version stalls, by `image\0version\0site` (its last report; in memory). */
  readonly #stalled = new Map<string, { code: string; message: string }>();

  constructor(c: { store: ControllerStore; wallClock: () => number }) {
    this.#store = c.store;
    this.#wallClock = c.wallClock;
  }

  async publish(manifest: ImageManifest, originSite: string): Promise<void> {
    const now = this.#wallClock();
    const total = new Set(manifest.chunks).size;
    let fresh = false;
    this.#store.transaction(() => {
      if (this.#store.images.insertVersion({ manifest, originSite, publishedMs: now })) {
        fresh = true;
        this.#store.images.putReplica({ imageId: manifest.imageId, version: manifest.version, site: originSite, held: total, total, updatedMs: now });
      }
    });
    await this.#store.committed();
    if (fresh) for (const h of this.#published) h(manifest, originSite);
  }

  /** Called once a new version is durable (the controller then asks every site to hold it). Returns the unsubscribe function. */
  onPublished(handler: (manifest: ImageManifest, originSite: string) => void): () => void {
    this.#published.add(handler);
    return () => this.#published.delete(handler);
  }

  /**
   * Deletes one version of an image, or every version (`version` absent).
   * NotFoundError for an image or version not published; ImageInUseError
   * when `usersOf` names VMs on a version to delete (nothing is deleted).
   * Resolves once the deletion is durable; returns the versions deleted.
   */
  async deleteVersions(imageId: string, version: number | undefined, usersOf: (imageId: string, version: number) => readonly string[]): Promise<number[]> {
    const doomed = version === undefined
      ? this.#store.images.listVersions().filter((v) => v.manifest.imageId === imageId)
      : [this.#store.images.getVersion(imageId, version)].filter((v) => v !== undefined);
    if (doomed.length === 0) throw new NotFoundError(version === undefined ? `image ${JSON.stringify(imageId)}` : `image ${imageId} version ${version}`);
    const users = doomed.flatMap((v) => usersOf(imageId, v.manifest.version));
    if (users.length > 0) throw new ImageInUseError(imageId, version, users);
    const now = this.#wallClock();
    this.#store.transaction(() => {
      for (const v of doomed) this.#store.images.deleteVersion(imageId, v.manifest.version, now);
    });
    await this.#store.committed();
    for (const v of doomed) for (const k of [...this.#stalled.keys()]) if (k.startsWith(`${imageId}\0${v.manifest.version}\0`)) this.#stalled.delete(k);
    for (const h of this.#deleted) h(doomed);
    return doomed.map((v) => v.manifest.version);
  }

  /** Called once versions of one image are deleted durably (every site is then told to release them). Returns the unsubscribe function. */
  onDeleted(handler: (deleted: ImageVersionRecord[]) => void): () => void {
    this.#deleted.add(handler);
    return () => this.#deleted.delete(handler);
  }

  /** Every version of every image with its origin, by image then version. */
  versions(): ImageVersionRecord[] {
    return this.#store.images.listVersions();
  }

  /** The latest version of every image with its origin (what every site is asked to hold). */
  latestVersions(): Array<{ manifest: ImageManifest; originSite: string }> {
    const latest = new Map<string, { manifest: ImageManifest; originSite: string }>();
    for (const v of this.#store.images.listVersions()) {
      const known = latest.get(v.manifest.imageId);
      if (known === undefined || known.manifest.version < v.manifest.version) latest.set(v.manifest.imageId, { manifest: v.manifest, originSite: v.originSite });
    }
    return [...latest.values()];
  }

  /** The image's next never-used version number (1 for an image never published). */
  nextVersion(imageId: string): number {
    return this.#store.images.nextVersion(imageId);
  }

  /** ImageVersionDeletedError (409) when the version was published before and deleted: its number is not published again. */
  refuseDeleted(imageId: string, version: number): void {
    this.#store.images.refuseDeleted(imageId, version);
  }

  latest(imageId: string): ImageManifest | undefined {
    return this.#store.images.latestVersion(imageId)?.manifest;
  }

  manifest(imageId: string, version: number): ImageManifest | undefined {
    return this.#store.images.getVersion(imageId, version)?.manifest;
  }

  /**
   * A site's progress on a published version; NotFoundError for a version
   * never published, ConflictError for counts that do not fit it.
   */
  async recordProgress(p: PropagationProgress, stalled?: { code: string; message: string }): Promise<void> {
    const v = this.#store.images.getVersion(p.imageId, p.version);
    if (v === undefined) throw new NotFoundError(`image ${p.imageId} version ${p.version}`);
    const total = new Set(v.manifest.chunks).size;
    if (p.total !== total || p.held > total || p.held < 0) throw new ConflictError(`progress ${p.held}/${p.total} for image ${p.imageId} version ${p.version}, which has ${total} distinct chunks`);
    this.#store.images.putReplica({ ...p, updatedMs: this.#wallClock() });
    const key = `${p.imageId}\0${p.version}\0${p.site}`;
    if (stalled === undefined) this.#stalled.delete(key);
    else this.#stalled.set(key, stalled);
    await this.#store.committed();
  }

  list(): ImageView[] {
    const replicas = new Map<string, ImageReplicaView[]>();
    for (const r of this.#store.images.listReplicas()) {
      const k = `${r.imageId}\0${r.version}`;
      const list = replicas.get(k) ?? [];
      const stalled = this.#stalled.get(`${r.imageId}\0${r.version}\0${r.site}`);
      list.push({ site: r.site, held: r.held, total: r.total, complete: r.held >= r.total, updatedAt: r.updatedMs, ...(stalled !== undefined ? { stalled } : {}) });
      replicas.set(k, list);
    }
    const deleted = deletedByImage(this.#store.images.listDeletedVersions());
    const images = new Map<string, ImageView>();
    for (const v of this.#store.images.listVersions()) {
      const m = v.manifest;
      const image = images.get(m.imageId) ?? imageView(m.imageId, deleted.get(m.imageId) ?? []);
      image.latest = Math.max(image.latest, m.version);
      image.nextVersion = Math.max(image.nextVersion, m.version + 1);
      image.versions.push({
        version: m.version, size: m.size, chunkSize: m.chunkSize, chunks: new Set(m.chunks).size, bootChunks: m.accessOrder.length,
        originSite: v.originSite, publishedAt: v.publishedMs, replicas: replicas.get(`${m.imageId}\0${m.version}`) ?? [],
      });
      images.set(m.imageId, image);
    }
    return [...images.values()];
  }

  /** One image, also one whose every version was deleted (NotFoundError for an image never published). */
  get(imageId: string): ImageView {
    const image = this.list().find((i) => i.imageId === imageId);
    if (image !== undefined) return image;
    const deleted = this.#store.images.listDeletedVersions(imageId);
    if (deleted.length === 0) throw new NotFoundError(`image ${JSON.stringify(imageId)}`);
    return imageView(imageId, deleted);
  }
}

/** An image's view before its versions are added: numbering continues above its deleted versions. */
function imageView(imageId: string, deleted: readonly ImageDeletedVersionRecord[]): ImageView {
  return {
    imageId, latest: 0, nextVersion: deleted.reduce((n, d) => Math.max(n, d.version + 1), 1), versions: [],
    deleted: deleted.map((d) => ({ version: d.version, publishedAt: d.publishedMs, deletedAt: d.deletedMs })),
  };
}

function deletedByImage(records: readonly ImageDeletedVersionRecord[]): Map<string, ImageDeletedVersionRecord[]> {
  const by = new Map<string, ImageDeletedVersionRecord[]>();
  for (const d of records) by.set(d.imageId, [...(by.get(d.imageId) ?? []), d]);
  return by;
}
