import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { startApiServer } from '../../../src/controller/api/api-server.ts';
import { MemoryTokenStore, createApiToken } from '../../../src/controller/api/token-store.ts';
import type { ControllerModel } from '../../../src/controller/api-model.ts';
import type { LinkView } from '../../../src/controller/api-views.ts';
import { startFixtureServer, buildFixtureModel } from './api-fixture.ts';
import type { FixtureServer } from './api-fixture.ts';
import { captureServers, inject, recordingLogger } from '../../helpers/http-inject.ts';
import { waitFor } from '../../helpers/wait.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** One raw HTTP request (node:http, so bodies and headers can be anything). */
function call(base: string, method: string, path: string, init: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  const url = new URL(path, base);
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('operator API over HTTP', () => {
  let f: FixtureServer;
  const get = (path: string, token = f.token): Promise<Reply> => call(f.server.url, 'GET', path, { token });

  before(async () => {
    f = await startFixtureServer({ maxBodyBytes: 4096 });
  });
  after(async () => {
    await f.server.close();
  });

  it('listens on loopback and reports its URL and port', () => {
    assert.match(f.server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(f.server.port > 0);
  });

  it('refuses a missing, malformed or unknown token with 401 and a JSON error', async () => {
    for (const headers of [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer' }, { authorization: `Bearer ${f.token}x` }]) {
      const r = await call(f.server.url, 'GET', '/api/v1/hosts', { headers });
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal(r.json.error.code, 'VNET_ERR_API_UNAUTHORIZED');
      assert.equal(typeof r.json.error.message, 'string');
    }
    // Unknown API paths are not revealed without a token either.
    assert.equal((await call(f.server.url, 'GET', '/api/v1/nope')).status, 401);
  });

  it('lists hosts, VMs, links, matrix, topology, migrations, placement and decisions', async () => {
    const hosts = await get('/api/v1/hosts');
    assert.equal(hosts.status, 200);
    assert.deepEqual(hosts.json.hosts.map((h: { id: string }) => h.id), ['aws-1', 'aws-2', 'gcp-1', 'gcp-2', 'hub']);
    assert.equal((await get('/api/v1/vms')).json.vms.length, 8);
    const links = (await get('/api/v1/links')).json.links as LinkView[];
    assert.equal(links.length, 5);
    assert.equal(links.filter((l) => l.kind === 'fast-path').length, 1);
    const matrix = (await get('/api/v1/matrix')).json;
    assert.equal(matrix.vms.length, 8);
    assert.equal(matrix.edges.length, 2);
    const topo = (await get('/api/v1/topology')).json;
    assert.equal(topo.class, 'ring');
    assert.equal(topo.edges.length, 4);
    const migrations = (await get('/api/v1/migrations')).json.migrations;
    assert.equal(migrations.length, 1);
    assert.equal(migrations[0].progress, 0.42);
    assert.equal((await get('/api/v1/migrations/m1')).json.phase, 'memory');
    assert.equal((await get('/api/v1/placement')).json.moves.length, 1);
    assert.equal((await get('/api/v1/decisions?limit=5')).json.decisions[0].kind, 'fast-path-added');
    const overview = (await get('/api/v1/overview')).json;
    assert.equal(overview.latestSeq, f.model.latestSeq());
    assert.equal(overview.hosts.length, 5);
  });

  it('the index lists resources that are all served (none answers "no route")', async () => {
    const index = (await get('/api/v1')).json as { resources: string[] };
    assert.ok(index.resources.includes('hosts') && !index.resources.includes('status'), 'status only where a replica status is served');
    for (const name of index.resources) {
      const r = await get(`/api/v1/${name}`);
      assert.notEqual(r.json?.error?.code, 'VNET_ERR_API_NO_ROUTE', name);
    }
  });

  it('gets single resources and answers 404 for unknown ones', async () => {
    assert.equal((await get('/api/v1/hosts/hub')).json.role, 'hub');
    assert.equal((await get('/api/v1/vms/02:00:00:00:00:05')).json.host, 'gcp-1');
    assert.equal((await get('/api/v1/links/hub/aws-1')).json.kind, 'backbone');
    assert.equal((await get('/api/v1/links/aws-1/hub')).json.a, 'aws-1');
    const rules = (await get('/api/v1/hosts/aws-1/rules')).json;
    assert.equal(rules.version, 3);
    assert.equal(rules.rules[0].action.link, 'gcp-1');
    for (const path of ['/api/v1/hosts/nope', '/api/v1/hosts/nope/rules', '/api/v1/vms/02:00:00:00:00:99', '/api/v1/links/aws-1/aws-2', '/api/v1/migrations/zz']) {
      const r = await get(path);
      assert.equal(r.status, 404, path);
      assert.equal(r.json.error.code, 'VNET_ERR_NOT_FOUND', path);
    }
    const none = await get('/api/v1/nothing-here');
    assert.equal(none.status, 404);
    assert.equal(none.json.error.code, 'VNET_ERR_API_NO_ROUTE');
  });

  it('adds a fast-path link by hand, audits it as the token owner, and removes it', async () => {
    const before = f.model.latestSeq();
    const add = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token, body: JSON.stringify({ a: 'gcp-1', b: 'aws-2', reason: 'test' }) });
    assert.equal(add.status, 201);
    assert.deepEqual([add.json.a, add.json.b, add.json.kind, add.json.requestedBy, add.json.actor], ['aws-2', 'gcp-1', 'fast-path', 'operator', 'operator:admin']);
    assert.equal((await get('/api/v1/links/gcp-1/aws-2')).json.reason, 'test');
    const audit = (await get(`/api/v1/events?since=${before}&types=operator-action`)).json.events;
    assert.equal(audit.length, 1);
    assert.equal(audit[0].payload.actor, 'operator:admin');
    assert.equal(audit[0].payload.action, 'add-fast-path-link');

    const again = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token, body: JSON.stringify({ a: 'aws-2', b: 'gcp-1' }) });
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, 'VNET_ERR_CONFLICT');

    const del = await call(f.server.url, 'DELETE', '/api/v1/links/gcp-1/aws-2', { token: f.token });
    assert.equal(del.status, 200);
    assert.equal((await get('/api/v1/links/aws-2/gcp-1')).status, 404);
    assert.equal((await call(f.server.url, 'DELETE', '/api/v1/links/gcp-1/aws-2', { token: f.token })).status, 404);
    const backbone = await call(f.server.url, 'DELETE', '/api/v1/links/hub/aws-1', { token: f.token });
    assert.equal(backbone.status, 409);
  });

  it('refuses links to unknown hosts (404) and to the same host (409)', async () => {
    const unknown = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token, body: JSON.stringify({ a: 'aws-1', b: 'mars' }) });
    assert.equal(unknown.status, 404);
    const self = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token, body: JSON.stringify({ a: 'aws-1', b: 'aws-1' }) });
    assert.equal(self.status, 409);
  });

  it('answers 400 naming the bad field for invalid bodies and queries', async () => {
    const cases: Array<[string, string | undefined, Record<string, string>?]> = [
      [JSON.stringify({ a: 'aws-1' }), 'b'],
      [JSON.stringify({ a: 'aws-1', b: 'gcp-1', extra: 1 }), 'extra'],
      [JSON.stringify({ a: 'aws 1', b: 'gcp-1' }), 'a'],
      [JSON.stringify({ a: 'aws-1', b: 'gcp-1', reason: 'x'.repeat(201) }), 'reason'],
      [JSON.stringify({ a: 1, b: 'gcp-1' }), 'a'],
      [JSON.stringify([1, 2]), 'body'],
      ['{"a": "aws-1", ', undefined],
      ['a=aws-1&b=gcp-1', 'content-type', { 'content-type': 'application/x-www-form-urlencoded' }],
    ];
    for (const [body, field, headers] of cases) {
      const r = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token, body, ...(headers ? { headers } : {}) });
      assert.equal(r.status, 400, body);
      assert.equal(r.json.error.code, 'VNET_ERR_API_INVALID_REQUEST', body);
      if (field !== undefined) assert.equal(r.json.error.field, field, body);
    }
    const empty = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token });
    assert.equal(empty.status, 400);
    assert.equal(empty.json.error.field, 'body');
    for (const [q, field] of [['since=-1', 'since'], ['limit=abc', 'limit'], ['types=bogus', 'types'], ['since=1&since=2', 'since'], ['what=1', 'what']]) {
      const r = await get(`/api/v1/events?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.error.field, field, q);
    }
    const badPath = await get('/api/v1/hosts/%E0%A4%A');
    assert.equal(badPath.status, 400);
    const badMac = await get('/api/v1/vms/not-a-mac');
    assert.equal(badMac.status, 400);
    assert.equal(badMac.json.error.field, 'mac');
  });

  it('limits body size (413) and answers wrong methods with 405 and Allow', async () => {
    const big = JSON.stringify({ a: 'aws-1', b: 'gcp-1', reason: 'x'.repeat(10_000) });
    const r = await call(f.server.url, 'POST', '/api/v1/links', { token: f.token, body: big });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, 'VNET_ERR_API_BODY_TOO_LARGE');
    const m = await call(f.server.url, 'PUT', '/api/v1/links', { token: f.token, body: '{}' });
    assert.equal(m.status, 405);
    assert.match(String(m.headers.allow), /GET/);
    assert.match(String(m.headers.allow), /POST/);
  });

  it('pages events by seq and type', async () => {
    const all = (await get('/api/v1/events?since=0&limit=1000')).json;
    assert.equal(all.latestSeq, f.model.latestSeq());
    const seqs = all.events.map((e: { seq: number }) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a: number, b: number) => a - b));
    const page = (await get('/api/v1/events?since=3&limit=2')).json.events;
    assert.deepEqual(page.map((e: { seq: number }) => e.seq), [4, 5]);
    const hostsOnly = (await get('/api/v1/events?types=host-changed')).json.events;
    assert.equal(hostsOnly.length, 5);
  });

  it('serves the page shell and cytoscape without a token, with a restrictive CSP', async () => {
    const page = await call(f.server.url, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    assert.match(page.text, /\/vendor\/cytoscape\.min\.js/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
    const lib = await call(f.server.url, 'GET', '/vendor/cytoscape.min.js');
    assert.equal(lib.status, 200);
    assert.ok(lib.text.length > 100_000);
    assert.equal((await call(f.server.url, 'GET', '/app.js')).status, 200);
    // Revalidation: the same ETag gets a 304 without the body.
    const etag = String(lib.headers.etag);
    const again = await call(f.server.url, 'GET', '/vendor/cytoscape.min.js', { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
  });

  it('exposes Prometheus metrics without a token, with HTTP counters by route pattern', async () => {
    await get('/api/v1/hosts/hub');
    const r = await call(f.server.url, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.text, /vnet_api_http_requests_total\{method="GET",route="\/api\/v1\/hosts\/:id",status="200"\} \d+/);
    assert.match(r.text, /vnet_api_http_request_duration_seconds_bucket/);
    assert.match(r.text, /vnet_api_auth_failures_total\{transport="http"\} [1-9]/);
  });

  it('never crashes on random requests: every answer is a JSON error or a success, never 500', async () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const methods = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'FOO'];
    const paths = ['/api/v1/links', '/api/v1/links/a/b', '/api/v1/events', '/api/v1/hosts/%00', '/api/v1/vms/', '/api/v1', '/api', '/metrics', '/x/../api/v1/hosts'];
    const bodies = ['', '{}', 'null', '[]', '"x"', '{"a":{}}', '{"a":"aws-1","b":"gcp-2"}', '\u0000\u0001', '{"__proto__":{"a":1}}'];
    for (let i = 0; i < 200; i++) {
      const method = methods[rand(methods.length)]!;
      const path = paths[rand(paths.length)]! + (rand(3) === 0 ? `?since=${rand(50)}&limit=${rand(2000)}` : '');
      const body = method === 'GET' || method === 'HEAD' ? undefined : bodies[rand(bodies.length)];
      const r = await call(f.server.url, method, path, { token: f.token, ...(body !== undefined ? { body } : {}) });
      assert.ok(r.status < 500, `${method} ${path} ${body}: ${r.status} ${r.text}`);
    }
    // The fuzzing may have added a fast path aws-1–gcp-2; the server still answers normally.
    assert.equal((await get('/api/v1/hosts')).status, 200);
  });
});

describe('operator API and a failing model', () => {
  it('answers 500 with a generic error (details only in the log) and keeps serving', async () => {
    const full = buildFixtureModel();
    const model = new Proxy(full, {
      get(target, key) {
        if (key === 'listHosts') {
          return () => {
            throw new Error('disk on fire: /secret/path');
          };
        }
        const v: unknown = Reflect.get(target, key);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as ControllerModel;
    const tokens = new MemoryTokenStore();
    const { token } = createApiToken(tokens, 'admin', 0);
    const server = await startApiServer({ logger: silentLogger(), model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0 });
    try {
      const r = await call(server.url, 'GET', '/api/v1/hosts', { token });
      assert.equal(r.status, 500);
      assert.equal(r.json.error.code, 'VNET_ERR_INTERNAL');
      assert.doesNotMatch(r.text, /secret/);
      assert.equal((await call(server.url, 'GET', '/api/v1/vms', { token })).status, 200);
    } finally {
      await server.close();
    }
  });
});

describe('operator API optional commands', () => {
  it('starts a migration (202) when the model supports it, and answers 501 when it does not', async () => {
    const f = await startFixtureServer();
    try {
      const r = await call(f.server.url, 'POST', '/api/v1/migrations', { token: f.token, body: JSON.stringify({ vm: '02:00:00:00:00:01', to: 'gcp-1' }) });
      assert.equal(r.status, 202);
      assert.equal(r.json.state, 'running');
      assert.equal(r.json.from, 'aws-1');
      // By name, with a rule; refusals with their codes; cancel before the commit point, once.
      const byName = await call(f.server.url, 'POST', '/api/v1/migrations', { token: f.token, body: JSON.stringify({ vm: 'vm3', to: 'gcp-1', rule: 'xen' }) });
      assert.deepEqual([byName.status, byName.json.vm, byName.json.rule, byName.json.step], [202, '02:00:00:00:00:03', 'xen', 'prepare']);
      const refusals: Array<[unknown, number, string]> = [
        [{ vm: 'vm9', to: 'gcp-1' }, 404, 'VNET_ERR_MIGRATION_UNKNOWN_VM'],
        [{ vm: 'vm4', to: 'nowhere' }, 404, 'VNET_ERR_MIGRATION_UNKNOWN_HOST'],
        [{ vm: 'vm4', to: 'aws-2' }, 409, 'VNET_ERR_MIGRATION_SAME_HOST'],
        [{ vm: 'vm1', to: 'gcp-1' }, 409, 'VNET_ERR_MIGRATION_IN_PROGRESS'],
        [{ vm: 'vm4', to: 'gcp-2' }, 409, 'VNET_ERR_MIGRATION_HOST_DOWN'],
        [{ vm: 'vm4', to: 'gcp-1', rule: 'time-bound' }, 400, 'VNET_ERR_MIGRATION_REQUEST'],
        [{ vm: 'vm4', to: 'gcp-1', rule: 'fastest' }, 400, 'VNET_ERR_API_INVALID_REQUEST'],
      ];
      for (const [body, status, code] of refusals) {
        const x = await call(f.server.url, 'POST', '/api/v1/migrations', { token: f.token, body: JSON.stringify(body) });
        assert.deepEqual([x.status, x.json.error.code], [status, code], JSON.stringify(body));
      }
      const cancel = await call(f.server.url, 'POST', `/api/v1/migrations/${byName.json.id}/cancel`, { token: f.token });
      assert.deepEqual([cancel.status, cancel.json.state], [202, 'cancelled']);
      assert.equal((await call(f.server.url, 'POST', `/api/v1/migrations/${byName.json.id}/cancel`, { token: f.token })).status, 409);
      assert.equal((await call(f.server.url, 'POST', '/api/v1/migrations/zz/cancel', { token: f.token })).status, 404);
    } finally {
      await f.server.close();
    }

    const full = buildFixtureModel();
    // The same model without the optional command.
    const model = new Proxy(full, {
      get(target, key) {
        if (key === 'startMigration') return undefined;
        const v: unknown = Reflect.get(target, key);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as ControllerModel;
    const tokens = new MemoryTokenStore();
    const { token } = createApiToken(tokens, 'admin', 0);
    const server = await startApiServer({ logger: silentLogger(), model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0 });
    try {
      const r = await call(server.url, 'POST', '/api/v1/migrations', { token, body: JSON.stringify({ vm: '02:00:00:00:00:01', to: 'gcp-1' }) });
      assert.equal(r.status, 501);
      assert.equal(r.json.error.code, 'VNET_ERR_NOT_SUPPORTED');
    } finally {
      await server.close();
    }
  });
});

describe('changes and the store\'s durability', () => {
  it('a change is answered only once the store says its writes are durable (etcd); a read is not held', async () => {
    const tokens = new MemoryTokenStore();
    const { token } = createApiToken(tokens, 'admin', 0);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => { open = resolve; });
    let durable = false;
    void gate.then(() => { durable = true; });
    const server = await startApiServer({ logger: silentLogger(), model: buildFixtureModel(), tokens, registry: new Registry(), committed: () => (durable ? undefined : gate) }, { host: '127.0.0.1', port: 0 });
    try {
      assert.equal((await call(server.url, 'GET', '/api/v1/links', { token })).status, 200, 'a read is answered while writes are pending');
      let answered = false;
      const add = call(server.url, 'POST', '/api/v1/links', { token, body: JSON.stringify({ a: 'gcp-1', b: 'aws-2', reason: 'test' }) }).then((r) => { answered = true; return r; });
      // The change is made (the model has it) but not answered until the gate opens.
      await waitFor(async () => (await call(server.url, 'GET', '/api/v1/links/aws-2/gcp-1', { token })).status === 200, 'the link to exist');
      assert.equal(answered, false, 'not answered before the writes are durable');
      open();
      assert.equal((await add).status, 201);
    } finally {
      await server.close();
    }
  });
});

describe('operator API: request targets and cut-off bodies (connections injected into the real server)', () => {
  it('answers a target that is no path ("//", "//%ff", "//%20") 4xx, never 500, and does not read "//api/v1/hosts" as host "api"', async (t) => {
    const log = recordingLogger();
    const tokens = new MemoryTokenStore();
    const { token } = createApiToken(tokens, 'admin', Date.UTC(2026, 0, 1));
    const { value: api, servers } = await captureServers(() => startApiServer({ logger: log.logger, model: buildFixtureModel(), tokens, registry: new Registry() }, { port: 0 }));
    t.after(() => api.close());
    for (const target of ['//', '//%ff', '//%20?limit=-1', '//api/v1/hosts']) {
      const ex = await inject(servers[0]!, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`));
      assert.equal(ex.statuses.length, 1, target);
      assert.ok(ex.statuses[0]! >= 400 && ex.statuses[0]! < 500, `${target}: ${ex.statuses[0]}`);
    }
    const upgrade = await inject(servers[0]!, Buffer.from(`GET // HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`));
    assert.deepEqual(upgrade.statuses, [404], 'the event stream refuses it too, as no route of its own');
    assert.equal(log.errors(), 0, log.last());
  });

  it('takes a client that goes away in the middle of its body as a bad request, not an internal error', async (t) => {
    const log = recordingLogger('debug');
    const tokens = new MemoryTokenStore();
    const { token } = createApiToken(tokens, 'admin', Date.UTC(2026, 0, 1));
    const registry = new Registry();
    const { value: api, servers } = await captureServers(() => startApiServer({ logger: log.logger, model: buildFixtureModel(), tokens, registry }, { port: 0 }), { halfOpen: false });
    t.after(() => api.close());
    const ex = await inject(servers[0]!, Buffer.from(`POST /api/v1/links HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":`));
    assert.ok(ex.statuses.every((s) => s < 500), `answered ${ex.statuses.join(', ')}`);
    const counted = async (): Promise<string> => (await registry.getSingleMetricAsString('vnet_api_http_requests_total'));
    await waitFor(async () => /route="\/api\/v1\/links",status="400"/.test(await counted()), 'the request counted as a 400');
    assert.equal(log.errors(), 0, log.last());
  });
});
