/**
 * A scheduling policy's decision carried out as a real migration (root): a
 * hub and three spokes as `vnet daemon` processes in three sites (eu: c1,
 * us: c2, lab: the hub and c3; 30 ms of declared WAN between any two — the
 * tunnels stay on loopback, the latency is what the policy scores), the
 * controller in this process under `scheduler: follow-the-sun` with client
 * weights from the file (Europe's clients 0h–11h UTC, America's 12h–23h)
 * and `policy.autoMigrate`. The policy's clock starts at 15:00 UTC
 * (`scheduler.clock.startAt`), whatever the machine's time, so the decision
 * is known in advance.
 *
 * Two services have their primary on c1 (eu) while the clients are in us:
 *   - `api`'s primary A, a namespace VM with a small model guest: the move
 *     to c2 gains ~30 ms for a cost of about a second of migration; the
 *     scheduler proposes it, auto-migrate hands it to the coordinator, the
 *     agents move the VM; A ends on c2, P's ping from c3 loses nothing and
 *     P's checked TCP stream to A stays intact;
 *   - `db`'s primary B, declared 64 GiB of memory and 1 TB of disk: the
 *     engine's estimate over the 100 Mbit/s path is hours, its cost far above
 *     the gain; the move is refused, B stays on c1, and a `no-change`
 *     decision says why.
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

const hours = (on: (h: number) => boolean): string => `[${Array.from({ length: 24 }, (_, h) => (on(h) ? 1 : 0)).join(', ')}]`;

const SCHEDULER = [
  '  policy: follow-the-sun',
  '  threshold: 5',
  '  intervalMs: 1000',
  '  clock: { startAt: "2026-12-07T15:00:00Z" }',
  '  resources:',
  '    vms:',
  '      vm0: { cpu: 1, memoryMiB: 16, diskGiB: 0, profile: idle }',
  '      vm2: { cpu: 8, memoryMiB: 65536, diskGiB: 1000, profile: tpc-w }',
  '  followTheSun:',
  '    services: [{ name: api, primary: vm0 }, { name: db, primary: vm2 }]',
  '    clients:',
  `      eu: ${hours((h) => h < 12)}`,
  `      us: ${hours((h) => h >= 12)}`,
].join('\n');

test('follow the sun under autoMigrate: the policy\'s move is a live migration to the host it chose, nothing lost; a move costing more than it gains is refused', { timeout: 300_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    sites: { c1: 'eu', c2: 'us' },
    vms: [{ host: 'c1', guest: { profile: 'idle', memoryMiB: 16, diskMiB: 4 } }, { host: 'c3' }, { host: 'c1' }],
    policy: '  updatePeriodMs: 200\n  smoothingIntervalMs: 400\n  autoMigrate: true\n  autoMigrateMaxConcurrent: 1',
    scheduler: SCHEDULER,
    tools: ['ping'],
  });
  const { model } = o;
  const [a, p, b] = o.vms;
  await waitFor(() => model.getVm(a!.mac)?.host === 'c1' && model.getVm(p!.mac)?.host === 'c3' && model.getVm(b!.mac)?.host === 'c1', 'the controller sees A and B on c1, P on c3', 30_000);
  const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', a!.ip]);
  assert.equal(first.code, 0, `P reaches A before the move: ${first.stdout}${first.stderr}`);
  const before = await nicOf(o, 0);
  const stream = await startStream(a!.ns, p!.ns, a!.ip, 5432, undefined, t);
  const echoes = await EchoLedger.open(o, 1, 0);
  const ping = new Pinger(o, 1, a!.ip);

  // The policy's decision: A to c2, for its clients at 15h UTC on the policy's clock.
  const proposed = await waitFor(() => model.listDecisions({}).find((d) => d.kind === 'migration-proposed'), 'the scheduler\'s proposal', 60_000);
  assert.match(proposed.reason, /^scheduler: follow-the-sun: 1 action\(s\), 1 move\(s\)/);
  const moves = (proposed.detail as { moves: PlacementMove[] }).moves;
  assert.deepEqual(moves.map((m) => [m.vm, m.from, m.to]), [[a!.mac, 'c1', 'c2']], 'A, and only A, to the us host');
  assert.match(proposed.reason, /api's clients \(us 100%\) at 15h UTC see 0\.200 ms from us instead of 30\.00 ms from eu/);

  const run = await waitFor(() => model.listMigrations().find((m) => m.vm === a!.name || m.vm === a!.mac), 'the auto-migration started', 60_000);
  assert.deepEqual([run.requestedBy, run.from, run.to], ['auto-migrate', 'c1', 'c2'], 'the coordinator moves A where the policy chose');
  const done = await waitFor(() => {
    const m = model.getMigration(run.id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the migration over', 120_000);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(done.cutover?.lost, 0, 'no frame lost at the cutover');
  t.diagnostic(`cutover: ${JSON.stringify(done.cutover)}`);
  assert.equal(model.getVm(a!.mac)?.host, 'c2', 'A on the host the policy chose');

  await assertMovedIntact(t, o, { ping, echoes, stream, before }, { vm: 0, from: 'c1', to: 'c2' });

  // B's move gains as much but costs the engine's estimate of 1 TB and 64 GiB over 100 Mbit/s: refused, and said so.
  const refusal = await waitFor(() => model.listDecisions({}).find((d) => d.kind === 'no-change' && d.reason.includes(`refused: move ${b!.mac} c1→c2`)), 'the refusal of B\'s move', 60_000);
  // Said when A's proposal is withdrawn (A moved), or on its own once nothing else is proposed.
  assert.match(refusal.reason, /^scheduler: (proposal withdrawn: )?follow-the-sun: refused: move .*db's clients \(us 100%\).*gain 29\.80 ms, cost \d+.*its cost exceeds its gain$/);
  assert.match(model.getPlacement().refused ?? '', /its cost exceeds its gain/);
  assert.equal(model.getVm(b!.mac)?.host, 'c1', 'B stays');
  assert.equal(model.listMigrations().length, 1, 'one migration: A\'s; B is not moved, P not');
  assert.equal(model.getVm(p!.mac)?.host, 'c3');
});
