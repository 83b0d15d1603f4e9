import type { Database } from 'better-sqlite3';
import { validateManifest, type ImageManifest } from '../../images/manifest.ts';
import { ConflictError } from '../errors.ts';

/**
 * The store's image tables: published versions (`image_versions`, the
 * manifest as JSON) and how much of each version every site holds
 * (`image_replicas`). Manifests are strongly consistent here (one row per
 * version, written once); chunks are not in the store at all — they live in
 * the sites' chunk stores (src/images). Every method is one statement, but
 * `deleteVersion` (two: the version and its replicas' rows).
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

interface VersionRow { image_id: string; version: number; manifest: string; origin_site: string; published_ms: number }
interface ReplicaRow { image_id: string; version: number; site: string; held: number; total: number; updated_ms: number }

function versionFromRow(r: VersionRow): ImageVersionRecord {
  return { manifest: validateManifest(JSON.parse(r.manifest)), originSite: r.origin_site, publishedMs: r.published_ms };
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
   * a different manifest under an existing (image, version) is a ConflictError.
   */
  insertVersion(r: ImageVersionRecord): boolean {
    const json = JSON.stringify(r.manifest);
    const existing = this.#db.prepare('SELECT manifest FROM image_versions WHERE image_id = ? AND version = ?').get(r.manifest.imageId, r.manifest.version) as { manifest: string } | undefined;
    if (existing !== undefined) {
      if (existing.manifest === json) return false;
      throw new ConflictError(`image ${r.manifest.imageId} version ${r.manifest.version} is already published with other content`);
    }
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

  /** Removes a version and every site's progress on it (one transaction with the caller's); false when it was not there. */
  deleteVersion(imageId: string, version: number): boolean {
    this.#db.prepare('DELETE FROM image_replicas WHERE image_id = ? AND version = ?').run(imageId, version);
    return this.#db.prepare('DELETE FROM image_versions WHERE image_id = ? AND version = ?').run(imageId, version).changes > 0;
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
