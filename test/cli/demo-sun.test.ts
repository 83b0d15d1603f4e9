/**
 * `vnet demo --sun`: the compressed day, started in this process as the
 * command starts it (topologies/follow-the-sun-day.yaml, its day shortened
 * to a minute with --day's `withDayLength`, ephemeral ports, ring traffic on
 * memory ports). The scheduler's clock starts at 18:00 UTC with the
 * clients American. The test steps the policy's clock itself (the
 * controller's `schedulerClock`), to the next site's hours once the master
 * has settled, so how long a move takes on a loaded machine cannot make it
 * miss a site's window; across the day the ZooKeeper master zk1 visits the
 * sites in the order the client curve gives — Tokyo for the Asian morning,
 * Frankfurt for the European day, Virginia again for the American
 * afternoon — each move a live migration of its model guest through the
 * coordinator, proposed at an hour of the policy's clock inside that site's
 * window, with no frame of the generator's traffic lost. The summary line
 * shows the policy's time, the clients' shares and where the master is.
 *
 * Bounded waits on conditions only; nothing asserted about wall time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { loadDeploymentFile } from '../../src/controller/deployment-file.ts';
import { summaryLine } from '../../src/cli/demo-command.ts';
import { startDemo } from '../../src/cli/demo-runner.ts';
import { SUN_DEMO_TOPOLOGY, withDayLength } from '../../src/cli/demo-schedule.ts';
import { waitFor } from '../helpers/wait.ts';

const ZK1 = '02:00:00:00:05:01';

test('vnet demo --sun: over a compressed day the master follows the sun Virginia → Tokyo → Frankfurt → Virginia, live, nothing lost', { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-demo-sun-'));
  const deployment = withDayLength(loadDeploymentFile(SUN_DEMO_TOPOLOGY), 60);
  assert.equal(deployment.scheduler?.clock.speedup, 1440);
  // The policy's clock, stepped by the test: 18:00 UTC at the start (the file's startAt), shown at the day's speed-up.
  const startAt = deployment.scheduler!.clock.startAt!;
  let policyNow = startAt;
  const clock = { speedup: deployment.scheduler!.clock.speedup, shifted: true, at: (): number => policyNow };
  const demo = await startDemo({ logger: silentLogger(), schedulerClock: clock }, {
    deployment, workDir: dir, ephemeralPorts: true, pattern: 'ring', cycleMs: 40_000, bytesPerSecond: 100_000, netns: false,
  });
  t.after(async () => {
    await demo.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const model = demo.process.controller.model;
  await waitFor(() => model.listHosts().every((h) => h.state === 'up'), 'every host connected to the controller', 30_000);

  // Where the master has been, in order (each host once per stay).
  const visits: string[] = [];
  // What the scheduler decided and how each migration went, for a failing assertion's message.
  const started = Date.now();
  const story = (): string => [
    `visits ${visits.join(' → ')}`,
    ...model.listDecisions({}).map((d) => `  decision +${((d.time - started) / 1000).toFixed(1)} s ${d.kind}: ${d.reason}`),
    ...model.listMigrations().slice().reverse().map((m) => `  migration ${m.from} → ${m.to} ${m.state} (${m.requestedBy}) +${((m.startedAt - started) / 1000).toFixed(1)} s for ${m.finishedAt === null ? '…' : ((m.finishedAt - m.startedAt) / 1000).toFixed(1)} s${m.error === null ? '' : `: ${m.error}`}`),
  ].join('\n');
  const look = (): void => {
    const at = model.getVm(ZK1)?.host;
    if (at !== null && at !== undefined && visits.at(-1) !== at) visits.push(at);
  };
  look();
  assert.deepEqual(visits, ['va-1'], 'the master starts in Virginia');
  // Each step: the policy's clock to an hour inside the next site's window, then the master there with no move running.
  const HOUR_MS = 3_600_000;
  for (const [hoursAfterStart, site] of [[9, 'tyo-1'], [18, 'fra-1'], [26, 'va-1']] as const) {
    policyNow = startAt + hoursAfterStart * HOUR_MS;
    await waitFor(() => {
      look();
      return visits.at(-1) === site && model.listMigrations().every((m) => m.state !== 'running') ? true : undefined;
    }, `the master settled on ${site} at ${new Date(policyNow).toISOString().slice(11, 16)} UTC on the policy's clock`, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${story()}`, { cause: err });
    });
  }
  assert.deepEqual(visits, ['va-1', 'tyo-1', 'fra-1', 'va-1'], story());

  const runs = await waitFor(() => {
    const ms = model.listMigrations();
    return ms.length >= 3 && ms.slice(0, 3).every((m) => m.state === 'succeeded') ? ms : undefined;
  }, 'the three migrations done', 60_000);
  assert.ok(runs.every((m) => m.requestedBy === 'auto-migrate' && m.vm === ZK1), JSON.stringify(runs.map((m) => [m.vm, m.requestedBy])));

  // Each move proposed at an hour (policy clock) when its site is the clients' best: Tokyo 1–9h, Frankfurt 10–15h, Virginia 16–0h UTC.
  const window: Record<string, (h: number) => boolean> = { 'tyo-1': (h) => h >= 1 && h <= 9, 'fra-1': (h) => h >= 10 && h <= 15, 'va-1': (h) => h >= 16 || h === 0 };
  const proposals = model.listDecisions({}).filter((d) => d.kind === 'migration-proposed');
  assert.ok(proposals.length >= 3);
  for (const d of proposals) {
    const to = (d.detail as { moves: Array<{ to: string }> }).moves[0]!.to;
    const hour = Number(/ at (\d+)h UTC /.exec(d.reason)?.[1]);
    assert.ok(window[to]?.(hour) === true, `the move to ${to} proposed at ${hour}h UTC: ${d.reason}`);
  }

  const line = summaryLine(demo);
  t.diagnostic(line);
  for (const l of story().split('\n')) t.diagnostic(l);
  assert.match(line, /\| sun \d\d:\d\d UTC ×1440: clients (virginia|frankfurt|tokyo) \d+%.*; zk1 on (va-1 \(virginia\)|tyo-1 \(tokyo\)|fra-1 \(frankfurt\)) \|/);
  assert.match(line, /migrations [3-9] \(ok [3-9]\), frames lost 0$/);
  assert.equal(demo.traffic!.stats.lostFrames, 0, 'no frame of the generator\'s lost');
});

test('--day is checked: a length outside 1 s … a day, or a deployment without a scheduler, is an error naming --day', () => {
  const sun = loadDeploymentFile(SUN_DEMO_TOPOLOGY);
  assert.equal(withDayLength(sun, 120).scheduler?.clock.speedup, 720);
  assert.equal(sun.scheduler?.clock.speedup, 720, 'the file itself: a day in two minutes');
  assert.throws(() => withDayLength(sun, 0.5), /command line: day: --day is the length of the policy's day in seconds, 1 to 86400; got 0.5/);
  assert.throws(() => withDayLength(sun, 100_000), /got 100000/);
  const bsp = loadDeploymentFile(join(import.meta.dirname, '../../topologies/bsp-8.yaml'));
  assert.throws(() => withDayLength(bsp, 60), /--day needs a deployment with a scheduler section/);
});
