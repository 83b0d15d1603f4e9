import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Bearer tokens of the operator API. A token is 256 random bits, shown once
 * when it is created ("vnet_" + base64url); only its SHA-256 is stored (the
 * token has full entropy, so a slow hash adds nothing). The store behind
 * `TokenStore` is the controller's SQLite `api_tokens` table, or
 * `MemoryTokenStore` in tests.
 */

export interface ApiTokenRecord {
  id: string;
  /** Who the token belongs to; becomes the actor "operator:<label>" in audits. */
  label: string;
  /** Lower-case hex SHA-256 of the token text. */
  hash: string;
  /** Wall-clock ms. */
  createdAt: number;
}

export interface TokenStore {
  count(): number;
  add(record: ApiTokenRecord): void;
  findByHash(hash: string): ApiTokenRecord | undefined;
}

export class MemoryTokenStore implements TokenStore {
  readonly #byHash = new Map<string, ApiTokenRecord>();

  count(): number {
    return this.#byHash.size;
  }

  add(record: ApiTokenRecord): void {
    this.#byHash.set(record.hash, { ...record });
  }

  findByHash(hash: string): ApiTokenRecord | undefined {
    return this.#byHash.get(hash);
  }
}

const TOKEN_PREFIX = 'vnet_';
/** Longer "tokens" are rejected before hashing. */
export const MAX_TOKEN_LENGTH = 256;

export function generateApiToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashApiToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Create a token, store its hash, and return the token text (the only time it exists in clear). */
export function createApiToken(store: TokenStore, label: string, now: number): { token: string; record: ApiTokenRecord } {
  const token = generateApiToken();
  const hash = hashApiToken(token);
  const record: ApiTokenRecord = { id: hash.slice(0, 12), label, hash, createdAt: now };
  store.add(record);
  return { token, record };
}

/** At first start (no token stored yet) create one for "admin"; otherwise create nothing. */
export function ensureInitialApiToken(store: TokenStore, now: number): { token: string; record: ApiTokenRecord } | undefined {
  if (store.count() > 0) return undefined;
  return createApiToken(store, 'admin', now);
}

/** The record a presented token belongs to, or undefined. */
export function verifyApiToken(store: TokenStore, token: string): ApiTokenRecord | undefined {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
  const hash = hashApiToken(token);
  const record = store.findByHash(hash);
  if (record === undefined) return undefined;
  // The lookup is by hash already; compare again in constant time in case a store matches loosely.
  const a = Buffer.from(record.hash, 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b) ? record : undefined;
}
