import { test, type TestContext } from 'node:test';
import type { Server } from 'node:http';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { startApiServer } from '../../src/controller/api/api-server.ts';
import { MemoryTokenStore, createApiToken } from '../../src/controller/api/token-store.ts';
import { startAdminServer } from '../../src/dataplane/admin-server.ts';
import { generateAdminToken } from '../../src/dataplane/admin-access.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { FIXTURE_NOW, buildFixtureModel } from '../controller/api/api-fixture.ts';
import { fuzz, showBytes } from './fuzz-kit.ts';
import { captureServers, inject, recordingLogger } from '../helpers/http-inject.ts';
import { randomRequest, type RouteSpec } from './http-requests.ts';

/**
 * The operator API (src/controller/api) and the daemon's admin interface
 * (src/dataplane/admin-server.ts): requests built from each server's routes
 * — methods, paths with bad percent-encoding and traversal, queries,
 * headers, bodies mutated from valid ones, chunked and mis-framed — some
 * then mutated as bytes, each sent on a connection injected into the real
 * server in process. Oracle: no response is a 500, nothing is logged at
 * error level (a handler's unexpected failure), every connection ends (no
 * hang), and no exception escapes (the test process would die).
 */

const HOSTS = ['hub', 'aws-1', 'aws-2', 'gcp-1', 'gcp-2'];
const MACS = ['02:00:00:00:00:01', '02:00:00:00:00:05', '02:00:00:00:00:99'];
const P = '/api/v1';

const apiRoutes: RouteSpec[] = [
  { method: 'GET', path: P },
  { method: 'GET', path: `${P}/whoami` },
  { method: 'GET', path: `${P}/overview` },
  { method: 'GET', path: `${P}/hosts` },
  { method: 'GET', path: `${P}/hosts/:id`, params: { id: HOSTS } },
  { method: 'GET', path: `${P}/hosts/:id/rules`, params: { id: HOSTS } },
  { method: 'GET', path: `${P}/vms` },
  { method: 'GET', path: `${P}/vms/:mac`, params: { mac: MACS } },
  { method: 'GET', path: `${P}/links` },
  { method: 'GET', path: `${P}/links/:a/:b`, params: { a: HOSTS, b: HOSTS } },
  { method: 'POST', path: `${P}/links`, body: { a: 'aws-2', b: 'gcp-1', reason: 'fuzz' } },
  { method: 'DELETE', path: `${P}/links/:a/:b`, params: { a: HOSTS, b: HOSTS } },
  { method: 'POST', path: `${P}/join-tokens`, body: { host: 'new-1', ttlSeconds: 600, singleUse: true } },
  { method: 'GET', path: `${P}/matrix` },
  { method: 'GET', path: `${P}/topology` },
  { method: 'GET', path: `${P}/migrations` },
  { method: 'GET', path: `${P}/migrations/:id`, params: { id: ['m-1', '1'] } },
  { method: 'POST', path: `${P}/migrations`, body: { vm: '02:00:00:00:00:01', to: 'gcp-1', rule: 'time-bound', deadlineS: 30 } },
  { method: 'POST', path: `${P}/migrations/:id/cancel`, params: { id: ['m-1', '1'] } },
  { method: 'GET', path: `${P}/events`, query: ['?since=0', '?limit=10', '?types=topology-changed', '?since=5&limit=1000'] },
  { method: 'GET', path: `${P}/placement` },
  { method: 'GET', path: `${P}/decisions`, query: ['?limit=5'] },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/' },
  { method: 'GET', path: '/app.js' },
  { method: 'GET', path: '/vendor/:file', params: { file: ['cytoscape.min.js'] } },
];

const adminRoutes: RouteSpec[] = [
  { method: 'GET', path: '/status' },
  { method: 'GET', path: '/ports' },
  { method: 'GET', path: '/links' },
  { method: 'GET', path: '/rules' },
  { method: 'GET', path: '/fdb' },
  { method: 'GET', path: '/counters' },
  { method: 'POST', path: '/counters/snapshot' },
  { method: 'PUT', path: '/rules', body: [{ id: 'r1', priority: 10, src: 'any', dst: '02:00:00:00:00:02', action: 'drop' }, { id: 'r2', priority: 5, src: '!02:00:00:00:00:03', dst: 'any', action: { link: 'h2' } }] },
  // Links go to the in-memory network: nothing is dialled on a real address.
  { method: 'POST', path: '/links', body: { peer: 'h2', host: 'h2', port: 7000, dial: true, reason: 'fuzz' } },
  { method: 'DELETE', path: '/links/:peer', params: { peer: ['h2', 'h3'] } },
];

async function run(t: TestContext, name: string, server: Server, routes: RouteSpec[], auth: string[], errors: () => number, last: () => string): Promise<void> {
  await fuzz(t, {
    name,
    generate: (rand) => randomRequest(rand, routes, auth),
    async run(raw) {
      const before = errors();
      const ex = await inject(server, raw);
      // 500 is the answer to a failure of ours; 501 (a command the model does not have) is typed and intended.
      const bad = ex.statuses.filter((s) => s === 500);
      assert.deepEqual(bad, [], `answered ${bad.join(', ')}`);
      assert.equal(errors(), before, `logged an error: ${last()}`);
      if (ex.stalled) return `stalled${ex.statuses.map((s) => `+${s}`).join('')}`;
      return ex.statuses.length === 0 ? 'closed' : ex.statuses.map(String).join('+');
    },
    show: (raw) => `${showBytes(raw, 600)} (${JSON.stringify(raw.subarray(0, 300).toString('latin1'))})`,
  });
}

test('fuzz: operator API — requests injected into the real server', async (t) => {
  const log = recordingLogger();
  const model = buildFixtureModel();
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'fuzz', FIXTURE_NOW);
  const { value: api, servers } = await captureServers(() =>
    startApiServer({ logger: log.logger, model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0 }),
  );
  t.after(() => api.close());
  assert.equal(servers.length, 1);
  const auth = [`Bearer ${token}`, `Bearer ${token}`, `Bearer ${token}`, `bearer  ${token} `, 'Bearer nope', 'Bearer', `Basic ${token}`, `Bearer ${token}x`, `Bearer ${'t'.repeat(5000)}`];
  await run(t, 'operator-api', servers[0]!, apiRoutes, auth, log.errors, log.last);
});

test('fuzz: daemon admin interface — requests injected into the real server', async (t) => {
  const log = recordingLogger();
  const logger = silentLogger();
  const network = new MemoryNetwork();
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  // Loopback HTTP with its bearer token (a Unix socket's requests take the same handler).
  const token = generateAdminToken();
  const { value: admin, servers } = await captureServers(() => startAdminServer({ logger: log.logger, daemon }, { host: '127.0.0.1', port: 0, token }));
  t.after(() => admin.close());
  assert.equal(servers.length, 1);
  const auth = [`Bearer ${token}`, `Bearer ${token}`, `Bearer ${token}`, `Bearer ${token}`, 'Bearer nope', `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, `Bearer ${'t'.repeat(5000)}`];
  await run(t, 'admin-interface', servers[0]!, adminRoutes, auth, log.errors, log.last);
});
