import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { startAdminServer } from '../../src/dataplane/admin-server.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { defaultAdminSocket, generateAdminToken, prepareAdminAccess } from '../../src/dataplane/admin-access.ts';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureServers, inject, recordingLogger } from '../helpers/http-inject.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

test('bad requests on the admin interface are answered with a 4xx naming what was wrong, never a 500', async (t) => {
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  const token = generateAdminToken();
  const admin = await startAdminServer({ logger, daemon }, { host: '127.0.0.1', port: 0, token });
  t.after(() => admin.close());
  const target = { url: admin.url, token };
  const cases: Array<[string, string, unknown, number, string]> = [
    ['DELETE', '/links/%zz', undefined, 400, 'VNET_ERR_BAD_REQUEST'],
    ['DELETE', '/links/nobody', undefined, 404, 'VNET_ERR_NOT_FOUND'],
    ['PUT', '/rules', [{ id: 'r', priority: 1, src: 'any', dst: 'not-a-mac', action: 'drop' }], 400, ''],
    ['GET', '/nothing-here', undefined, 404, 'VNET_ERR_NOT_FOUND'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await adminRequest(target, method, path, body);
    assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.json)}`);
    if (code !== '') assert.equal((r.json as { error?: { code?: string } }).error?.code, code, `${method} ${path}`);
  }
  // The daemon still answers.
  assert.equal((await adminRequest(target, 'GET', '/status')).status, 200);
});

test('HTTP admin requests without the bearer token, or with another, are refused 401 and change nothing', async (t) => {
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  const token = generateAdminToken();
  const admin = await startAdminServer({ logger, daemon }, { host: '127.0.0.1', port: 0, token });
  t.after(() => admin.close());
  const drop = [{ id: 'evil', priority: 1000, src: 'any', dst: 'any', action: 'drop' }];
  for (const attempt of [undefined, 'wrong', token.slice(0, -1), `${token}x`]) {
    const put = await adminRequest({ url: admin.url, token: attempt }, 'PUT', '/rules', drop);
    assert.equal(put.status, 401, `token ${String(attempt)}`);
    assert.equal((put.json as { error: { code: string } }).error.code, 'VNET_ERR_ADMIN_UNAUTHORIZED');
    assert.equal((await adminRequest({ url: admin.url, token: attempt }, 'GET', '/status')).status, 401);
    assert.equal((await adminRequest({ url: admin.url, token: attempt }, 'POST', '/links', { peer: 'x', host: '192.0.2.1', port: 7000 })).status, 401);
  }
  assert.equal(daemon.table.rules().filter((r) => r.origin === 'admin').length, 0);
  const ok = await adminRequest({ url: admin.url, token }, 'PUT', '/rules', drop);
  assert.equal(ok.status, 200);
  assert.equal(daemon.table.rules().filter((r) => r.origin === 'admin').length, 1);
});

test('the admin socket is created owner-only (0600) in a 0700 directory, and works for its owner', async (t) => {
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  const run = mkdtempSync(join(tmpdir(), 'vnet-admin-'));
  t.after(() => rmSync(run, { recursive: true, force: true }));
  chmodSync(run, 0o755);
  const { listen } = prepareAdminAccess({ socket: defaultAdminSocket(run, 'hub') }, { runDir: run, hostId: 'hub' });
  const admin = await startAdminServer({ logger, daemon }, listen);
  t.after(() => admin.close());
  assert.equal(statSync(defaultAdminSocket(run, 'hub')).mode & 0o777, 0o600);
  assert.equal(statSync(join(run, 'hub')).mode & 0o777, 0o700);
  assert.equal(admin.url, `unix:${defaultAdminSocket(run, 'hub')}`);
  assert.equal((await adminRequest(admin.url, 'GET', '/status')).status, 200);
});

test('a second daemon does not take over a socket that a running daemon serves; a socket nobody serves is replaced', async (t) => {
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  const run = mkdtempSync(join(tmpdir(), 'vnet-admin-'));
  t.after(() => rmSync(run, { recursive: true, force: true }));
  const socket = join(run, 'admin.sock');
  const first = await startAdminServer({ logger, daemon }, { socket });
  await assert.rejects(startAdminServer({ logger, daemon }, { socket }), { code: 'VNET_ERR_ADMIN_LISTEN', message: /another process is serving it/ });
  assert.equal((await adminRequest(first.url, 'GET', '/status')).status, 200, 'the first one still serves');
  await first.close();
  writeFileSync(socket, '');
  const second = await startAdminServer({ logger, daemon }, { socket });
  t.after(() => second.close());
  assert.equal((await adminRequest(second.url, 'GET', '/status')).status, 200);
});

test('a request target that is no path, and a client gone in the middle of its body, are bad requests, never a 500 or an error logged', async (t) => {
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  const log = recordingLogger('debug');
  const token = generateAdminToken();
  const auth = `Authorization: Bearer ${token}\r\n`;
  // One server that answers what it parsed after the client half-closes, one that aborts (as with a client gone).
  const answering = await captureServers(() => startAdminServer({ logger: log.logger, daemon }, { host: '127.0.0.1', port: 0, token }));
  t.after(() => answering.value.close());
  const aborting = await captureServers(() => startAdminServer({ logger: log.logger, daemon }, { host: '127.0.0.1', port: 0, token }), { halfOpen: false });
  t.after(() => aborting.value.close());
  for (const target of ['//', '//%ff', '//%20']) {
    const ex = await inject(answering.servers[0]!, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`));
    assert.deepEqual(ex.statuses, [404], target);
  }
  await inject(aborting.servers[0]!, Buffer.from(`PUT /rules HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"id":`));
  await waitFor(() => log.lines.some((l) => l.includes('request body could not be read')), 'the cut-off body refused as a bad request');
  assert.equal(log.errors(), 0, log.last());
});
