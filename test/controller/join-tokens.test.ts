/**
 * Join tokens against the store (no sockets): the secure defaults (one host,
 * one use, one hour), the explicit any-host and multi-use tokens, and every
 * refusal with its reason; nothing secret is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore } from '../../src/controller/store/store.ts';
import { createJoinToken, DEFAULT_JOIN_TOKEN_TTL_MS, joinTokenState, joinWithToken } from '../../src/controller/join-tokens.ts';
import { hashSecret, verifyHostCredential } from '../../src/controller/host-identity.ts';

const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);

function store(t: { after(fn: () => void): void }): ReturnType<typeof openStore> {
  const s = openStore({ path: ':memory:' });
  t.after(() => s.close());
  return s;
}

test('a join token is for one host, one use and one hour unless asked otherwise; only its hash is stored', (t) => {
  const s = store(t);
  const { token, record } = createJoinToken(s, { host: 'h1' }, NOW);
  assert.equal(record.expiresMs, NOW + DEFAULT_JOIN_TOKEN_TTL_MS);
  assert.equal(DEFAULT_JOIN_TOKEN_TTL_MS, 3_600_000);
  assert.equal(record.singleUse, true);
  assert.equal(record.host, 'h1');
  assert.equal(record.hash, hashSecret(token));
  assert.equal(JSON.stringify(s.access.listJoinTokens()).includes(token), false);
  // A controller-wide default lifetime, and a per-token one.
  assert.equal(createJoinToken(s, { host: 'h1' }, NOW, 60_000).record.expiresMs, NOW + 60_000);
  assert.equal(createJoinToken(s, { host: 'h1', ttlMs: 5000 }, NOW).record.expiresMs, NOW + 5000);
});

test('a token for any host, or a lifetime out of range, only when asked for clearly', (t) => {
  const s = store(t);
  assert.throws(() => createJoinToken(s, {}, NOW), { code: 'VNET_ERR_INVALID_ARGUMENT', message: /name the host/ });
  assert.throws(() => createJoinToken(s, { host: 'h1', anyHost: true }, NOW), { code: 'VNET_ERR_INVALID_ARGUMENT', message: /not both/ });
  assert.throws(() => createJoinToken(s, { host: 'h1', ttlMs: 0 }, NOW), { code: 'VNET_ERR_INVALID_ARGUMENT', message: /lifetime/ });
  assert.equal(s.access.listJoinTokens().length, 0);
  const any = createJoinToken(s, { anyHost: true, singleUse: false }, NOW);
  assert.equal(any.record.host, undefined);
  assert.equal(joinWithToken(s, any.token, 'h1', NOW + 1).record.usedBy, 'h1');
  assert.equal(joinWithToken(s, any.token, 'h2', NOW + 2).record.usedBy, 'h2');
  assert.equal(joinTokenState(s.access.listJoinTokens()[0]!, NOW + 3), 'valid');
});

test('expired, used, revoked, wrong-host and unknown tokens are refused with their reason; a good join issues a credential', (t) => {
  const s = store(t);
  const refused = (token: string, host: string, nowMs: number): string => {
    try {
      joinWithToken(s, token, host, nowMs);
    } catch (err) {
      return `${(err as { reason: string }).reason}: ${(err as Error).message}`;
    }
    return 'admitted';
  };
  const expired = createJoinToken(s, { host: 'h1', ttlMs: 1000 }, NOW);
  assert.match(refused(expired.token, 'h1', NOW + 1000), /^expired: join token [0-9a-f]{12} expired/);
  const other = createJoinToken(s, { host: 'h2' }, NOW);
  assert.match(refused(other.token, 'h1', NOW), /^wrong-host: .*is for host h2, not h1/);
  const revoked = createJoinToken(s, { host: 'h1' }, NOW);
  assert.equal(s.access.revokeJoinToken(revoked.record.id, NOW), true);
  assert.match(refused(revoked.token, 'h1', NOW), /^revoked: /);
  assert.match(refused('vnetj_nope', 'h1', NOW), /^unknown: /);

  const good = createJoinToken(s, { host: 'h1' }, NOW);
  const { credential } = joinWithToken(s, good.token, 'h1', NOW);
  assert.equal(verifyHostCredential(s, 'h1', credential, NOW + 1), true);
  assert.equal(s.access.hostCredential('h1')?.lastUsedMs, NOW + 1);
  assert.equal(verifyHostCredential(s, 'h2', credential, NOW), false);
  assert.match(refused(good.token, 'h1', NOW), /^used: .*already used by h1/);
  // h1 has a credential now: even a fresh token for it is refused, and stays unused.
  const fresh = createJoinToken(s, { host: 'h1' }, NOW);
  assert.match(refused(fresh.token, 'h1', NOW), /^host-has-identity: /);
  assert.equal(joinTokenState(s.access.getJoinToken(fresh.record.id)!, NOW), 'valid');
});
