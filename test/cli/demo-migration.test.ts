/**
 * Live migration in `vnet demo`: the demo started in this process as the
 * command starts it (bsp-8, ephemeral ports, ring traffic on memory ports),
 * and the real `vnet ctl` binary as a user runs it against the demo's API:
 * `vnet ctl migrate bsp-0 --to c2 --watch` moves the VM's model guest from
 * c1 to c2 with the engine; the VM is then on c2 in `vnet ctl vms`, its
 * traffic goes on from its new port in both directions, the generator lost
 * no frame, and the summary line counts the migration. Started again on the
 * same work directory, the demo runs the VM where the controller remembers
 * it, and loses nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { loadDeploymentFile } from '../../src/controller/deployment-file.ts';
import type { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { DEFAULT_DEMO_TOPOLOGY, summaryLine } from '../../src/cli/demo-command.ts';
import { startDemo, type Demo } from '../../src/cli/demo-runner.ts';
import { waitFor } from '../helpers/wait.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');
const BSP0 = '02:00:00:00:03:00';
/** A bound, not a figure: on a loaded machine a migration in the demo's one process can take a minute. */
const MIGRATE_BOUND_MS = 150_000;

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

function vnetCtl(args: string[], env: Record<string, string>, boundMs = 60_000): Promise<Proc> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [VNET, 'ctl', ...args], { env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const killer = setTimeout(() => {
      stderr += `[vnet ctl ${args.join(' ')}: killed after ${boundMs / 1000} s]\n`;
      child.kill('SIGKILL');
    }, boundMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(killer);
      done({ code, stdout, stderr });
    });
  });
}

test('vnet demo: `vnet ctl migrate VM --to HOST --watch` moves a VM; its traffic follows it, no frame lost, the summary counts it', { timeout: 540_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-demo-migration-'));
  const start = (): Promise<Demo> => startDemo({ logger: silentLogger() }, {
    deployment: loadDeploymentFile(DEFAULT_DEMO_TOPOLOGY),
    workDir: dir,
    ephemeralPorts: true,
    pattern: 'ring',
    cycleMs: 40_000,
    bytesPerSecond: 200_000,
    netns: false,
  });
  let demo = await start();
  t.after(async () => {
    await demo.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = { VNET_CONTROLLER: demo.process.api.url, VNET_TOKEN_FILE: join(dir, 'api-token') };
  const model = demo.process.controller.model;
  const traffic = demo.traffic!;
  const c1 = demo.daemons.get('c1')!;
  const c2 = demo.daemons.get('c2')!;

  await waitFor(() => model.listHosts().every((h) => h.state === 'up'), 'every host connected to the controller', 30_000);
  await waitFor(() => model.getVm(BSP0)?.host === 'c1', 'the controller sees bsp-0 on c1', 30_000);
  const before = c1.port('bsp-0') as MemoryPort;
  await waitFor(() => before.stats.rxFrames > 0 && before.stats.txFrames > 0, 'ring traffic to and from bsp-0 on c1', 30_000);
  assert.match(summaryLine(demo), /migrations 0 \(ok 0\), frames lost 0/);

  const run = await vnetCtl(['migrate', 'bsp-0', '--to', 'c2', '--watch'], env, MIGRATE_BOUND_MS);
  assert.equal(run.code, 0, `vnet ctl migrate: ${run.stderr}\n${run.stdout}`);
  assert.match(run.stdout, /^migration \S+ started: 02:00:00:00:03:00 c1 → c2 \(smart-stop\)/);
  assert.match(run.stdout, /transfer/, 'the watch shows the transfer');
  assert.match(run.stdout.trimEnd().split('\n').at(-1)!, /: succeeded, .*lost 0/, 'the last line: succeeded, nothing lost at the cutover');

  const vms = await vnetCtl(['vms', '--json'], env);
  assert.equal(vms.code, 0, vms.stderr);
  const listed = (JSON.parse(vms.stdout) as { mac: string; name: string | null; host: string | null }[]).find((v) => v.name === 'bsp-0');
  assert.equal(listed?.host, 'c2', 'bsp-0 is on c2 in vnet ctl vms');

  // The VM's NIC is now its port on c2; the generator sends from it and counts what reaches it.
  await waitFor(() => c1.port('bsp-0') === undefined, 'c1 dropped bsp-0\'s port');
  const after = c2.port('bsp-0') as MemoryPort;
  assert.ok(after !== undefined && after !== before);
  assert.equal(traffic.portOf('bsp-0'), after, 'the generator follows bsp-0 to c2');
  const rx = after.stats.rxFrames;
  const tx = after.stats.txFrames;
  await waitFor(() => after.stats.rxFrames > rx + 50, 'bsp-0 sending from c2', 30_000);
  await waitFor(() => after.stats.txFrames > tx + 50, 'bsp-0 receiving on c2', 30_000);

  assert.equal(traffic.stats.lostFrames, 0, 'no frame to or from any VM went missing');
  assert.equal(traffic.stats.duplicateFrames, 0);
  const migration = model.listMigrations().find((m) => !demo.migrationsBefore.has(m.id))!;
  assert.equal(migration.state, 'succeeded');
  assert.equal(migration.cutover?.lost, 0);
  assert.match(summaryLine(demo), /migrations 1 \(ok 1\), frames lost 0$/);

  // The same work directory again: bsp-0 starts on c2, where the controller's store has it, so no frame goes to c1.
  await demo.close();
  demo = await start();
  const again = demo;
  await waitFor(() => again.process.controller.model.listHosts().every((h) => h.state === 'up'), 'every host up again', 30_000);
  const port = again.daemons.get('c2')!.port('bsp-0') as MemoryPort | undefined;
  assert.ok(port !== undefined && again.daemons.get('c1')!.port('bsp-0') === undefined, 'bsp-0 runs on c2 after the restart');
  await waitFor(() => port.stats.rxFrames > 50 && port.stats.txFrames > 50, 'bsp-0 talking on c2', 30_000);
  assert.equal(again.traffic!.stats.lostFrames, 0);
  assert.match(summaryLine(again), /migrations 0 \(ok 0\), frames lost 0$/, 'the earlier run\'s migration is not counted again');
});
