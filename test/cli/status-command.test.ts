import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultAdminSocket } from '../../src/dataplane/admin-access.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { freePortBelowEphemeral as freePort } from '../helpers/free-port.ts';
import { waitFor } from '../helpers/wait.ts';

/** `vnet status` as a user runs it, against two real `vnet daemon` processes (a hub and a spoke) sharing a run directory. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));
const ENV = { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' };

function status(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [VNET, 'status', ...args], { env: ENV, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

test('vnet status finds the daemon\'s socket, and shows its link through the hub and its port; several daemons need --host', async (t) => {
  const run = mkdtempSync(join(tmpdir(), 'vnet-status-'));
  t.after(() => rmSync(run, { recursive: true, force: true }));
  const hubPort = await freePort();
  const children: ChildProcess[] = [];
  t.after(async () => {
    const exits = children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => c.once('exit', r)));
    for (const c of children) c.kill('SIGINT');
    await Promise.all(exits);
  });
  const daemon = (args: string[]): void => {
    children.push(spawn(process.execPath, [VNET, 'daemon', '--run-dir', run, ...args], { env: ENV, stdio: 'ignore' }));
  };
  daemon(['--host', 'hub', '--role', 'hub', '--listen', `127.0.0.1:${hubPort}`, '--port', 'vm0,memory,02:00:00:00:00:10']);
  daemon(['--host', 'h1', '--role', 'spoke', '--hub', `127.0.0.1:${hubPort}`, '--hub-id', 'hub', '--port', 'vm1,memory,02:00:00:00:00:11,10.0.0.1/24']);
  const h1 = { url: `unix:${defaultAdminSocket(run, 'h1')}` };
  const hub = { url: `unix:${defaultAdminSocket(run, 'hub')}` };
  await waitFor(async () => {
    const r = await adminRequest(h1, 'GET', '/links').catch(() => undefined);
    return (r?.json as Array<{ state: string }> | undefined)?.some((l) => l.state === 'up');
  }, 'the spoke linked to the hub', 30_000);
  await waitFor(async () => (await adminRequest(hub, 'GET', '/status').catch(() => undefined))?.status === 200, 'the hub\'s admin socket', 30_000);

  const several = await status(['--run-dir', run, '--interval', '0']);
  assert.equal(several.code, 2, several.stderr);
  assert.equal(several.stderr, 'vnet status: several daemons run here (h1, hub): choose one with --host\n');

  const r = await status(['--run-dir', run, '--host', 'h1', '--interval', '100']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^host h1 \(spoke\), not listening$/m);
  assert.match(r.stdout, /^controller: none \(standalone\)$/m);
  assert.match(r.stdout, /^hub\s+backbone\s+via hub hub\s+up\s/m);
  assert.match(r.stdout, /^vm1\s+memory\s+02:00:00:00:00:11\s+10\.0\.0\.1\/24\s/m);

  const json = await status(['--run-dir', run, '--host', 'hub', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as { status: { hostId: string }; links: Array<{ peer: string; state: string }> };
  assert.equal(parsed.status.hostId, 'hub');
  assert.deepEqual(parsed.links.map((l) => [l.peer, l.state]), [['h1', 'up']]);

  const none = await status(['--run-dir', join(run, 'nowhere'), '--interval', '0']);
  assert.equal(none.code, 3);
  assert.match(none.stderr, /^vnet status: cannot reach the daemon's admin interface at unix:.*cannot read the run directory/);
});
