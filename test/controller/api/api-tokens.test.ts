/**
 * API tokens through the operator API: created with a scope and shown once,
 * listed without secrets, revoked — a revoked token is refused at once on
 * HTTP and its open event stream is closed; a read token reads (the web page's
 * requests and the stream) and changes nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { CLOSE_POLICY } from '../../../src/controller/api/event-stream.ts';
import { startFixtureServer, type FixtureServer } from './api-fixture.ts';

describe('API tokens and scopes', () => {
  let f: FixtureServer;
  const call = (token: string, method: string, path: string, body?: unknown): Promise<Response> =>
    fetch(`${f.server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const create = async (label: string, scope: string): Promise<{ token: string; id: string; scope: string }> => {
    const res = await call(f.token, 'POST', '/api/v1/tokens', { label, scope });
    assert.equal(res.status, 201);
    return (await res.json()) as { token: string; id: string; scope: string };
  };

  before(async () => {
    f = await startFixtureServer();
  });
  after(async () => {
    await f.server.close();
  });

  it('creates a token with a scope, shows its secret once and lists tokens without secrets', async () => {
    const t = await create('grafana', 'read');
    assert.match(t.token, /^vnet_/);
    assert.equal(t.scope, 'read');
    const list = (await (await call(f.token, 'GET', '/api/v1/tokens')).json()) as { tokens: Array<Record<string, unknown>> };
    assert.deepEqual(list.tokens.map((x) => [x['label'], x['scope'], x['revokedAt']]), [['admin', 'operator', null], ['grafana', 'read', null]]);
    assert.equal(JSON.stringify(list).includes(t.token), false);
    assert.equal(JSON.stringify(list).includes('hash'), false);
    const bad = await call(f.token, 'POST', '/api/v1/tokens', { label: 'x', scope: 'root' });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(await bad.json()), /scope must be read or operator/);
  });

  it('a read token reads and opens the event stream, and cannot change anything (403) or manage tokens', async () => {
    const r = await create('dashboard', 'read');
    assert.equal((await call(r.token, 'GET', '/api/v1/overview')).status, 200);
    assert.equal(((await (await call(r.token, 'GET', '/api/v1/whoami')).json()) as { scope: string }).scope, 'read');
    const changes: Array<[string, string, unknown]> = [
      ['POST', '/api/v1/links', { a: 'aws-1', b: 'gcp-1' }],
      ['DELETE', '/api/v1/links/aws-1/gcp-1', undefined],
      ['POST', '/api/v1/migrations', { vm: 'vm1', to: 'gcp-1' }],
      ['POST', '/api/v1/tokens', { label: 'escalate', scope: 'operator' }],
      ['POST', '/api/v1/join-tokens', { host: 'aws-1' }],
      ['GET', '/api/v1/tokens', undefined],
      ['GET', '/api/v1/join-tokens', undefined],
      ['GET', '/api/v1/credentials', undefined],
      ['DELETE', `/api/v1/tokens/${r.id}`, undefined],
    ];
    const before = JSON.stringify(f.model.listLinks());
    for (const [method, path, body] of changes) {
      const res = await call(r.token, method, path, body);
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'VNET_ERR_API_FORBIDDEN');
    }
    assert.equal(JSON.stringify(f.model.listLinks()), before);
    assert.equal(f.tokens.list().filter((t) => t.label === 'escalate').length, 0);
    const ws = new WebSocket(`${f.server.url.replace('http', 'ws')}/api/v1/events?token=${encodeURIComponent(r.token)}`);
    const hello = await new Promise<string>((resolve, reject) => { ws.once('message', (d) => resolve(String(d))); ws.once('error', reject); });
    assert.match(hello, /"kind":"hello"/);
    ws.close();
  });

  it('a revoked token is refused at once on HTTP, and its open event stream is closed', async () => {
    const t = await create('page', 'read');
    const other = await create('other', 'read');
    const open = (token: string): Promise<{ ws: WebSocket; closed: Promise<number> }> => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${f.server.url.replace('http', 'ws')}/api/v1/events`, { headers: { authorization: `Bearer ${token}` } });
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      ws.once('message', () => resolve({ ws, closed }));
      ws.once('error', reject);
    });
    const mine = await open(t.token);
    const theirs = await open(other.token);
    const res = await call(f.token, 'DELETE', `/api/v1/tokens/${t.id}`);
    assert.equal(res.status, 200);
    assert.notEqual(((await res.json()) as { revoked: { revokedAt: number | null } }).revoked.revokedAt, null);
    assert.equal(await mine.closed, CLOSE_POLICY);
    const refused = await call(t.token, 'GET', '/api/v1/hosts');
    assert.equal(refused.status, 401);
    assert.match(JSON.stringify(await refused.json()), /unknown or revoked/);
    // Another token's stream is untouched; revoking twice is a clear 404.
    assert.equal(theirs.ws.readyState, WebSocket.OPEN);
    theirs.ws.close();
    assert.equal((await call(f.token, 'DELETE', `/api/v1/tokens/${t.id}`)).status, 404);
    assert.equal((await call(f.token, 'DELETE', '/api/v1/tokens/not-an-id')).status, 400);
    // A new stream with the revoked token is refused at the upgrade.
    await assert.rejects(open(t.token), /401/);
  });
});
