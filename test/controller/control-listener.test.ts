/**
 * The control channel's slots for connections not welcomed yet
 * (control-listener.ts, common/pending-slots.ts): idle connections are cut at
 * the deadline or evicted by newcomers, and a real daemon always gets in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricValue, startHarness } from './fixtures/controller-harness.ts';
import { flood, openFds } from '../helpers/connection-flood.ts';
import { waitFor } from '../helpers/wait.ts';

test('thousands of idle connections are closed at the deadline while a real daemon connects and is welcomed; the fds return to their baseline', async (t) => {
  const h = await startHarness(t, { helloTimeoutMs: 1500, maxPendingTotal: 4096 });
  const baseline = openFds();
  // 2,000 that never start TLS, and 200 that finish TLS but never upgrade: 40 per source, under every cap.
  const flooding = Promise.all([flood(h.controller.controlPort, 2000, 40), flood(h.controller.controlPort, 200, 40, { first: 100, tls: true })]);
  const { agent } = h.daemon('h1');
  agent.start();
  await waitFor(() => agent.state === 'connected', 'the real daemon welcomed during the flood');
  assert.equal(agent.stats.connects, 1);
  const [raw, secured] = await flooding;
  await waitFor(() => raw.closed() === 2000 && secured.closed() === 200, 'every idle connection closed at the deadline', 30_000);
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'deadline' }), 2200);
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'evicted-total' }), 0);
  raw.destroy();
  secured.destroy();
  // What is left: the daemon's channel, both ends.
  await waitFor(() => openFds() <= baseline + 2, `fds back to the baseline (${baseline} + the daemon's 2)`);
  assert.equal(agent.state, 'connected');
});

test('over the caps a newcomer evicts a pending connection (its source\'s oldest, else a random one): a real daemon gets in at once', async (t) => {
  const h = await startHarness(t, { helloTimeoutMs: 60_000, maxPendingPerSource: 16, maxPendingTotal: 128 });
  // One source: all but its 16 newest are evicted as they come.
  const one = await flood(h.controller.controlPort, 1000, 1000, { first: 1 });
  await waitFor(() => one.closed() === 1000 - 16, 'the per-source cap holds');
  // Many sources, 10 each: the total cap holds, random ones go.
  const many = await flood(h.controller.controlPort, 1000, 10, { first: 2 });
  await waitFor(() => one.closed() + many.closed() === 2000 - 128, 'the total cap holds');
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'evicted-source' }), 1000 - 16);
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'evicted-total' }), 1000 - 128 + 16);
  // From the flooded source itself, long before any deadline.
  const { agent } = h.daemon('h1');
  agent.start();
  await waitFor(() => agent.state === 'connected', 'the real daemon welcomed');
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'deadline' }), 0);
  one.destroy();
  many.destroy();
});
