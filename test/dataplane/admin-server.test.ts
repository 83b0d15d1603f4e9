import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { startAdminServer } from '../../src/dataplane/admin-server.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { adminRequest } from '../helpers/admin-client.ts';

const logger = silentLogger();

test('bad requests on the admin interface are answered with a 4xx naming what was wrong, never a 500', async (t) => {
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => daemon.close());
  const admin = await startAdminServer({ logger, daemon }, { host: '127.0.0.1', port: 0 });
  t.after(() => admin.close());
  const cases: Array<[string, string, unknown, number, string]> = [
    ['DELETE', '/links/%zz', undefined, 400, 'VNET_ERR_BAD_REQUEST'],
    ['DELETE', '/links/nobody', undefined, 404, 'VNET_ERR_NOT_FOUND'],
    ['PUT', '/rules', [{ id: 'r', priority: 1, src: 'any', dst: 'not-a-mac', action: 'drop' }], 400, ''],
    ['GET', '/nothing-here', undefined, 404, 'VNET_ERR_NOT_FOUND'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await adminRequest(admin.url, method, path, body);
    assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.json)}`);
    if (code !== '') assert.equal((r.json as { error?: { code?: string } }).error?.code, code, `${method} ${path}`);
  }
  // The daemon still answers.
  assert.equal((await adminRequest(admin.url, 'GET', '/status')).status, 200);
});
