import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startFixtureServer } from '../controller/api/api-fixture.ts';
import type { FixtureServer } from '../controller/api/api-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

/** `vnet ctl` as a process: the real binary, its exit codes, its output streams and Ctrl-C. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

function vnet(args: string[], env: Record<string, string>, whileRunning?: (p: { stdout: () => string; kill: (sig: NodeJS.Signals) => void }) => Promise<void>): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VNET, ...args], { env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
    if (whileRunning !== undefined) {
      whileRunning({ stdout: () => stdout, kill: (sig) => child.kill(sig) }).catch((err: unknown) => {
        child.kill('SIGKILL');
        reject(err);
      });
    }
  });
}

describe('vnet ctl (process)', () => {
  let f: FixtureServer;
  before(async () => {
    f = await startFixtureServer();
  });
  after(async () => {
    await f.server.close();
  });

  it('prints a table on stdout and exits 0; a refused token exits 4 with the message on stderr', async () => {
    const ok = await vnet(['ctl', 'hosts'], { VNET_CONTROLLER: f.server.url, VNET_TOKEN: f.token });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^HOST\s+SITE/);
    assert.equal(ok.stderr, '');
    const refused = await vnet(['ctl', 'hosts'], { VNET_CONTROLLER: f.server.url, VNET_TOKEN: 'vnet_wrong' });
    assert.equal(refused.code, 4);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^vnet ctl: controller refused the token \(401\)/);
  });

  it('follows events until Ctrl-C, then exits 0', async () => {
    const r = await vnet(['ctl', 'events', '--follow', '-n', '0'], { VNET_CONTROLLER: f.server.url, VNET_TOKEN: f.token }, async (p) => {
      // Emitted repeatedly until one shows up: the process needs a moment to start and subscribe.
      await waitFor(() => {
        if (!p.stdout().includes('operator-action')) f.model.emit('operator-action', { actor: 'test', action: 'ping', detail: {} });
        return p.stdout().includes('operator-action');
      }, 'a followed event');
      p.kill('SIGINT');
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /operator-action\s+test ping \{\}/);
  });
});
