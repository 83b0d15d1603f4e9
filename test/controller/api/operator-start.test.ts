import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { pageUrlFromTokenFile, startOperatorApi } from '../../../src/controller/api/operator-api.ts';
import { readTokenFile } from '../../../src/controller/api/token-file.ts';
import { MemoryTokenStore } from '../../../src/controller/api/token-store.ts';
import { MemoryControllerModel } from '../../../src/controller/memory-controller-model.ts';

describe('startOperatorApi', () => {
  it('creates the token at first start, writes the token file, and puts the token in the page URL of that start only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vnet-opapi-'));
    const tokens = new MemoryTokenStore();
    const model = new MemoryControllerModel();
    const tokenFile = join(dir, '.vnet', 'api-token');
    const start = () => startOperatorApi({ logger: silentLogger(), model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0, tokenFile });
    try {
      const first = await start();
      try {
        assert.ok(first.createdToken !== undefined);
        assert.equal(await readTokenFile(tokenFile), first.createdToken);
        assert.equal(first.pageUrl, `${first.url}/#token=${encodeURIComponent(first.createdToken)}`);
        const res = await fetch(`${first.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${first.createdToken}` } });
        assert.deepEqual(((await res.json()) as { actor: string }).actor, 'operator:admin');
      } finally {
        await first.close();
      }
      // Second start: no new token, and the page URL does not carry the token (a restart prints no secret).
      const second = await start();
      try {
        assert.equal(second.createdToken, undefined);
        assert.equal(tokens.count(), 1);
        assert.equal(second.pageUrl, `${second.url}/`);
        // On request (the demo's console), from the token file while that token is valid.
        assert.equal(await pageUrlFromTokenFile(second.url, tokenFile, tokens), `${second.url}/#token=${encodeURIComponent(first.createdToken)}`);
      } finally {
        await second.close();
      }
      // A stale token file is not advertised.
      await writeFile(tokenFile, 'vnet_stale\n');
      assert.equal(await pageUrlFromTokenFile('http://127.0.0.1:1', tokenFile, tokens), 'http://127.0.0.1:1/');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
