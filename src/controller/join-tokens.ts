import { randomBytes } from 'node:crypto';
import type { JoinTokenState } from './access-model.ts';
import { AccessRequestError, JoinTokenError } from './errors.ts';
import { hashSecret, issueHostCredential } from './host-identity.ts';
import type { ControllerStore } from './store/store.ts';
import type { JoinTokenRecord } from './store/records.ts';

/**
 * Join tokens: how a daemon without a host certificate makes first contact.
 * The controller creates a token (256 random bits, shown once) and stores
 * only its SHA-256. Secure by default: a token is bound to one host, lives
 * one hour and is good for one join; a token for any host of the deployment,
 * or one good for several joins, only when asked for explicitly.
 *
 * A join is refused with the reason named (JoinTokenError) when the token is
 * unknown, revoked, expired, used, or bound to another host — and when the
 * host already has an identity (a certificate it connected with, or a
 * credential from an earlier join): a token never takes over a host; revoke
 * the host's identity first (host-identity.ts). A good join marks the token
 * used and issues the host a credential, in one transaction.
 *
 * Times are wall-clock milliseconds passed in by the caller.
 */

const JOIN_PREFIX = 'vnetj_';
export const DEFAULT_JOIN_TOKEN_TTL_MS = 60 * 60 * 1000;
/** The longest lifetime a token may be given (explicitly). */
export const MAX_JOIN_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;

export interface JoinTokenOptions {
  /** The one host that may use the token. Required unless `anyHost`. */
  host?: string | undefined;
  /** Explicitly: any host of the deployment may use it. */
  anyHost?: boolean | undefined;
  /** Lifetime; the controller's default (one hour) if absent. */
  ttlMs?: number | undefined;
  /** Default true; false only explicitly. */
  singleUse?: boolean | undefined;
}

/** Check the options: a host or, explicitly, any host; a lifetime within bounds. Throws AccessRequestError. */
export function checkJoinTokenOptions(options: JoinTokenOptions): void {
  if (options.host !== undefined && options.anyHost === true) throw new AccessRequestError('a join token is either for one host or for any host: give host or anyHost, not both');
  if (options.host === undefined && options.anyHost !== true) throw new AccessRequestError('name the host the join token is for (or ask for anyHost explicitly)');
  const ttl = options.ttlMs;
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1000 || ttl > MAX_JOIN_TOKEN_TTL_MS)) {
    throw new AccessRequestError(`a join token's lifetime is 1 s to ${MAX_JOIN_TOKEN_TTL_MS / 86_400_000} days (got ${String(ttl)} ms)`);
  }
}

/** Create a token and store its hash; the returned `token` is the only copy of the secret. */
export function createJoinToken(
  store: ControllerStore, options: JoinTokenOptions, nowMs: number, defaultTtlMs = DEFAULT_JOIN_TOKEN_TTL_MS,
): { token: string; record: JoinTokenRecord } {
  checkJoinTokenOptions(options);
  const token = JOIN_PREFIX + randomBytes(32).toString('base64url');
  const hash = hashSecret(token);
  const record: JoinTokenRecord = {
    id: hash.slice(0, 12),
    hash,
    host: options.host,
    createdMs: nowMs,
    expiresMs: nowMs + (options.ttlMs ?? defaultTtlMs),
    singleUse: options.singleUse ?? true,
    usedMs: undefined,
    usedBy: undefined,
    revokedMs: undefined,
  };
  store.access.insertJoinToken(record);
  return { token, record };
}

export function joinTokenState(record: JoinTokenRecord, nowMs: number): JoinTokenState {
  if (record.revokedMs !== undefined) return 'revoked';
  if (record.singleUse && record.usedMs !== undefined) return 'used';
  if (record.expiresMs !== undefined && nowMs >= record.expiresMs) return 'expired';
  return 'valid';
}

/**
 * A daemon presents `token` in its hello as `hostId`: check it, mark it used
 * and issue the host's credential (one transaction). Returns the credential
 * text (sent once, in the welcome). Throws JoinTokenError naming the refusal.
 */
export function joinWithToken(store: ControllerStore, token: string, hostId: string, nowMs: number): { record: JoinTokenRecord; credential: string } {
  return store.transaction(() => {
    const record = store.access.findJoinTokenByHash(hashSecret(token));
    if (record === undefined) throw new JoinTokenError('unknown', 'join token not recognised');
    const state = joinTokenState(record, nowMs);
    if (state === 'revoked') throw new JoinTokenError('revoked', `join token ${record.id} was revoked`);
    if (state === 'used') throw new JoinTokenError('used', `join token ${record.id} was already used${record.usedBy !== undefined ? ` by ${record.usedBy}` : ''}`);
    if (state === 'expired') throw new JoinTokenError('expired', `join token ${record.id} expired`);
    if (record.host !== undefined && record.host !== hostId) throw new JoinTokenError('wrong-host', `join token ${record.id} is for host ${record.host}, not ${hostId}`);
    if (store.access.hostHasIdentity(hostId)) {
      throw new JoinTokenError('host-has-identity', `host ${hostId} already has an identity (a certificate or a credential); a join token does not replace it: revoke it first (vnet ctl credentials revoke ${hostId})`);
    }
    if (!store.access.markJoinTokenUsed(record.id, hostId, nowMs, record.singleUse)) {
      throw new JoinTokenError('used', `join token ${record.id} was already used`);
    }
    return { record: { ...record, usedMs: nowMs, usedBy: hostId }, credential: issueHostCredential(store, hostId, nowMs) };
  });
}
