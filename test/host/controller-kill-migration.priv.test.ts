/**
 * The controller killed -9 mid-migration and restarted (root): a hub and
 * spokes as `vnet daemon` processes, the controller a `vnet controller`
 * process with its SQLite file on disk (test/helpers/netns-overlay.ts,
 * `startNetnsOverlayWithControllerProcess`). VM A (a namespace holding a
 * TAP device on c1, with a model guest) moves to c2 while P on c3 pings it
 * every 10 ms and sends it a checked TCP stream. The test follows the
 * migration's persisted step through the operator API and SIGKILLs the
 * controller at that step, then starts it again on the same ports and
 * database.
 *
 *   - before the commit point (the memory phase): the restarted controller
 *     aborts from the stored state; A runs on c1 only (its port there, none
 *     on c2); nothing lost, the stream intact. The engine may have paused A
 *     before the kill (the time-bound rule stops early on a small guest):
 *     then A's frames are held on c1 until the abort and flushed to it.
 *   - after the commit point (step `commit`, waiting for the daemons'
 *     acknowledgements): the restarted controller drives the cutover to the
 *     end; A runs on c2 only. While the controller is away A stays paused
 *     on c1 and its frames are held there (bounded queue, 4096 frames): the
 *     pings stop being answered for that time but none is lost — each is
 *     answered late, once the held frames are flushed to c2 — and the TCP
 *     stream has no reset, gap or duplicate.
 *
 * "No ping lost" is counted in the kernels (EchoLedger in
 * test/helpers/migration-probes.ts): every echo request P's kernel sent
 * reached A, A answered each, every reply reached P's kernel. The replies to
 * the held requests arrive back to back, and under load `ping` reads its
 * raw socket (SO_RCVBUF 64 KiB, set by iputils) too late for all of them:
 * the kernel drops the excess there and counts it. Runs at load 6–19 missed
 * up to 115 echoes that way — one contiguous run at the end of the flushed
 * burst each time, with P's InEchoReps equal to its OutEchos. So what ping
 * itself missed must be no more than what its socket dropped; anything else
 * is a loss in the overlay.
 *
 * To hold the migration at `commit` long enough to see it, an idle spoke c4
 * with an operator's fast-path link to c1 (so its rule for A changes at the
 * commit) is stopped (SIGSTOP) for the move: the coordinator waits for its
 * acknowledgement. It is continued before the controller comes back.
 *
 * Bounded waits only; no wall-clock assertions.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startStream } from '../../bench/cutover/probes.ts';
import { silentLogger } from '../../src/common/logger.ts';
import type { LinkView, MigrationView, VmView } from '../../src/controller/api-views.ts';
import { openStore } from '../../src/controller/store/store.ts';
import { startNetnsOverlayWithControllerProcess, type NetnsOverlayWithControllerProcess } from '../helpers/netns-overlay.ts';
import { EchoLedger, nicOf, Pinger, portAt } from '../helpers/migration-probes.ts';
import { waitFor } from '../helpers/wait.ts';

type Overlay = NetnsOverlayWithControllerProcess;

const api = <T>(o: Overlay, path: string): Promise<T> => o.controller.client.get<T>(`/api/v1${path}`);
const migration = (o: Overlay, id: string): Promise<MigrationView | undefined> => api<MigrationView>(o, `/migrations/${id}`).catch(() => undefined);
const hostOf = async (o: Overlay, mac: string): Promise<string | undefined> => (await api<VmView>(o, `/vms/${mac}`).catch(() => undefined))?.host ?? undefined;

/** The migration's step rows and the VM's stored host, read from the database file while the controller is dead. */
function persisted(o: Overlay, id: string, mac: string): { step: string | undefined; host: string | undefined; rows: string[] } {
  const store = openStore({ path: o.dbPath, logger: silentLogger() });
  try {
    return { step: store.getMigration(id)?.run?.step, host: store.getVm(mac)?.host ?? undefined, rows: store.migrationSteps(id).map((r) => `${r.step}:${r.state}`) };
  } finally {
    store.close();
  }
}

async function scene(t: TestContext, guest: { profile: string; memoryMiB: number; diskMiB: number }, hosts: string[]): Promise<Overlay> {
  const o = await startNetnsOverlayWithControllerProcess(t, { hosts, vms: [{ host: 'c1', guest }, { host: 'c3' }], policy: '', tools: ['ping'] });
  const [a, p] = o.vms;
  const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', a!.ip]);
  assert.equal(first.code, 0, `P reaches A before the move: ${first.stdout}${first.stderr}`);
  await waitFor(async () => (await hostOf(o, a!.mac)) === 'c1' && (await hostOf(o, p!.mac)) === 'c3', 'the controller sees A on c1 and P on c3', 30_000);
  return o;
}

