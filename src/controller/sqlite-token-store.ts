import type { ApiTokenRecord as ApiTokenEntry, TokenStore } from './api/token-store.ts';
import type { ControllerStore } from './store/store.ts';

/** The operator API's token table (`api_tokens`) over the store. */
export class SqliteTokenStore implements TokenStore {
  readonly #store: ControllerStore;

  constructor(store: ControllerStore) {
    this.#store = store;
  }

  count(): number {
    return this.#store.listApiTokens().filter((t) => t.revokedMs === undefined).length;
  }

  add(record: ApiTokenEntry): void {
    this.#store.insertApiToken({ id: record.id, hash: record.hash, label: record.label, createdMs: record.createdAt });
  }

  findByHash(hash: string): ApiTokenEntry | undefined {
    const r = this.#store.findApiTokenByHash(hash);
    if (r === undefined || r.revokedMs !== undefined) return undefined;
    return { id: r.id, label: r.label, hash: r.hash, createdAt: r.createdMs };
  }
}
