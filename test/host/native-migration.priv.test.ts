/**
 * A namespace VM migrates while the native forwarder carries its traffic
 * (root): a hub and three spokes as `vnet daemon` processes over plain TCP
 * links (authenticated with the host certificates; what the forwarder's
 * thread serves), the controller in this process. P on c3 pings A on c1
 * every 10 ms and sends it a checked TCP stream; A's frames are carried
 * natively at c1 (TAP ↔ link) before the move. The coordinator moves A to
 * c2: A's TAP device is handed from c1's daemon (and its forwarder) to c2's,
 * c1's held frames are flushed to c2, every daemon's rules re-pointed.
 *
 *   - before the move: c1's forwarder carries A's frames.
 *   - the move: succeeded, no frame lost at the cutover.
 *   - after: c2's forwarder carries them; nothing of A's reaches c1 any more
 *     (no flow installed before the cutover still forwards to the old
 *     location: c1's links take in no more than a few floods while a
 *     couple of hundred echoes go to A — with flows living a minute, so that only
 *     emptying the flow tables at the hand-off and the cutover keeps them
 *     off c1); no ping lost (every echo answered), the
 *     stream intact, A keeps its MAC and IP.
 *   - counters exact: with the stream and the ping stopped, N echoes from P
 *     to A (neighbours fixed, IPv6 off: nothing else on the wire) move the
 *     VMs' port counters at c2 and c3 by exactly N frames each way, whether
 *     the thread or the event loop carried them.
 *
 * Bounded waits only; no wall-clock assertions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStream } from '../../bench/cutover/probes.ts';
import { startNetnsOverlay, type NetnsOverlay } from '../helpers/netns-overlay.ts';
import { assertMovedIntact, EchoLedger, nicOf, Pinger, portAt, type PortFacts } from '../helpers/migration-probes.ts';
import { waitFor } from '../helpers/wait.ts';

/** Frames host `host`'s native forwarder has carried (its `GET /status`); fails when it does not run. */
async function carried(o: NetnsOverlay, host: string): Promise<number> {
  const s = (await o.admin(host, '/status')) as { nativeForwarding?: { running: boolean; reason?: string; carriedFrames?: number } };
  assert.equal(s.nativeForwarding?.running, true, `${host}'s native forwarder runs: ${JSON.stringify(s.nativeForwarding)}`);
  return s.nativeForwarding!.carriedFrames ?? 0;
}

/** Frames host `host` took in on all its links. */
async function linkRx(o: NetnsOverlay, host: string): Promise<number> {
  const links = (await o.admin(host, '/links')) as Array<{ rxFrames: number }>;
  return links.reduce((sum, l) => sum + l.rxFrames, 0);
}

/** Port `dev`'s counters on `host`, once two readings in a row agree (what was in flight has landed). */
async function settledPort(o: NetnsOverlay, host: string, dev: string): Promise<PortFacts> {
  let last: PortFacts | undefined;
  return waitFor(async () => {
    const now = await portAt(o, host, dev);
    const same = now !== undefined && last !== undefined && now.rxFrames === last.rxFrames && now.txFrames === last.txFrames;
    last = now;
    return same ? now : undefined;
  }, `${host}'s port ${dev} counters settled`, 20_000);
}