async function over(o: Overlay, id: string): Promise<MigrationView> {
  return waitFor(async () => {
    const m = await migration(o, id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, `migration ${id} over`, 120_000);
}

async function start(o: Overlay, to: string, rule: string, deadlineS?: number): Promise<MigrationView> {
  return o.controller.client.post<MigrationView>('/api/v1/migrations', { vm: 'vm0', to, rule, ...(deadlineS === undefined ? {} : { deadlineS }) });
}

/** Kill -9 the controller and start it again; returns what the database held meanwhile. */
async function killAndRestart(o: Overlay, id: string, mac: string, meanwhile: () => void = () => {}): Promise<ReturnType<typeof persisted>> {
  await o.controller.kill();
  const left = persisted(o, id, mac);
  meanwhile();
  await o.controller.restart();
  return left;
}

test('the controller killed -9 in the memory phase and restarted: the migration is aborted from the stored state, A runs on c1 only, nothing lost', { timeout: 300_000 }, async (t) => {
  const o = await scene(t, { profile: 'oltp', memoryMiB: 256, diskMiB: 4 }, ['c1', 'c2', 'c3']);
  const [a] = o.vms;
  const stream = await startStream(a!.ns, o.vms[1]!.ns, a!.ip, 5411, undefined, t);
  const echoes = await EchoLedger.open(o, 1, 0);
  const ping = new Pinger(o, 1, a!.ip);
  const t0 = Date.now();
  const at = (what: string): void => t.diagnostic(`+${Date.now() - t0} ms: ${what} (ping: ${ping.seqs.size} answered, last ${ping.maxSeq})`);
  await ping.more(50, 'pings before the move');

  const started = await start(o, 'c2', 'time-bound', 120);
  await waitFor(async () => (await migration(o, started.id))?.enginePhase === 'memory', 'the memory phase', 60_000);
  at('the memory phase: kill -9');
  const left = await killAndRestart(o, started.id, a!.mac);
  at('restarted');
  assert.ok(left.step !== undefined && ['transfer', 'paused'].includes(left.step), `the database holds the migration before the commit point: ${left.step}`);
  assert.equal(left.host, 'c1');
  assert.ok(!left.rows.includes('commit:ok'), JSON.stringify(left.rows));

  const done = await over(o, started.id);
  at(`migration ${done.step}`);
  assert.equal(done.step, 'aborted', JSON.stringify(done));
  assert.match(done.error ?? '', /restarted before the commit point/);
  assert.equal(await hostOf(o, a!.mac), 'c1');
  assert.ok(o.controller.starts === 2);

  await waitFor(() => portAt(o, 'c2', a!.dev).then((p) => p === undefined), 'c2 dropped the copy\'s port');
  const at1 = await waitFor(() => portAt(o, 'c1', a!.dev), 'A\'s port on c1');
  await ping.more(100, 'pings after the restart');
  assert.ok((await portAt(o, 'c1', a!.dev))!.rxFrames > at1.rxFrames, 'A\'s frames still enter at c1');
  assert.equal(await portAt(o, 'c2', a!.dev), undefined, 'one copy: none on c2');
  const figures = await stream.stop();
  assert.ok(figures.intact, `the TCP stream: ${figures.error}`);
  await echoes.assertAnswered(t, ping);
});

test('the controller killed -9 after the commit point and restarted: the cutover is driven to the end, A runs on c2 only, nothing lost', { timeout: 300_000 }, async (t) => {
  const o = await scene(t, { profile: 'idle', memoryMiB: 16, diskMiB: 4 }, ['c1', 'c2', 'c3', 'c4']);
  const [a] = o.vms;
  const before = await nicOf(o, 0);
  await o.controller.client.post('/api/v1/links', { a: 'c1', b: 'c4', reason: 'holds the commit step (test)' });
  await waitFor(async () => (await api<LinkView>(o, '/links/c1/c4').catch(() => undefined))?.state === 'up', 'the c1–c4 fast path up', 30_000);
  const stream = await startStream(a!.ns, o.vms[1]!.ns, a!.ip, 5412, undefined, t);
  const echoes = await EchoLedger.open(o, 1, 0);
  const ping = new Pinger(o, 1, a!.ip);
  await ping.more(50, 'pings before the move');

  const c4 = o.daemon('c4');
  let stopped = false;
  t.after(() => { if (stopped) c4.kill('SIGCONT'); });
  const started = await start(o, 'c2', 'smart-stop');
  c4.kill('SIGSTOP');
  stopped = true;
  await waitFor(async () => {
    const m = await migration(o, started.id);
    if (m !== undefined && !['prepare', 'transfer', 'paused', 'commit'].includes(m.step)) throw new Error(`the migration went past the commit step: ${JSON.stringify(m)}`);
    return m?.step === 'commit';
  }, 'the commit step (waiting for c4)', 60_000);
  const left = await killAndRestart(o, started.id, a!.mac, () => { c4.kill('SIGCONT'); stopped = false; });
  assert.ok(left.rows.includes('commit:ok'), `the commit point is in the database: ${JSON.stringify(left.rows)}`);
  assert.ok(left.step === 'commit' || left.step === 'cutover', `past the commit point: ${left.step}`);
  assert.equal(left.host, 'c2', 'the commit point moved A to c2 in the database');

  const done = await over(o, started.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(await hostOf(o, a!.mac), 'c2');
  t.diagnostic(`cutover: ${JSON.stringify(done.cutover)}`);
  assert.equal(done.cutover?.lost, 0, 'no frame lost at the cutover');

  await ping.more(100, 'pings after the restart');
  const figures = await stream.stop();
  assert.ok(figures.intact, `the TCP stream: ${figures.error}`);

  assert.deepEqual(await nicOf(o, 0), before, 'A keeps its MAC and IP');
  assert.equal(await portAt(o, 'c1', a!.dev), undefined, 'one copy: c1 let the port go');
  const at2 = await waitFor(() => portAt(o, 'c2', a!.dev), 'A\'s port on c2');
  await ping.more(20, 'more pings');
  assert.ok((await portAt(o, 'c2', a!.dev))!.rxFrames > at2.rxFrames, 'A\'s frames enter at c2');
  // No ping lost: the ones sent while the controller was away were held and answered late.
  await echoes.assertAnswered(t, ping);
});
