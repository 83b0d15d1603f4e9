import type { Database } from 'better-sqlite3';
import { validateManifest, type ImageManifest } from '../../images/manifest.ts';
import { ConflictError, ImageVersionDeletedError } from '../errors.ts';

/**
 * The store's image tables: published versions (`image_versions`, the
 * manifest as JSON), how much of each version every site holds
 * (`image_replicas`) and the versions deleted (`image_deleted_versions`).
 * Manifests are strongly consistent here (one row per version, written
 * once); chunks are not in the store at all — they live in the sites' chunk
 * stores (src/images). A version number is never reused: the published and
 * the deleted versions are every number an image ever had, and none of them
 * can be published again with other content (docs/images.md, "Version
 * numbers"). Every method is one statement or a few in the caller's
 * transaction.
 */
export interface ImageVersionRecord {
  readonly manifest: ImageManifest;
  readonly originSite: string;
  readonly publishedMs: number;
}

export interface ImageReplicaRecord {
  readonly imageId: string;
  readonly version: number;
  readonly site: string;
  readonly held: number;
  readonly total: number;
  readonly updatedMs: number;
}

export interface ImageDeletedVersionRecord {
  readonly imageId: string;
  readonly version: number;
  readonly publishedMs: number;
  readonly deletedMs: number;
}

interface VersionRow { image_id: string; version: number; manifest: string; origin_site: string; published_ms: number }
interface ReplicaRow { image_id: string; version: number; site: string; held: number; total: number; updated_ms: number }
interface DeletedRow { image_id: string; version: number; published_ms: number; deleted_ms: number }

function versionFromRow(r: VersionRow): ImageVersionRecord {
  return { manifest: validateManifest(JSON.parse(r.manifest)), originSite: r.origin_site, publishedMs: r.published_ms };
}

function deletedFromRow(r: DeletedRow): ImageDeletedVersionRecord {
  return { imageId: r.image_id, version: r.version, publishedMs: r.published_ms, deletedMs: r.deleted_ms };
}

function replicaFromRow(r: ReplicaRow): ImageReplicaRecord {
  return { imageId: r.image_id, version: r.version, site: r.site, held: r.held, total: r.total, updatedMs: r.updated_ms };
}

export class ImageTables {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /**
   * Records a published version. The same manifest again is a no-op (false);
   * a different manifest under an existing (image, version) is a ConflictError;
   * a version deleted before, an ImageVersionDeletedError (any manifest).
   */
  insertVersion(r: ImageVersionRecord): boolean {
    const json = JSON.stringify(r.manifest);
    const existing = this.#db.prepare('SELECT manifest FROM image_versions WHERE image_id = ? AND version = ?').get(r.manifest.imageId, r.manifest.version) as { manifest: string } | undefined;
    if (existing !== undefined) {
      if (existing.manifest === json) return false;
      throw new ConflictError(`image ${r.manifest.imageId} version ${r.manifest.version} is already published with other content`);
    }
    this.refuseDeleted(r.manifest.imageId, r.manifest.version);
    this.#db.prepare('INSERT INTO image_versions (image_id, version, manifest, origin_site, published_ms) VALUES (?, ?, ?, ?, ?)').run(r.manifest.imageId, r.manifest.version, json, r.originSite, r.publishedMs);
    return true;
  }

  getVersion(imageId: string, version: number): ImageVersionRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM image_versions WHERE image_id = ? AND version = ?').get(imageId, version) as VersionRow | undefined;
    return r === undefined ? undefined : versionFromRow(r);
  }

  latestVersion(imageId: string): ImageVersionRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM image_versions WHERE image_id = ? ORDER BY version DESC LIMIT 1').get(imageId) as VersionRow | undefined;
    return r === undefined ? undefined : versionFromRow(r);
  }

  /** Every published version, by image then version. */
  listVersions(): ImageVersionRecord[] {
    return (this.#db.prepare('SELECT * FROM image_versions ORDER BY image_id, version').all() as VersionRow[]).map(versionFromRow);
  }

  /**
   * Removes a version and every site's progress on it, and remembers that
   * the version was deleted at `deletedMs` (one transaction with the
   * caller's); false when it was not there.
   */
  deleteVersion(imageId: string, version: number, deletedMs: number): boolean {
    const published = this.#db.prepare('SELECT published_ms FROM image_versions WHERE image_id = ? AND version = ?').get(imageId, version) as { published_ms: number } | undefined;
    if (published === undefined) return false;
    this.#db.prepare('DELETE FROM image_replicas WHERE image_id = ? AND version = ?').run(imageId, version);
    this.#db.prepare('DELETE FROM image_versions WHERE image_id = ? AND version = ?').run(imageId, version);
    this.#db
      .prepare('INSERT OR REPLACE INTO image_deleted_versions (image_id, version, published_ms, deleted_ms) VALUES (?, ?, ?, ?)')
      .run(imageId, version, published.published_ms, deletedMs);
    return true;
  }

  /** The deleted versions of an image (every image's: `imageId` absent), by image then version. */
  listDeletedVersions(imageId?: string): ImageDeletedVersionRecord[] {
    const rows = imageId === undefined
      ? this.#db.prepare('SELECT * FROM image_deleted_versions ORDER BY image_id, version').all()
      : this.#db.prepare('SELECT * FROM image_deleted_versions WHERE image_id = ? ORDER BY version').all(imageId);
    return (rows as DeletedRow[]).map(deletedFromRow);
  }

  /** ImageVersionDeletedError when the version was published before and deleted. */
  refuseDeleted(imageId: string, version: number): void {
    const deleted = this.#db.prepare('SELECT * FROM image_deleted_versions WHERE image_id = ? AND version = ?').get(imageId, version) as DeletedRow | undefined;
    if (deleted !== undefined) throw new ImageVersionDeletedError(imageId, version, deleted.deleted_ms, this.nextVersion(imageId));
  }

  /** The image's next never-used version number: above every version it has and every one deleted (1 for an image never published). */
  nextVersion(imageId: string): number {
    const r = this.#db.prepare(`SELECT max(version) AS v FROM (
      SELECT version FROM image_versions WHERE image_id = ? UNION ALL SELECT version FROM image_deleted_versions WHERE image_id = ?)`).get(imageId, imageId) as { v: number | null };
    return (r.v ?? 0) + 1;
  }

  /** A site's progress on a version (insert or replace). */
  putReplica(r: ImageReplicaRecord): void {
    this.#db
      .prepare('INSERT OR REPLACE INTO image_replicas (image_id, version, site, held, total, updated_ms) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.imageId, r.version, r.site, r.held, r.total, r.updatedMs);
  }

  listReplicas(imageId?: string): ImageReplicaRecord[] {
    const rows = imageId === undefined
      ? this.#db.prepare('SELECT * FROM image_replicas ORDER BY image_id, version, site').all()
      : this.#db.prepare('SELECT * FROM image_replicas WHERE image_id = ? ORDER BY version, site').all(imageId);
    return (rows as ReplicaRow[]).map(replicaFromRow);
  }
}
