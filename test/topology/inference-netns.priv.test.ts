/**
 * Topology inference on real applications (root), at the deployment's default
 * inference parameters: six VMs as network namespaces behind `vnet daemon`
 * processes (TAP devices, TLS tunnels on loopback), the controller in this
 * process. What a new user saw go wrong, as it must now go:
 *
 *   - pings along a path, held until the controller calls them a bus, then a
 *     ring of six iperf3 streams: the ring is announced (not stuck on bus);
 *   - the ring replaced by a brief mix, then by a clean star: the star is
 *     announced, and nothing else after it started (not stuck on irregular).
 *
 * Time is counted in the controller's update periods (its `traffic-updated`
 * events), never in wall-clock figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { EventView } from '../../src/controller/api-events.ts';
import { DEFAULT_SMOOTHING_INTERVAL_MS, DEFAULT_UPDATE_PERIOD_MS } from '../../src/topology/vttif-defaults.ts';
import { startNetnsOverlay } from '../helpers/netns-overlay.ts';
import { waitFor } from '../helpers/wait.ts';

const VMS = 6;
const WINDOW = DEFAULT_SMOOTHING_INTERVAL_MS / DEFAULT_UPDATE_PERIOD_MS;
/** The bound in update periods: the benchmark's goal is 3 smoothing windows; a loaded machine gets one more. */
const BOUND = 4 * WINDOW;

test('real applications at the default parameters: a ring after a path of pings, a star after a brief mix', { timeout: 300_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    vms: Array.from({ length: VMS }, (_, i) => ({ host: `c${1 + (i % 3)}` })),
    policy: '',
    tools: ['ping', 'iperf3'],
  });
  let periods = 0;
  const announced: Array<{ cls: string; period: number }> = [];
  const unsubscribe = o.model.subscribe((e: EventView) => {
    if (e.type === 'traffic-updated') periods++;
    if (e.type === 'topology-changed') announced.push({ cls: e.payload.topology.class, period: periods });
  });
  t.after(unsubscribe);
  const since = (p: number): string[] => announced.filter((a) => a.period >= p).map((a) => a.cls);

  // Every VM serves iperf3 on five ports (a star's centre takes five streams at once).
  for (let i = 0; i < VMS; i++) for (let k = 0; k < 5; k++) o.spawn(i, ['iperf3', '-s', '-p', String(5201 + k), '-B', o.vms[i]!.ip]);
  for (let i = 0; i < VMS; i++) {
    await waitFor(async () => ((await o.exec(i, ['ss', '-ltn'])).stdout.match(/:520[1-5]\b/g) ?? []).length === 5, `iperf3 servers in vm${i}`, 15_000);
  }
  const streams = (edges: Array<[number, number]>): ChildProcess[] => {
    const port = new Map<number, number>();
    return edges.map(([a, b]) => {
      const p = 5201 + (port.get(b) ?? 0);
      port.set(b, (port.get(b) ?? 0) + 1);
      return o.spawn(a, ['iperf3', '-c', o.vms[b]!.ip, '-p', String(p), '-b', '2M', '-t', '600']);
    });
  };
  const stop = async (procs: ChildProcess[]): Promise<void> => {
    const exits = procs.filter((p) => p.exitCode === null && p.signalCode === null).map((p) => new Promise((r) => p.once('exit', r)));
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(exits);
  };
  const ring: Array<[number, number]> = Array.from({ length: VMS }, (_, i) => [i, (i + 1) % VMS]);

  // 1. Pings along a path v0 — v1 — … — v5, held until the controller announces a bus.
  const pings = Array.from({ length: VMS - 1 }, (_, i) => o.spawn(i, ['ping', '-q', '-i', '0.2', o.vms[i + 1]!.ip]));
  await waitFor(() => announced.at(-1)?.cls === 'bus', `the path of pings announced as a bus (announced: ${announced.map((a) => a.cls).join(', ')})`, 120_000);
  await stop(pings);

  // 2. A ring of six iperf3 streams: announced as a ring, and nothing else on the way.
  const ringStart = periods;
  const ringStreams = streams(ring);
  await waitFor(() => announced.at(-1)?.cls === 'ring' || periods - ringStart > BOUND, 'the ring announced, or the bound passed', 120_000);
  t.diagnostic(`ring announced ${announced.at(-1)!.period - ringStart} update periods after it started`);
  assert.deepEqual(since(ringStart), ['ring'], `announcements since the ring started: ${since(ringStart).join(', ') || 'none'} (within ${periods - ringStart} periods)`);
  assert.equal(o.model.getTopology().edges.length, VMS);

  // 3. A brief mix (the ring plus its three chords, two periods), then a clean star on v0.
  await stop(ringStreams);
  const mix = streams([...ring, [0, 3], [1, 4], [2, 5]]);
  const mixStart = periods;
  await waitFor(() => periods - mixStart >= 2, 'two periods of the mix', 30_000);
  await stop(mix);
  const starStart = periods;
  streams(Array.from({ length: VMS - 1 }, (_, i): [number, number] => [i + 1, 0]));
  await waitFor(() => announced.at(-1)?.cls === 'star' || periods - starStart > BOUND, 'the star announced, or the bound passed', 120_000);
  t.diagnostic(`star announced ${announced.at(-1)!.period - starStart} update periods after it started`);
  assert.deepEqual(since(starStart), ['star'], `announcements since the star started: ${since(starStart).join(', ') || 'none'}`);
  assert.equal(o.model.getTopology().centre, o.vms[0]!.mac);
});
