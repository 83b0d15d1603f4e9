/**
 * The control channel's slots for connections not welcomed yet
 * (control-listener.ts, common/pending-slots.ts): idle connections are cut at
 * the deadline or evicted by newcomers, and a real daemon always gets in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { metricValue, startHarness, type Harness } from './fixtures/controller-harness.ts';
import { waitFor } from '../helpers/wait.ts';

const openFds = (): number => readdirSync('/proc/self/fd').length;

interface Flood {
  sockets: net.Socket[];
  closed(): number;
}

/** `count` idle connections to the control port, from 127.0.0.`first`… (`perSource` from each), saying nothing. */
async function flood(h: Harness, count: number, perSource: number, opts: { first?: number; tls?: boolean } = {}): Promise<Flood> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  for (let i = 0; i < count; i++) {
    const localAddress = `127.0.0.${(opts.first ?? 2) + Math.floor(i / perSource)}`;
    const tcp = net.connect({ host: '127.0.0.1', port: h.controller.controlPort, localAddress });
    // Who the controller is does not matter to a flood.
    const s: net.Socket = opts.tls === true ? tls.connect({ socket: tcp, rejectUnauthorized: false }) : tcp;
    tcp.on('error', () => undefined);
    s.on('error', () => undefined);
    s.once('close', () => { closed++; });
    sockets.push(s);
    await new Promise<void>((resolve) => {
      s.once(opts.tls === true ? 'secureConnect' : 'connect', () => resolve());
      s.once('close', () => resolve());
    });
  }
  return { sockets, closed: () => closed };
}

test('thousands of idle connections are closed at the deadline while a real daemon connects and is welcomed; the fds return to their baseline', async (t) => {
  const h = await startHarness(t, { helloTimeoutMs: 1500, maxPendingTotal: 4096 });
  const baseline = openFds();
  // 2,000 that never start TLS, and 200 that finish TLS but never upgrade: 40 per source, under every cap.
  const raw = await flood(h, 2000, 40);
  const secured = await flood(h, 200, 40, { first: 100, tls: true });
  assert.ok(openFds() >= baseline + 2 * 2200 - 10, 'the flood holds its sockets');
  const { agent } = h.daemon('h1');
  agent.start();
  await waitFor(() => agent.state === 'connected', 'the real daemon welcomed during the flood');
  assert.equal(agent.stats.connects, 1);
  await waitFor(() => raw.closed() === 2000 && secured.closed() === 200, 'every idle connection closed at the deadline', 30_000);
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'deadline' }), 2200);
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'evicted-total' }), 0);
  for (const s of [...raw.sockets, ...secured.sockets]) s.destroy();
  // What is left: the daemon's channel, both ends.
  await waitFor(() => openFds() <= baseline + 2, `fds back to the baseline (${baseline} + the daemon's 2)`);
  assert.equal(agent.state, 'connected');
});

test('over the caps a newcomer evicts a pending connection (its source\'s oldest, else a random one): a real daemon gets in at once', async (t) => {
  const h = await startHarness(t, { helloTimeoutMs: 60_000, maxPendingPerSource: 16, maxPendingTotal: 128 });
  // One source: all but its 16 newest are evicted as they come.
  const one = await flood(h, 1000, 1000, { first: 1 });
  await waitFor(() => one.closed() === 1000 - 16, 'the per-source cap holds');
  // Many sources, 10 each: the total cap holds, random ones go.
  const many = await flood(h, 1000, 10, { first: 2 });
  await waitFor(() => one.closed() + many.closed() === 2000 - 128, 'the total cap holds');
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'evicted-source' }), 1000 - 16);
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'evicted-total' }), 1000 - 128 + 16);
  // From the flooded source itself, long before any deadline.
  const { agent } = h.daemon('h1');
  agent.start();
  await waitFor(() => agent.state === 'connected', 'the real daemon welcomed');
  assert.equal(await metricValue(h.registry, 'vnet_control_pending_dropped_total', { reason: 'deadline' }), 0);
  for (const s of [...one.sockets, ...many.sockets]) s.destroy();
});
