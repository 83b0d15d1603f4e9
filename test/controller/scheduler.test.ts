import { test } from 'node:test';
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

test('follow the sun end to end: the policy moves the master to its clients and back over a day, through the migration coordinator', async (t) => {
  const pki = testPki();
  const dir = mkdtempSync(join(tmpdir(), 'vnet-sched-'));
  let now = DAY0 + 13 * HOUR;
  const errors: unknown[] = [];
  const controller: ControllerHandle = await startController({ logger: silentLogger(), registry: new Registry(), clock: realClock, wallClock: () => now, onError: (err) => { errors.push(err); } }, {
    deployment: parseDeployment(YAML, 'sun.yaml'), dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000,
  });
  const cluster = new FakeCluster();
  const agents = [
    new FakeMigrationAgent(cluster, 'hub', { role: 'hub', cert: pki.host('hub'), ca: pki.ca }),
    new FakeMigrationAgent(cluster, 'us1', { vms: [{ mac: MASTER, port: 'tap-master' }], cert: pki.host('us1'), ca: pki.ca }),
    new FakeMigrationAgent(cluster, 'asia1', { cert: pki.host('asia1'), ca: pki.ca }),
  ];
  t.after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await controller.close();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(errors, []);
  });
  for (const a of agents) await a.connect(`wss://127.0.0.1:${controller.controlPort}/control`);
  const model = controller.model;
  await waitFor(() => model.getVm(MASTER)?.state === 'running', 'the master running on us1');

  // 13h UTC: the clients are American and so is the master: the policy runs, scores, and proposes nothing.
  controller.tick();
  const day = model.getPlacement();
  assert.deepEqual([day.policy, day.unit, day.score, day.moves.length], ['follow-the-sun', 'ms', -0.2, 0]);
  assert.match(day.notes?.[0] ?? '', /zookeeper: primary 02:00:00:00:00:01 on us1, clients us 100% see 0\.200 ms/);

  // 03h UTC the next day: the clients are in Asia. The move's cost is the engine's estimate over the 150 ms WAN path.
  now = DAY0 + 27 * HOUR;
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
  const text = placementText(morning, model.listVms(), now);
  assert.match(text, /^policy follow-the-sun: score -150\.000 ms now, best -0\.200 ms, threshold T 10\.000/);
  // Auto-migrate started it in the same update period: the move shows as started, with its cost and the engine's estimate.
  assert.match(text, /master\s+us1\s+asia1\s+started\s+149\.800\s+\d+\.\d{3}\s+[\d.]+ GiB \d+s\s+move /);

  // 14h UTC: the American day again; the master comes back.
  now = DAY0 + 38 * HOUR;
  controller.tick();
  assert.deepEqual(model.getPlacement().moves.map((m) => [m.from, m.to]), [['asia1', 'us1']]);
  await waitFor(() => model.listMigrations().filter((m) => m.state === 'succeeded').length === 2, 'the second migration done');
  assert.equal(model.getVm(MASTER)?.host, 'us1');
  // Settled: the next run proposes nothing, and the proposal is withdrawn.
  now += HOUR;
  controller.tick();
  assert.deepEqual(model.getPlacement().moves, []);
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
