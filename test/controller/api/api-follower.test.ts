import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { startApiServer } from '../../../src/controller/api/api-server.ts';
import { ImageCatalog } from '../../../src/controller/image-catalog.ts';
import { openStore } from '../../../src/controller/store/store.ts';
import { MemoryTokenStore, createApiToken } from '../../../src/controller/api/token-store.ts';
import type { LeaderRecord } from '../../../src/controller/leader-record.ts';
import { LEADER_ONLY_READS } from '../../../src/controller/api/leader-reads.ts';
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

test('a follower forwards the reads only the leader holds (link rates, the smoothed matrix, placement proposals) to the leader\'s API with the caller\'s token, and answers the rest itself', async (t) => {
  // The leader: a real API on the fixture model (rates, matrix, proposals); the follower's own model has none of them, as a replica's store has not.
  const leaderModel = buildFixtureModel();
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', FIXTURE_NOW);
  const leaderApi = await startApiServer({ logger: silentLogger(), model: leaderModel, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0 });
  t.after(() => leaderApi.close());
  let asked = 0;
  let leader: LeaderRecord | undefined = { name: 'c1', api: leaderApi.url };
  const model = buildFixtureModel();
  model.setMatrix({ ...leaderModel.getMatrix(), edges: [] });
  model.setPlacement({ ...leaderModel.getPlacement(), moves: [], proposedScore: leaderModel.getPlacement().score });
  model.setTraffic(FIXTURE_NOW, []);
  for (const l of model.listLinks()) model.putLink({ ...l, bytesPerSec: 0, framesPerSec: 0 });
  const server = await startApiServer({
    logger: silentLogger(), model, tokens, registry: new Registry(),
    follower: { replica: 'c2', leader: async () => { asked++; return leader; }, forwardReads: LEADER_ONLY_READS },
  }, { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
  const fromLeader = async (path: string): Promise<unknown> => (await fetch(`${leaderApi.url}${path}`, { headers: { authorization: `Bearer ${token}` } })).json();

  for (const path of ['/api/v1/matrix', '/api/v1/placement', '/api/v1/links', '/api/v1/links/aws-1/gcp-1', '/api/v1/overview']) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers.get('x-vnet-served-by'), 'c1', `${path} answered by the leader`);
    assert.deepEqual(await r.json(), await fromLeader(path), path);
  }
  const matrix = await (await get('/api/v1/matrix')).json() as { edges: unknown[] };
  assert.ok(matrix.edges.length > 0 && model.getMatrix().edges.length === 0, 'the leader\'s smoothed matrix, not the follower\'s empty one');
  const links = await (await get('/api/v1/links')).json() as { links: Array<{ bytesPerSec: number }> };
  assert.ok(links.links.some((l) => l.bytesPerSec > 0), 'the leader\'s link rates');
  assert.equal((await (await get('/api/v1/placement')).json() as { moves: unknown[] }).moves.length, 1, 'the leader\'s proposals');
  // Its errors are relayed as they are (the caller's token went with the request).
  const missing = await get('/api/v1/links/aws-1/nowhere');
  assert.equal(missing.status, 404);
  assert.equal((await missing.json() as { error: { code: string } }).error.code, 'VNET_ERR_NOT_FOUND');

  // The rest comes from the follower's own store: the leader is not asked.
  const before = asked;
  const hosts = await get('/api/v1/hosts');
  assert.equal(hosts.status, 200);
  assert.equal(hosts.headers.get('x-vnet-served-by'), null);
  assert.equal(asked, before);
  // A read forwarded once is not forwarded again (a replica that just lost its term answers it itself).
  const marked = await get('/api/v1/matrix', { 'x-vnet-forwarded': '1' });
  assert.equal(marked.headers.get('x-vnet-served-by'), null);
  assert.deepEqual((await marked.json() as { edges: unknown[] }).edges, []);
  // Authentication first: a bad token never reaches the leader.
  assert.equal((await fetch(`${server.url}/api/v1/matrix`, { headers: { authorization: 'Bearer vnet_wrong' } })).status, 401);

  // No leader, or one that does not answer: 503 saying which, never the follower's empty figures.
  leader = undefined;
  const none = await get('/api/v1/matrix');
  assert.equal(none.status, 503);
  const noneBody = await none.json() as { error: { code: string; message: string } };
  assert.equal(noneBody.error.code, 'VNET_ERR_LEADER_UNREACHABLE');
  assert.match(noneBody.error.message, /no leader is elected now/);
  leader = { name: 'c1' };
  assert.match((await (await get('/api/v1/links')).json() as { error: { message: string } }).error.message, /c1, has no known API address/);
  const gone = leaderApi.url;
  await leaderApi.close();
  leader = { name: 'c1', api: gone };
  const down = await get('/api/v1/placement');
  assert.equal(down.status, 503);
  assert.match((await down.json() as { error: { message: string } }).error.message, /the leader, c1 \(http:\/\/127\.0\.0\.1:\d+\), did not answer/);
});

test('the image publish routes: a follower redirects them to the leader; a controller without a publisher answers 501', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-api-images-'));
  const store = openStore({ path: join(dir, 'vnet.db') });
  t.after(() => { store.close(); rmSync(dir, { recursive: true, force: true }); });
  const images = new ImageCatalog({ store, wallClock: () => FIXTURE_NOW });
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', FIXTURE_NOW);
  const body = JSON.stringify({ version: 1, chunkSize: 4, size: 0, chunks: [] });
  const post = async (follower: boolean): Promise<Response> => {
    const server = await startApiServer({
      logger: silentLogger(), model: buildFixtureModel(), tokens, images, registry: new Registry(),
      ...(follower ? { follower: { replica: 'c2', leader: async () => ({ name: 'c1', api: 'http://10.0.0.1:7070' }) } } : {}),
    }, { host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    return fetch(`${server.url}/api/v1/images/debian/versions`, { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
  };
  const redirected = await post(true);
  assert.equal(redirected.status, 307);
  assert.equal(redirected.headers.get('location'), 'http://10.0.0.1:7070/api/v1/images/debian/versions');
  const unsupported = await post(false);
  assert.equal(unsupported.status, 501);
  assert.match(await unsupported.text(), /publishing images is not supported/);
});
