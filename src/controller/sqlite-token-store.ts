import type { ApiTokenRecord as ApiTokenEntry, TokenStore } from './api/token-store.ts';
import type { ApiTokenRecord } from './store/records.ts';
import type { ControllerStore } from './store/store.ts';

/** The operator API's token table (`api_tokens`) over the store. */
export class SqliteTokenStore implements TokenStore {
  readonly #store: ControllerStore;

  constructor(store: ControllerStore) {
    this.#store = store;
  }

  count(): number {
    return this.#store.access.listApiTokens().filter((t) => t.revokedMs === undefined).length;
  }

  add(record: ApiTokenEntry): void {
    this.#store.access.insertApiToken({ id: record.id, hash: record.hash, label: record.label, scope: record.scope, createdMs: record.createdAt });
  }

  findByHash(hash: string): ApiTokenEntry | undefined {
    const r = this.#store.access.findApiTokenByHash(hash);
    return r === undefined || r.revokedMs !== undefined ? undefined : entry(r);
  }

  list(): ApiTokenEntry[] {
    return this.#store.access.listApiTokens().map(entry);
  }

  revoke(id: string, now: number): boolean {
    return this.#store.access.revokeApiToken(id, now);
  }
}

function entry(r: ApiTokenRecord): ApiTokenEntry {
  return { id: r.id, label: r.label, scope: r.scope, hash: r.hash, createdAt: r.createdMs, ...(r.revokedMs !== undefined ? { revokedAt: r.revokedMs } : {}) };
}
