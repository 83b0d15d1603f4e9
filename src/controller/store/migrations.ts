import type { Database } from 'better-sqlite3';
import type { Logger } from '../../common/logger.ts';
import { SchemaMigrationError, StoreError } from '../errors.ts';
import type { SchemaMigration } from './schema.ts';

/**
 * Bring a database up to the newest schema. The version lives in SQLite's
 * `user_version`; each migration above it runs in its own transaction together
 * with the version bump, so a crash during a migration leaves the database at
 * the previous version, whole. A database newer than this program is refused.
 *
 * Returns the versions that were applied.
 */
export function applyMigrations(db: Database, migrations: readonly SchemaMigration[], logger?: Logger): number[] {
  const current = schemaVersionOf(db);
  const newest = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  if (current > newest) {
    throw new StoreError(`database schema version ${current} is newer than this program's ${newest}; refusing to open it`);
  }
  const applied: number[] = [];
  const pending = [...migrations].filter((m) => m.version > current).sort((a, b) => a.version - b.version);
  for (const m of pending) {
    const run = db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    });
    try {
      run.immediate();
    } catch (err) {
      throw new SchemaMigrationError(m.version, (err as Error).message, { cause: err });
    }
    logger?.info({ version: m.version, migration: m.name }, 'applied schema migration');
    applied.push(m.version);
  }
  return applied;
}

export function schemaVersionOf(db: Database): number {
  const v = db.pragma('user_version', { simple: true });
  return typeof v === 'number' ? v : 0;
}