test('a namespace VM moves while the native forwarder carries its traffic over plain TCP links: nothing lost, no stale flow, counters exact', { timeout: 300_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    vms: [{ host: 'c1', guest: { profile: 'idle', memoryMiB: 16, diskMiB: 4 } }, { host: 'c3' }],
    policy: '',
    tools: ['ping', 'sysctl'],
    transport: 'tcp',
    // Flows live a minute: one installed before the cutover and not emptied then would still forward to c1 when the strays are counted.
    daemonConfig: ['nativeForwarding: { flowTtlMs: 60000 }'],
  });
  const { model } = o;
  const [a, p] = o.vms;
  const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', a!.ip]);
  assert.equal(first.code, 0, `P reaches A before the move: ${first.stdout}${first.stderr}`);
  await waitFor(() => model.getVm(a!.mac)?.host === 'c1' && model.getVm(p!.mac)?.host === 'c3', 'the controller sees A on c1 and P on c3', 30_000);
  const before = await nicOf(o, 0);
  const stream = await startStream(a!.ns, p!.ns, a!.ip, 5431, undefined, t);
  const echoes = await EchoLedger.open(o, 1, 0);
  const ping = new Pinger(o, 1, a!.ip);

  const atC1 = await carried(o, 'c1');
  await waitFor(async () => (await carried(o, 'c1')) > atC1 + 100, 'c1\'s forwarder carries A\'s frames before the move', 60_000);
  await ping.more(50, 'pings before the move');

  const started = await model.startMigration!('vm0', 'c2', 'test', { rule: 'smart-stop' });
  const done = await waitFor(() => {
    const m = model.getMigration(started.id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the migration over', 120_000);
  // From here nothing of A's goes to c1 (beyond frames already in flight): a flow installed before the cutover (at c3, the hub or c1) would keep sending there.
  const c1Rx = await linkRx(o, 'c1');
  const c1Carried = await carried(o, 'c1');
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(done.cutover?.lost, 0, 'no frame lost at the cutover');
  t.diagnostic(`cutover: ${JSON.stringify(done.cutover)}`);
  assert.equal(model.getVm(a!.mac)?.host, 'c2');

  const atC2 = await carried(o, 'c2');
  await waitFor(async () => (await carried(o, 'c2')) > atC2 + 100, 'c2\'s forwarder carries A\'s frames after the move', 60_000);
  await ping.more(100, 'pings once A is at c2');
  const strayRx = (await linkRx(o, 'c1')) - c1Rx;
  const strayCarried = (await carried(o, 'c1')) - c1Carried;
  t.diagnostic(`c1 after the move: ${strayRx} frames in on its links, ${strayCarried} carried by its forwarder, while at least 100 echoes went to A`);
  assert.ok(strayRx < 20, `c1 still takes in A's frames after the move (${strayRx} while at least 100 echoes went to A): a stale forwarding decision`);
  assert.equal(strayCarried, 0, 'c1\'s forwarder carries nothing once A has left');

  await assertMovedIntact(t, o, { ping, echoes, stream, before }, { vm: 0, from: 'c1', to: 'c2' });

  // Counters exact: only the echoes on the wire (neighbours fixed, no IPv6), N each way.
  for (const [i, other] of [[0, 1], [1, 0]] as const) {
    const them = await nicOf(o, other);
    await o.exec(i, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    const neigh = await o.exec(i, ['ip', 'neigh', 'replace', o.vms[other]!.ip, 'lladdr', them.mac, 'dev', o.vms[i]!.dev, 'nud', 'permanent']);
    assert.equal(neigh.code, 0, neigh.stderr);
  }
  const aBefore = await settledPort(o, 'c2', a!.dev);
  const pBefore = await settledPort(o, 'c3', p!.dev);
  const n = 200;
  const burst = await o.exec(1, ['ping', '-n', '-q', '-c', String(n), '-i', '0.005', '-W', '5', a!.ip], 60_000);
  assert.match(burst.stdout, new RegExp(`${n} packets transmitted, ${n} received`), burst.stdout + burst.stderr);
  const aAfter = await settledPort(o, 'c2', a!.dev);
  const pAfter = await settledPort(o, 'c3', p!.dev);
  const delta = (x: PortFacts, y: PortFacts): [number, number] => [y.rxFrames - x.rxFrames, y.txFrames - x.txFrames];
  assert.deepEqual(delta(aBefore, aAfter), [n, n], 'A\'s port at c2: N replies taken from A, N requests delivered to it');
  assert.deepEqual(delta(pBefore, pAfter), [n, n], 'P\'s port at c3: N requests taken from P, N replies delivered to it');
});
