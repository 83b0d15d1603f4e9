import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startController, type ControllerHandle } from '../../src/controller/runtime.ts';
import { placementText } from '../../src/cli/ctl-format.ts';
import { FakeCluster, FakeMigrationAgent } from './fixtures/fake-migration-agent.ts';
import { testPki } from './fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * A scheduling policy end to end, in virtual time: the controller's wall
 * clock is a variable the test moves through a day, the update period runs
 * when the test calls tick(), and the daemons are fake migration agents that
 * play the migration contract over the real control channel. Follow the sun:
 * the ZooKeeper master moves to Asia for the Asian morning and back to the
 * US for the American day, each move a real migration through the
 * coordinator, its cost the engine's own estimate.
 */

const MASTER = '02:00:00:00:00:01';
const HOUR = 3_600_000;
const DAY0 = Date.parse('2026-12-07T00:00:00Z');

const YAML = `name: sun
sites:
  - { id: us }
  - { id: asia }
hosts:
  - { id: hub, site: us, hub: true, listen: { transport: tcp, host: 127.0.0.1, port: 7001 } }
  - { id: us1, site: us, listen: { transport: tcp, host: 127.0.0.1, port: 7002 } }
  - { id: asia1, site: asia, listen: { transport: tcp, host: 127.0.0.1, port: 7003 } }
wan:
  - { sites: [us, asia], bandwidthMbit: 1000, rttMs: 150 }
vms:
  - { name: master, mac: "${MASTER}", ip: 10.0.0.1, host: us1 }
policy:
  updatePeriodMs: 600000
  autoMigrate: true
  autoMigrateCooldownMs: 0
scheduler:
  policy: follow-the-sun
  threshold: 10
  intervalMs: 60000
  resources:
    hosts: { us1: { cpu: 8, memoryMiB: 16384 }, asia1: { cpu: 8, memoryMiB: 16384 } }
    vms: { master: { cpu: 2, memoryMiB: 2048, diskGiB: 4, profile: tpc-w } }
  followTheSun:
    services: [{ name: zookeeper, primary: master }]
    clients:
      us:   [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
      asia: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
`;

interface Scheduled {
  controller: ControllerHandle;
  /** The controller's wall clock (virtual). */
  clock: { now: number };
}

/** A controller on a virtual wall clock and fake migration agents for the hub and each host, all connected. */
async function startScheduled(t: TestContext, yaml: string, startMs: number, hosts: Array<{ id: string; vms?: string[] }>): Promise<Scheduled> {
  const pki = testPki();
  const dir = mkdtempSync(join(tmpdir(), 'vnet-sched-'));
  const clock = { now: startMs };
  const errors: unknown[] = [];
  const controller = await startController({ logger: silentLogger(), registry: new Registry(), clock: realClock, wallClock: () => clock.now, onError: (err) => { errors.push(err); } }, {
    deployment: parseDeployment(yaml, 'sched.yaml'), dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000,
  });
  const cluster = new FakeCluster();
  const agents = [
    new FakeMigrationAgent(cluster, 'hub', { role: 'hub', cert: pki.host('hub'), ca: pki.ca }),
    ...hosts.map((h) => new FakeMigrationAgent(cluster, h.id, { vms: (h.vms ?? []).map((mac, i) => ({ mac, port: `tap-${h.id}-${i}` })), cert: pki.host(h.id), ca: pki.ca })),
  ];
  t.after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await controller.close();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(errors, []);
  });
  for (const a of agents) await a.connect(`wss://127.0.0.1:${controller.controlPort}/control`);
  const macs = hosts.flatMap((h) => h.vms ?? []);
  await waitFor(() => macs.every((m) => controller.model.getVm(m)?.state === 'running'), 'the VMs running');
  return { controller, clock };
}

