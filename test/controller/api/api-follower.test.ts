import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { startApiServer } from '../../../src/controller/api/api-server.ts';
import { MemoryTokenStore, createApiToken } from '../../../src/controller/api/token-store.ts';
import type { LeaderRecord } from '../../../src/controller/leader-record.ts';
import { buildFixtureModel, FIXTURE_NOW } from './api-fixture.ts';

// The API of a controller replica that does not lead (docs/ha.md): reads served, changes sent to the leader.

async function followerApi(t: { after(fn: () => Promise<void>): void }, leader: () => Promise<LeaderRecord | undefined>) {
  const model = buildFixtureModel();
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', FIXTURE_NOW);
  const server = await startApiServer({ logger: silentLogger(), model, tokens, registry: new Registry(), follower: { replica: 'c2', leader } }, { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const call = (method: string, path: string, body?: unknown, auth = token) => fetch(`${server.url}${path}`, {
    method, redirect: 'manual', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { model, call };
}

test('a follower answers reads, and a change with 307 to the same path and query on the leader\'s API, before the model is touched', async (t) => {
  const { model, call } = await followerApi(t, async () => ({ name: 'c1', api: 'http://10.0.0.1:7070/' }));
  const hosts = await call('GET', '/api/v1/hosts');
  assert.equal(hosts.status, 200);
  assert.equal((await hosts.json() as { hosts: unknown[] }).hosts.length, model.listHosts().length);
  const links = model.listLinks().length;
  const r = await call('POST', '/api/v1/links?dry=1', { a: 'aws-1', b: 'gcp-1' });
  assert.equal(r.status, 307);
  assert.equal(r.headers.get('location'), 'http://10.0.0.1:7070/api/v1/links?dry=1');
  const body = await r.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'VNET_ERR_NOT_LEADER');
  assert.match(body.error.message, /c2 does not lead; send changes to the leader, c1 \(http:\/\/10\.0\.0\.1:7070\/\)/);
  assert.equal(model.listLinks().length, links, 'nothing changed on the follower');
});

test('a follower that knows no leader answers a change 503 saying so; a bad token is still 401, before any redirect', async (t) => {
  const { call } = await followerApi(t, async () => undefined);
  const r = await call('DELETE', '/api/v1/links/aws-1/gcp-1');
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('location'), null);
  assert.match((await r.json() as { error: { message: string } }).error.message, /no leader is elected now/);
  const unknownApi = await followerApi(t, async () => ({ name: 'c1' }));
  const u = await unknownApi.call('POST', '/api/v1/links', { a: 'aws-1', b: 'gcp-1' });
  assert.equal(u.status, 503);
  assert.match((await u.json() as { error: { message: string } }).error.message, /c1 \(its API address is not known\)/);
  assert.equal((await call('POST', '/api/v1/links', { a: 'aws-1', b: 'gcp-1' }, 'vnet_wrong')).status, 401);
});
