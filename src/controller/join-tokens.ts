import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { JoinTokenError } from './errors.ts';
import type { ControllerStore } from './store/store.ts';
import type { JoinTokenRecord } from './store/records.ts';

/**
 * Join tokens: how a daemon without a host certificate makes first contact.
 * The controller creates a token (256 random bits, shown once), stores only
 * its SHA-256, and accepts it in a hello while it is unexpired and — for a
 * single-use token — unused, and only for the host it is bound to (if any).
 * A daemon that joins with a token is issued a host credential (another
 * random secret, stored hashed) that it presents on every later hello, so
 * that a single-use token is not needed twice.
 *
 * Times are wall-clock milliseconds passed in by the caller.
 */

const JOIN_PREFIX = 'vnetj_';
const CREDENTIAL_PREFIX = 'vnetc_';

export interface JoinTokenOptions {
  /** Bind the token to one host id; any host of the deployment otherwise. */
  host?: string | undefined;
  /** Lifetime; no expiry if absent. */
  ttlMs?: number | undefined;
  /** Default true. */
  singleUse?: boolean | undefined;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Create a token and store its hash; the returned `token` is the only copy of the secret. */
export function createJoinToken(store: ControllerStore, options: JoinTokenOptions, nowMs: number): { token: string; record: JoinTokenRecord } {
  const token = JOIN_PREFIX + randomBytes(32).toString('base64url');
  const hash = hashSecret(token);
  const record: JoinTokenRecord = {
    id: hash.slice(0, 12),
    hash,
    host: options.host,
    createdMs: nowMs,
    expiresMs: options.ttlMs === undefined ? undefined : nowMs + options.ttlMs,
    singleUse: options.singleUse ?? true,
    usedMs: undefined,
    usedBy: undefined,
  };
  store.insertJoinToken(record);
  return { token, record };
}

/**
 * Check a presented token for `hostId` and, if it is good, mark it used (one
 * transaction). Throws JoinTokenError naming why it was refused.
 */
export function consumeJoinToken(store: ControllerStore, token: string, hostId: string, nowMs: number): JoinTokenRecord {
  return store.transaction(() => {
    const record = store.findJoinTokenByHash(hashSecret(token));
    if (record === undefined) throw new JoinTokenError('unknown', 'join token not recognised');
    if (record.expiresMs !== undefined && nowMs >= record.expiresMs) throw new JoinTokenError('expired', `join token ${record.id} expired`);
    if (record.host !== undefined && record.host !== hostId) throw new JoinTokenError('wrong-host', `join token ${record.id} is for host ${record.host}, not ${hostId}`);
    if (record.singleUse) {
      if (record.usedMs !== undefined || !store.markJoinTokenUsed(record.id, hostId, nowMs)) {
        throw new JoinTokenError('used', `join token ${record.id} was already used${record.usedBy !== undefined ? ` by ${record.usedBy}` : ''}`);
      }
      return { ...record, usedMs: nowMs, usedBy: hostId };
    }
    return record;
  });
}

/** Issue a fresh host credential (replacing any earlier one) and return its text. */
export function issueHostCredential(store: ControllerStore, hostId: string, nowMs: number): string {
  const credential = CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
  store.setHostCredential(hostId, hashSecret(credential), nowMs);
  return credential;
}

/** Whether `credential` is the one issued to `hostId`, compared in constant time. */
export function verifyHostCredential(store: ControllerStore, hostId: string, credential: string): boolean {
  const stored = store.hostCredentialHash(hostId);
  if (stored === undefined) return false;
  const a = Buffer.from(stored, 'hex');
  const b = Buffer.from(hashSecret(credential), 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
