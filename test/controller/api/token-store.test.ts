import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTokenStore, createApiToken, ensureInitialApiToken, generateApiToken, hashApiToken, verifyApiToken } from '../../../src/controller/api/token-store.ts';
import { readTokenFile, tokenFilePath, writeTokenFile } from '../../../src/controller/api/token-file.ts';
import { authenticate } from '../../../src/controller/api/auth.ts';

describe('API tokens', () => {
  it('generates 256-bit tokens and stores only their SHA-256', () => {
    const t = generateApiToken();
    assert.match(t, /^vnet_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(generateApiToken(), t);
    const store = new MemoryTokenStore();
    const { token, record } = createApiToken(store, 'alice', 42);
    assert.equal(record.hash, hashApiToken(token));
    assert.ok(!JSON.stringify(record).includes(token), 'the record holds no clear token');
    assert.equal(record.label, 'alice');
    assert.equal(record.createdAt, 42);
  });

  it('creates the first token at first start only', () => {
    const store = new MemoryTokenStore();
    const first = ensureInitialApiToken(store, 1);
    assert.ok(first !== undefined);
    assert.equal(first.record.label, 'admin');
    assert.equal(ensureInitialApiToken(store, 2), undefined);
    assert.equal(store.count(), 1);
  });

  it('verifies known tokens and refuses unknown, empty and oversized ones', () => {
    const store = new MemoryTokenStore();
    const { token, record } = createApiToken(store, 'admin', 0);
    assert.equal(verifyApiToken(store, token)?.id, record.id);
    assert.equal(verifyApiToken(store, `${token}x`), undefined);
    assert.equal(verifyApiToken(store, ''), undefined);
    assert.equal(verifyApiToken(store, 'x'.repeat(10_000)), undefined);
    assert.deepEqual(authenticate(store, token), { tokenId: record.id, actor: 'operator:admin', scope: 'operator' });
    assert.throws(() => authenticate(store, undefined), { code: 'VNET_ERR_API_UNAUTHORIZED' });
    assert.throws(() => authenticate(store, 'vnet_nope'), { code: 'VNET_ERR_API_UNAUTHORIZED' });
  });

  it('writes the token file with mode 0600 and reads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vnet-token-'));
    try {
      const path = join(dir, '.vnet', 'api-token');
      assert.equal(await readTokenFile(path), undefined);
      await writeTokenFile(path, 'vnet_abc');
      assert.equal(await readTokenFile(path), 'vnet_abc');
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal(tokenFilePath({}), '.vnet/api-token');
      assert.equal(tokenFilePath({ VNET_TOKEN_FILE: '/x/t' }), '/x/t');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
