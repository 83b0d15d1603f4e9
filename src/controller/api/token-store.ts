import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiScope } from '../store/records.ts';

/**
 * Bearer tokens of the operator API. A token is 256 random bits, shown once
 * when it is created ("vnet_" + base64url); only its SHA-256 is stored (the
 * token has full entropy, so a slow hash adds nothing). Each has a scope:
 * `read` (GET requests and the event stream: dashboards, the web page) or
 * `operator` (everything). A revoked token is kept (listed, with when it was
 * revoked) but never found again. The store behind `TokenStore` is the
 * controller's SQLite `api_tokens` table, or `MemoryTokenStore` in tests.
 */

export interface ApiTokenRecord {
  id: string;
  /** Who the token belongs to; becomes the actor "operator:<label>" in audits. */
  label: string;
  scope: ApiScope;
  /** Lower-case hex SHA-256 of the token text. */
  hash: string;
  /** Wall-clock ms. */
  createdAt: number;
  /** Wall-clock ms; absent while the token is valid. */
  revokedAt?: number | undefined;
}

export interface TokenStore {
  /** Tokens not revoked. */
  count(): number;
  add(record: ApiTokenRecord): void;
  /** A token that is not revoked, by the hash of its text. */
  findByHash(hash: string): ApiTokenRecord | undefined;
  /** Every token, revoked ones included, oldest first. */
  list(): ApiTokenRecord[];
  /** False if there is no such token or it was revoked already. */
  revoke(id: string, now: number): boolean;
}

export class MemoryTokenStore implements TokenStore {
  readonly #byHash = new Map<string, ApiTokenRecord>();

  count(): number {
    return this.list().filter((t) => t.revokedAt === undefined).length;
  }

  add(record: ApiTokenRecord): void {
    this.#byHash.set(record.hash, { ...record });
  }

  findByHash(hash: string): ApiTokenRecord | undefined {
    const r = this.#byHash.get(hash);
    return r === undefined || r.revokedAt !== undefined ? undefined : { ...r };
  }

  list(): ApiTokenRecord[] {
    return [...this.#byHash.values()].map((r) => ({ ...r })).sort((a, b) => a.createdAt - b.createdAt);
  }

  revoke(id: string, now: number): boolean {
    for (const r of this.#byHash.values()) {
      if (r.id === id && r.revokedAt === undefined) {
        r.revokedAt = now;
        return true;
      }
    }
    return false;
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
export function createApiToken(store: TokenStore, label: string, now: number, scope: ApiScope = 'operator'): { token: string; record: ApiTokenRecord } {
  const token = generateApiToken();
  const hash = hashApiToken(token);
  const record: ApiTokenRecord = { id: hash.slice(0, 12), label, scope, hash, createdAt: now };
  store.add(record);
  return { token, record };
}

/** At first start (no valid token stored) create an operator token for "admin"; otherwise create nothing. */
export function ensureInitialApiToken(store: TokenStore, now: number): { token: string; record: ApiTokenRecord } | undefined {
  if (store.count() > 0) return undefined;
  return createApiToken(store, 'admin', now, 'operator');
}

/** The record a presented token belongs to (not revoked), or undefined. */
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
