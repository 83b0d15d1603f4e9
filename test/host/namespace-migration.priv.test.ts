/**
 * Namespace VMs that really move (root): a hub and three spokes, each a
 * `vnet daemon` process (TLS tunnels, migration listeners and admin
 * interfaces on loopback), the controller in this process. VM A is a network
 * namespace holding a TAP device on c1, with a model guest for its memory and
 * disk; VM P is one on c3. While P sends A a continuous checked TCP stream
 * (bench/cutover/stream-check.ts) and pings it every 10 ms, the controller
 * moves A from c1 to c2: A's processes are frozen for the downtime, the TAP
 * attachment passes from c1's daemon to c2's, the engine moves the guest.
 *
 *   - the move: succeeded; the stream intact (no reset, gap or duplicate);
 *     no ping lost; A keeps its MAC and IP; A's frames now enter at c2 (its
 *     port's counters there; none left at c1); the cutover figures (held,
 *     flushed, relayed, lost 0) recorded.
 *   - an abort in the memory phase: A stays on c1, the stream and the pings
 *     go on untouched.
 *   - two migrations at once, A c1→c2 and B c2→c1 (a swap), each VM under
 *     its own stream and ping from P: both succeed, nothing lost.
 *
 * Bounded waits only; no wall-clock assertions.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startStream } from '../../bench/cutover/probes.ts';
import type { MigrationView } from '../../src/controller/api-views.ts';
import { startNetnsOverlay, type NetnsOverlay } from '../helpers/netns-overlay.ts';
import { nicOf, Pinger, portAt } from '../helpers/migration-probes.ts';
import { waitFor } from '../helpers/wait.ts';

async function finished(o: NetnsOverlay, id: string): Promise<MigrationView> {
  return waitFor(() => {
    const m = o.model.getMigration(id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, `migration ${id} over`, 120_000);
}

async function scene(t: TestContext, guest: { profile: string; memoryMiB: number; diskMiB: number }): Promise<NetnsOverlay> {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    vms: [{ host: 'c1', guest }, { host: 'c3' }],
    policy: '',
    tools: ['ping'],
  });
  const [a, p] = o.vms;
  const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', a!.ip]);
  assert.equal(first.code, 0, `P reaches A before the move: ${first.stdout}${first.stderr}`);
  await waitFor(() => o.model.getVm(a!.mac)?.host === 'c1' && o.model.getVm(p!.mac)?.host === 'c3', 'the controller sees A on c1 and P on c3', 30_000);
  return o;
}

test('a namespace VM moves from c1 to c2 under a checked TCP stream and a 10 ms ping from a third host: nothing lost', { timeout: 300_000 }, async (t) => {
  const o = await scene(t, { profile: 'idle', memoryMiB: 16, diskMiB: 4 });
  const [a] = o.vms;
  const before = await nicOf(o, 0);
  const stream = await startStream(a!.ns, o.vms[1]!.ns, a!.ip, 5401, undefined, t);
  const ping = new Pinger(o, 1, a!.ip);
  await ping.more(50, 'pings before the move');

  const started = await o.model.startMigration!('vm0', 'c2', 'test', { rule: 'smart-stop' });
  const done = await finished(o, started.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(o.model.getVm(a!.mac)?.host, 'c2');
  t.diagnostic(`cutover: ${JSON.stringify(done.cutover)}`);

  await ping.more(100, 'pings after the move');
  const figures = await stream.stop();
  assert.ok(figures.intact, `the TCP stream: ${figures.error}`);
  assert.ok(figures.bytes > 0);
  const lost = ping.lost();
  t.diagnostic(`pings answered ${ping.seqs.size} of ${ping.maxSeq}; lost ${lost.length} ${JSON.stringify(lost.slice(0, 20))}`);
  assert.deepEqual(lost, [], 'no ping lost');

  assert.deepEqual(await nicOf(o, 0), before, 'A keeps its MAC and IP');
  assert.equal(await portAt(o, 'c1', a!.dev), undefined, 'c1 let the port go');
  const at2 = await waitFor(() => portAt(o, 'c2', a!.dev), 'A\'s port on c2');
  assert.equal(at2.mac, a!.mac);
  const rx = at2.rxFrames;
  await ping.more(20, 'more pings');
  const later = (await portAt(o, 'c2', a!.dev))!;
  assert.ok(later.rxFrames > rx && later.txFrames > 0, `A's frames enter at c2: ${JSON.stringify(later)}`);

  assert.ok(done.cutover !== null);
  assert.equal(done.cutover.lost, 0, 'no frame lost at the cutover');
  assert.ok(done.cutover.timeMs !== null, 'the cutover time recorded');
  assert.ok(done.cutover.held >= done.cutover.flushed);
  assert.ok(done.cutover.announced > 0);
});

test('a namespace VM migration aborted in its memory phase: the VM stays on c1 and its traffic never stops', { timeout: 300_000 }, async (t) => {
  const o = await scene(t, { profile: 'oltp', memoryMiB: 256, diskMiB: 4 });
  const [a] = o.vms;
  const stream = await startStream(a!.ns, o.vms[1]!.ns, a!.ip, 5402, undefined, t);
  const ping = new Pinger(o, 1, a!.ip);
  await ping.more(50, 'pings before the move');

  const started = await o.model.startMigration!('vm0', 'c2', 'test', { rule: 'time-bound', deadlineS: 120 });
  await waitFor(() => o.model.getMigration(started.id)?.enginePhase === 'memory', 'the memory phase', 60_000).catch((err: Error) => {
    throw new Error(`${err.message}: the migration is ${JSON.stringify(o.model.getMigration(started.id))}`, { cause: err });
  });
  await o.model.cancelMigration!(started.id, 'test');
  const done = await finished(o, started.id);
  assert.notEqual(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(done.step, 'aborted', JSON.stringify(done));
  assert.equal(o.model.getVm(a!.mac)?.host, 'c1');

  await ping.more(100, 'pings after the abort');
  const figures = await stream.stop();
  assert.ok(figures.intact, `the TCP stream: ${figures.error}`);
  const lost = ping.lost();
  t.diagnostic(`pings answered ${ping.seqs.size} of ${ping.maxSeq}; lost ${lost.length}`);
  assert.deepEqual(lost, [], 'no ping lost');
  await waitFor(() => portAt(o, 'c2', a!.dev).then((p) => p === undefined), 'c2 dropped the copy\'s port');
  const at1 = (await portAt(o, 'c1', a!.dev))!;
  await ping.more(20, 'more pings');
  assert.ok((await portAt(o, 'c1', a!.dev))!.rxFrames > at1.rxFrames, 'A\'s frames still enter at c1');
});

test('two namespace VMs swap hosts at once (c1→c2 and c2→c1) under their own streams and pings: nothing lost', { timeout: 300_000 }, async (t) => {
  const guest = { profile: 'idle', memoryMiB: 16, diskMiB: 4 };
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    vms: [{ host: 'c1', guest }, { host: 'c3' }, { host: 'c2', guest }],
    policy: '',
    tools: ['ping'],
  });
  const [a, p, b] = o.vms;
  for (const target of [a!, b!]) {
    const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', target.ip]);
    assert.equal(first.code, 0, `P reaches ${target.name} before the moves: ${first.stdout}${first.stderr}`);
  }
  await waitFor(() => o.model.getVm(a!.mac)?.host === 'c1' && o.model.getVm(b!.mac)?.host === 'c2' && o.model.getVm(p!.mac)?.host === 'c3', 'the controller sees A on c1, B on c2, P on c3', 30_000);
  const streams = [await startStream(a!.ns, p!.ns, a!.ip, 5403, undefined, t), await startStream(b!.ns, p!.ns, b!.ip, 5404, undefined, t)];
  const pings = [new Pinger(o, 1, a!.ip), new Pinger(o, 1, b!.ip)];
  for (const ping of pings) await ping.more(50, 'pings before the moves');

  const started = await Promise.all([
    o.model.startMigration!('vm0', 'c2', 'test', { rule: 'smart-stop' }),
    o.model.startMigration!('vm2', 'c1', 'test', { rule: 'smart-stop' }),
  ]);
  const done = await Promise.all(started.map((m) => finished(o, m.id)));
  for (const d of done) {
    assert.equal(d.state, 'succeeded', JSON.stringify(d));
    assert.equal(d.cutover?.lost, 0);
    t.diagnostic(`${d.vm}: cutover ${JSON.stringify(d.cutover)}`);
  }
  assert.equal(o.model.getVm(a!.mac)?.host, 'c2');
  assert.equal(o.model.getVm(b!.mac)?.host, 'c1');
  for (const ping of pings) await ping.more(100, 'pings after the moves');
  for (const [i, stream] of streams.entries()) {
    const figures = await stream.stop();
    assert.ok(figures.intact, `TCP stream ${i}: ${figures.error}`);
  }
  for (const [i, ping] of pings.entries()) {
    const lost = ping.lost();
    t.diagnostic(`pings to ${i === 0 ? 'A' : 'B'}: answered ${ping.seqs.size} of ${ping.maxSeq}; lost ${lost.length}`);
    assert.deepEqual(lost, [], 'no ping lost');
  }
  assert.ok((await portAt(o, 'c2', a!.dev)) !== undefined && (await portAt(o, 'c1', a!.dev)) === undefined, 'A\'s port on c2 only');
  assert.ok((await portAt(o, 'c1', b!.dev)) !== undefined && (await portAt(o, 'c2', b!.dev)) === undefined, 'B\'s port on c1 only');
});