test('follow the sun end to end: the policy moves the master to its clients and back over a day, through the migration coordinator', async (t) => {
  const { controller, clock } = await startScheduled(t, YAML, DAY0 + 13 * HOUR, [{ id: 'us1', vms: [MASTER] }, { id: 'asia1' }]);
  const model = controller.model;

  // 13h UTC: the clients are American and so is the master: the policy runs, scores, and proposes nothing.
  controller.tick();
  const day = model.getPlacement();
  assert.deepEqual([day.policy, day.unit, day.score, day.moves.length], ['follow-the-sun', 'ms', -0.2, 0]);
  assert.match(day.notes?.[0] ?? '', /zookeeper: primary 02:00:00:00:00:01 on us1, clients us 100% see 0\.200 ms/);

  // 03h UTC the next day: the clients are in Asia. The move's cost is the engine's estimate over the 150 ms WAN path.
  clock.now = DAY0 + 27 * HOUR;
  controller.tick();
  const morning = model.getPlacement();
  assert.equal(morning.moves.length, 1);
  const [move] = morning.moves;
  assert.deepEqual([move!.vm, move!.from, move!.to, move!.kind], [MASTER, 'us1', 'asia1', 'move']);
  assert.ok(move!.bytes! > 2 * 1024 ** 3 && move!.seconds! > 10, `estimate ${move!.bytes} bytes, ${move!.seconds} s`);
  assert.equal(move!.cost, move!.seconds, 'follow the sun costs 1 ms of score per second of migration');
  assert.match(move!.reason, /zookeeper's clients \(asia 100%\) at 3h UTC see 0\.200 ms from asia instead of 150 ms from us; gain 150 ms, cost \d+/);
  const first = await waitFor(() => model.listMigrations().find((m) => m.state === 'succeeded'), 'the first migration done');
  assert.deepEqual([first.vm, first.from, first.to, first.requestedBy], [MASTER, 'us1', 'asia1', 'auto-migrate']);
  assert.equal(model.getVm(MASTER)?.host, 'asia1');
  assert.ok(model.listDecisions({}).some((d) => d.kind === 'migration-proposed' && /^scheduler: follow-the-sun: 1 action\(s\), 1 move\(s\)/.test(d.reason)));
  const text = placementText(morning, model.listVms(), clock.now);
  assert.match(text, /^policy follow-the-sun: score -150\.000 ms now, best -0\.200 ms, threshold T 10\.000/);
  // Auto-migrate started it in the same update period: the move shows as started, with its cost and the engine's estimate.
  assert.match(text, /master\s+us1\s+asia1\s+started\s+149\.800\s+\d+\.\d{3}\s+[\d.]+ GiB \d+s\s+move /);

  // 14h UTC: the American day again; the master comes back.
  clock.now = DAY0 + 38 * HOUR;
  controller.tick();
  assert.deepEqual(model.getPlacement().moves.map((m) => [m.from, m.to]), [['asia1', 'us1']]);
  await waitFor(() => model.listMigrations().filter((m) => m.state === 'succeeded').length === 2, 'the second migration done');
  assert.equal(model.getVm(MASTER)?.host, 'us1');
  // Settled: the next run proposes nothing, and the proposal is withdrawn.
  clock.now += HOUR;
  controller.tick();
  assert.deepEqual(model.getPlacement().moves, []);
});

test('scheduler.clock: the policy reads its curve on its own clock, started at startAt and 720 times faster than the wall clock', async (t) => {
  const yaml = YAML.replace('  intervalMs: 60000\n', '  intervalMs: 1000\n  clock: { startAt: "2026-12-07T13:00:00Z", speedup: 720 }\n');
  // The wall clock is at 05h UTC some other day: the American hours only exist on the policy's clock.
  const wall0 = DAY0 + 40 * 24 * HOUR + 5 * HOUR;
  const { controller, clock } = await startScheduled(t, yaml, wall0, [{ id: 'us1', vms: [MASTER] }, { id: 'asia1' }]);
  const model = controller.model;
  controller.tick();
  const start = model.getPlacement();
  assert.deepEqual([start.policyTime, start.speedup, start.moves.length], [DAY0 + 13 * HOUR, 720, 0]);
  assert.match(start.notes?.[0] ?? '', /clients us 100%/);
  // 70 s of wall time later the policy's clock reads 03h the next day: Asia's clients, and the master moves there.
  clock.now = wall0 + 70_000;
  controller.tick();
  const night = model.getPlacement();
  assert.equal(night.policyTime, DAY0 + 27 * HOUR);
  assert.deepEqual(night.moves.map((m) => [m.from, m.to]), [['us1', 'asia1']]);
  assert.match(night.moves[0]!.reason, /at 3h UTC/);
  await waitFor(() => model.listMigrations().find((m) => m.state === 'succeeded'), 'the migration done');
  assert.equal(model.getVm(MASTER)?.host, 'asia1');
  assert.match(placementText(night, model.listVms(), clock.now), /policy time 2026-12-08 03:00 UTC \(×720\)/);
});

test('the clock option is validated: a speedup below 1 or above a day per second, or an unknown key, is an error naming it', () => {
  const at = (clockYaml: string): string => YAML.replace('  intervalMs: 60000\n', `  intervalMs: 60000\n  clock: ${clockYaml}\n`);
  assert.throws(() => parseDeployment(at('{ speedup: 0.5 }'), 'x.yaml'), /scheduler\.clock\.speedup/);
  assert.throws(() => parseDeployment(at('{ speedup: 100000 }'), 'x.yaml'), /scheduler\.clock\.speedup/);
  assert.throws(() => parseDeployment(at('{ startAt: "noon" }'), 'x.yaml'), /scheduler\.clock\.startAt/);
  assert.throws(() => parseDeployment(at('{ rate: 2 }'), 'x.yaml'), /rate/);
  assert.deepEqual(parseDeployment(YAML, 'x.yaml').scheduler?.clock, { speedup: 1 });
});

test('a move whose cost exceeds its gain is refused: the VM stays, and a decision says why', async (t) => {
  // A 500 GiB disk over the 1 Gbit/s WAN: the engine's estimate is over an hour, its cost far above the 150 ms gained.
  const yaml = YAML.replace('master: { cpu: 2, memoryMiB: 2048, diskGiB: 4, profile: tpc-w }', 'master: { cpu: 2, memoryMiB: 2048, diskGiB: 500, profile: tpc-w }');
  const { controller, clock } = await startScheduled(t, yaml, DAY0 + 3 * HOUR, [{ id: 'us1', vms: [MASTER] }, { id: 'asia1' }]);
  const model = controller.model;
  controller.tick();
  const p = model.getPlacement();
  assert.deepEqual(p.moves, []);
  assert.match(p.refused ?? '', /^move 02:00:00:00:00:01 us1→asia1: .*gain 150 ms, cost \d+ .*its cost exceeds its gain$/);
  const refusals = (): string[] => model.listDecisions({}).filter((d) => d.kind === 'no-change').map((d) => d.reason);
  assert.equal(refusals().length, 1);
  assert.match(refusals()[0]!, /^scheduler: follow-the-sun: refused: move 02:00:00:00:00:01 us1→asia1: .*its cost exceeds its gain$/);
  // The same refusal next run is not news; the VM stays and no migration starts.
  clock.now += HOUR;
  controller.tick();
  assert.equal(refusals().length, 1);
  assert.deepEqual([model.listMigrations(), model.getVm(MASTER)?.host], [[], 'us1']);
});

const V1 = '02:00:00:00:00:0a';
const V2 = '02:00:00:00:00:0b';
const SPOT_YAML = `name: spot
sites:
  - { id: us }
  - { id: eu }
hosts:
  - { id: hub, site: us, hub: true, listen: { transport: tcp, host: 127.0.0.1, port: 7001 } }
  - { id: us1, site: us, listen: { transport: tcp, host: 127.0.0.1, port: 7002 } }
  - { id: eu1, site: eu, listen: { transport: tcp, host: 127.0.0.1, port: 7003 } }
wan:
  - { sites: [us, eu], bandwidthMbit: 1000, rttMs: 80 }
vms:
  - { name: v1, mac: "${V1}", ip: 10.0.0.1, host: us1 }
  - { name: v2, mac: "${V2}", ip: 10.0.0.2, host: us1 }
policy:
  updatePeriodMs: 600000
  autoMigrate: true
  autoMigrateMaxConcurrent: 2
  autoMigrateCooldownMs: 0
scheduler:
  policy: spot-market
  threshold: 0.01
  intervalMs: 60000
  resources:
    hosts: { us1: { cpu: 8, memoryMiB: 16384 }, eu1: { cpu: 8, memoryMiB: 16384 } }
    vms: { v1: { memoryMiB: 1024, diskGiB: 2 }, v2: { memoryMiB: 1024, diskGiB: 2 } }
  spotMarket:
    prices: { us: [{ at: 0, perHour: 0.10 }], eu: [{ at: 0, perHour: 0.12 }] }
    terminations: [{ site: us, notice: "2026-12-07T00:10:00Z", at: "2026-12-07T00:12:00Z" }]
`;

test('spot market end to end: a termination notice moves every VM off the site, each migration done before the termination', async (t) => {
  const { controller, clock } = await startScheduled(t, SPOT_YAML, DAY0 + 5 * 60_000, [{ id: 'us1', vms: [V1, V2] }, { id: 'eu1' }]);
  const model = controller.model;
  // Before the notice us is the cheaper site: nothing moves.
  controller.tick();
  assert.deepEqual([model.getPlacement().policy, model.getPlacement().moves], ['spot-market', []]);
  assert.match(model.getPlacement().notes?.join('; ') ?? '', /us: 2 VM\(s\) at \$0\.100\/h/);
  // The notice: both VMs leave us for eu, dearer but safe, through the coordinator.
  clock.now = DAY0 + 10 * 60_000;
  controller.tick();
  const p = model.getPlacement();
  assert.deepEqual(p.moves.map((m) => [m.vm, m.to]).sort(), [[V1, 'eu1'], [V2, 'eu1']]);
  assert.ok(p.moves.every((m) => /us is being reclaimed/.test(m.reason) && m.seconds! < 120), 'each move estimated to finish within the notice');
  const done = await waitFor(() => { const ms = model.listMigrations(); return ms.length === 2 && ms.every((m) => m.state === 'succeeded') ? ms : undefined; }, 'both migrations done');
  const terminationAt = Date.parse('2026-12-07T00:12:00Z');
  assert.ok(done.every((m) => m.finishedAt !== null && m.finishedAt < terminationAt), 'no VM is left to be terminated');
  assert.deepEqual([model.getVm(V1)?.host, model.getVm(V2)?.host], ['eu1', 'eu1']);
});

test('the scheduler section is validated with the file: unknown VMs, sites and a missing policy section are named', () => {
  const base = YAML.slice(0, YAML.indexOf('scheduler:'));
  assert.throws(() => parseDeployment(`${base}scheduler: { policy: packing, threshold: 1 }\n`, 'x.yaml'), /scheduler\.packing.*needs a scheduler\.packing section|policy packing needs a scheduler\.packing section/);
  assert.throws(() => parseDeployment(`${base}scheduler:\n  policy: follow-the-sun\n  threshold: 1\n  followTheSun: { services: [{ name: z, primary: nobody }], clients: measured }\n`, 'x.yaml'), /unknown VM nobody/);
  assert.throws(() => parseDeployment(`${base}scheduler:\n  policy: spot-market\n  threshold: 1\n  spotMarket: { prices: { mars: [{ at: 0, perHour: 1 }] } }\n`, 'x.yaml'), /unknown site mars/);
  assert.throws(() => parseDeployment(`${base}scheduler:\n  policy: packing\n  threshold: 1\n  packing: { load: [1, 2] }\n`, 'x.yaml'), /24 hourly values/);
  assert.throws(() => parseDeployment(`${base}scheduler:\n  policy: packing\n  threshold: 1\n  bogus: 3\n  packing: { load: [${new Array(24).fill(0.5).join(', ')}] }\n`, 'x.yaml'), /bogus/);
  const ok = parseDeployment(`${base}scheduler:\n  policy: spot-market\n  threshold: 0.05\n  spotMarket:\n    prices: { us: [{ at: "2026-12-07T00:00:00Z", perHour: 0.3 }], asia: [{ at: 0, perHour: 0.2 }] }\n    terminations: [{ site: us, notice: "2026-12-07T01:58:00Z", at: "2026-12-07T02:00:00Z" }]\n`, 'x.yaml');
  assert.deepEqual(ok.scheduler?.spotMarket?.terminations, [{ site: 'us', notice: Date.parse('2026-12-07T01:58:00Z'), at: Date.parse('2026-12-07T02:00:00Z') }]);
  assert.equal(ok.scheduler?.spotMarket?.moveCost.perGiB, 0.09);
});
