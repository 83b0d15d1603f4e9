/** The operator API's slots for connections without a request yet (api-server.ts, common/pending-slots.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { startApiServer, type ApiServerInit } from '../../../src/controller/api/api-server.ts';
import { MemoryTokenStore, createApiToken } from '../../../src/controller/api/token-store.ts';
import { buildFixtureModel, FIXTURE_NOW } from './api-fixture.ts';
import { flood, openFds } from '../../helpers/connection-flood.ts';
import { waitFor } from '../../helpers/wait.ts';

async function start(t: { after(fn: () => Promise<void>): void }, init: Partial<ApiServerInit>): Promise<{ port: number; url: string; token: string; pending: () => { size: number; dropped: Record<string, number> } }> {
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', FIXTURE_NOW);
  const server = await startApiServer({ logger: silentLogger(), model: buildFixtureModel(), tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0, ...init });
  t.after(() => server.close());
  return { port: server.port, url: server.url, token, pending: () => ({ size: server.pending.size, dropped: server.pending.stats.dropped }) };
}

test('idle and slow-header API connections are closed at the deadline while an operator is served; the fds return to their baseline', async (t) => {
  const api = await start(t, { pendingDeadlineMs: 1000, maxPendingPerSource: 64, maxPendingTotal: 4096 });
  const baseline = openFds();
  const idle = await flood(api.port, 1000, 40);
  // Half a request, never finished (slowloris).
  const slow = await flood(api.port, 200, 40, { first: 100, say: 'GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\n' });
  const res = await fetch(`${api.url}/api/v1/hosts`, { headers: { authorization: `Bearer ${api.token}`, connection: 'close' } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  await waitFor(() => idle.closed() === 1000 && slow.closed() === 200, 'every pending connection closed at the deadline', 30_000);
  assert.equal(api.pending().dropped.deadline, 1200);
  idle.destroy();
  slow.destroy();
  await waitFor(() => openFds() <= baseline, `fds back to the baseline (${baseline})`);
});

test('over the caps a newcomer evicts a pending API connection; an operator from the flooded address is served at once', async (t) => {
  const api = await start(t, { pendingDeadlineMs: 60_000, maxPendingPerSource: 8, maxPendingTotal: 64 });
  const one = await flood(api.port, 300, 300, { first: 1 });
  const many = await flood(api.port, 300, 5, { first: 2 });
  await waitFor(() => api.pending().size === 64, 'the total cap holds');
  assert.equal(api.pending().dropped['evicted-source'], 300 - 8);
  assert.equal(api.pending().dropped['evicted-total'], 300 + 8 - 64);
  const res = await fetch(`${api.url}/api/v1/hosts`, { headers: { authorization: `Bearer ${api.token}`, connection: 'close' } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  assert.equal(api.pending().dropped.deadline, 0);
  one.destroy();
  many.destroy();
});
