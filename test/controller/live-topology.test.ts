/**
 * The topology the operator sees follows the traffic: over the real control
 * channel and API, the announced topology's edge rates change every update
 * period without a new announcement, and `vnet ctl matrix` shows the frame
 * rates of real traffic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/common/logger.ts';
import { ctlCommand, type CtlIo } from '../../src/cli/ctl-command.ts';
import type { TopologyView } from '../../src/controller/api-views.ts';
import { startApiServer } from '../../src/controller/api/api-server.ts';
import { createApiToken, MemoryTokenStore } from '../../src/controller/api/token-store.ts';
import { connectedPair, DEPLOYMENT_YAML, startHarness, testDeployment } from './fixtures/controller-harness.ts';
import { waitFor } from '../helpers/wait.ts';

test('GET /api/v1/topology shows the current smoothed rates beside the announced structure; ctl matrix shows frames/s', async (t) => {
  const yaml = DEPLOYMENT_YAML.replace('  updatePeriodMs: 100\n', '  updatePeriodMs: 100\n  smoothingIntervalMs: 200\n  fastPathBudget: 0\n');
  const h = await startHarness(t, { deployment: testDeployment(yaml) });
  const { a, b } = await connectedPair(h);
  const tokens = new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', Date.now());
  const server = await startApiServer({ logger: silentLogger(), model: h.controller.model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const topology = async (): Promise<TopologyView> => {
    const res = await fetch(`${server.url}/api/v1/topology`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    return (await res.json()) as TopologyView;
  };

  // v1 ↔ v2, 70 frames each way per report.
  a.daemon.steady = [{ src: 0x020000000001, dst: 0x020000000002, frames: 70, bytes: 100_000 }];
  b.daemon.steady = [{ src: 0x020000000002, dst: 0x020000000001, frames: 70, bytes: 100_000 }];
  const announced = await waitFor(async () => { const v = await topology(); return v.detectedAt !== null && v.edges.length === 1 ? v : undefined; }, 'a topology announced', 10_000);
  const before = announced.edges[0]!.bytesPerSec;

  // Four times the traffic, the same shape: no new announcement, and the edge's rate follows.
  a.daemon.steady = [{ src: 0x020000000001, dst: 0x020000000002, frames: 280, bytes: 400_000 }];
  b.daemon.steady = [{ src: 0x020000000002, dst: 0x020000000001, frames: 280, bytes: 400_000 }];
  const later = await waitFor(async () => { const v = await topology(); return v.edges[0]!.bytesPerSec > 2 * before ? v : undefined; }, 'the edge rate follows the traffic', 10_000);
  assert.equal(later.detectedAt, announced.detectedAt, 'the same announcement');
  assert.equal(later.class, announced.class);
  assert.ok(later.weightsAt !== null && later.weightsAt > announced.detectedAt!, 'weights newer than the announcement');
  assert.equal(h.controller.model.listEvents({ types: ['topology-changed'] }).events.length, 1);

  // `vnet ctl matrix`: real traffic has a frame rate.
  const out: string[] = [];
  const io: CtlIo = {
    out: (x) => out.push(x), err: (x) => out.push(x), env: {}, now: Date.now, setExitCode: (c) => assert.equal(c, 0),
    exit: (c) => { throw new Error(`exit ${c}`); },
    followSignal: () => ({ signal: new AbortController().signal, dispose: () => {} }),
  };
  await ctlCommand(io).parseAsync(['--controller', server.url, '--token', token, 'matrix'], { from: 'user' });
  const row = out.join('\n').split('\n').find((l) => /^v1 → v2/.test(l.trim()));
  assert.ok(row !== undefined, out.join('\n'));
  // FLOW, HOSTS, RATE, FRAMES/S, bar: columns two or more spaces apart.
  const frames = Number(row.trim().split(/\s{2,}/)[3]);
  assert.ok(frames > 0, `FRAMES/S in: ${row}`);
});
