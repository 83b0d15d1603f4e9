/**
 * Auto-migration from placement advice, end to end with real migration
 * agents (root): a hub and three spokes as `vnet daemon` processes, the
 * controller in this process with `policy.autoMigrate`. c1 is in a site of
 * its own, 30 ms of declared WAN from the others (the tunnels stay on
 * loopback: the latency is what the advisor scores). A (a namespace VM with
 * a model guest) and Q (idle) run on c1; P on c3 pings A every 10 ms and
 * sends it a checked TCP stream. The traffic × latency of A's conversation
 * makes the advice propose moving A next to P (c1 holds two VMs, so the
 * advisor's capacity lets c3 take a second; P cannot go to the full c1);
 * the coordinator carries the move out on its own (requested by
 * auto-migrate), A ends on the advised host, no ping is lost and the stream
 * stays intact; nothing else is moved.
 *
 * Bounded waits only; no wall-clock assertions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStream } from '../../bench/cutover/probes.ts';
import type { PlacementMove } from '../../src/controller/api-views.ts';
import { startNetnsOverlay } from '../helpers/netns-overlay.ts';
import { assertMovedIntact, EchoLedger, nicOf, Pinger } from '../helpers/migration-probes.ts';
import { waitFor } from '../helpers/wait.ts';

test('placement advice under policy.autoMigrate moves a VM across the WAN next to its partner: it ends on the advised host, nothing lost', { timeout: 300_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    sites: { c1: 'far' },
    vms: [{ host: 'c1', guest: { profile: 'idle', memoryMiB: 16, diskMiB: 4 } }, { host: 'c3' }, { host: 'c1' }],
    policy: '  updatePeriodMs: 200\n  smoothingIntervalMs: 400\n  autoMigrate: true\n  autoMigrateMaxConcurrent: 1',
    tools: ['ping'],
  });
  const { model } = o;
  const [a, p] = o.vms;
  await waitFor(() => model.getVm(a!.mac)?.host === 'c1' && model.getVm(p!.mac)?.host === 'c3' && model.getVm(o.vms[2]!.mac)?.host === 'c1', 'the controller sees A and Q on c1, P on c3', 30_000);
  assert.deepEqual(model.listMigrations(), [], 'no migration before the traffic');
  // The probes are in place before the first frame between A and P: the move that traffic causes happens under them.
  const before = await nicOf(o, 0);
  const echoes = await EchoLedger.open(o, 1, 0);
  const ping = new Pinger(o, 1, a!.ip);
  await ping.more(3, 'P reaches A before the move');
  const stream = await startStream(a!.ns, p!.ns, a!.ip, 5431, undefined, t);

  const isA = (vm: string): boolean => vm === a!.mac || vm === a!.name;
  const proposed = await waitFor(() => model.listDecisions({}).find((d) => d.kind === 'migration-proposed'), 'a placement proposal', 60_000);
  const moves = (proposed.detail as { moves: PlacementMove[] }).moves;
  const advised = moves.find((m) => isA(m.vm));
  assert.ok(advised !== undefined && advised.from === 'c1', `the advice moves A off c1: ${JSON.stringify(moves)}`);
  assert.notEqual(advised.to, 'c1');

  const run = await waitFor(() => model.listMigrations().find((m) => m.vm === 'vm0' || m.vm === a!.mac), 'the auto-migration started', 60_000);
  assert.equal(run.requestedBy, 'auto-migrate');
  assert.equal(run.to, advised.to, 'the coordinator moves A where the advice said');
  const done = await waitFor(() => {
    const m = model.getMigration(run.id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the auto-migration over', 120_000);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(done.cutover?.lost, 0, 'no frame lost at the cutover');
  t.diagnostic(`advised ${advised.from}→${advised.to}; cutover: ${JSON.stringify(done.cutover)}`);
  assert.equal(model.getVm(a!.mac)?.host, advised.to, 'A on the advised host');

  await assertMovedIntact(t, o, { ping, echoes, stream, before }, { vm: 0, from: 'c1', to: advised.to });
  assert.equal(model.listMigrations().length, 1, 'one migration: P stays, A is not moved again (cool-down)');
  assert.equal(model.getVm(p!.mac)?.host, 'c3');
  assert.equal(model.getVm(o.vms[2]!.mac)?.host, 'c1');
});
