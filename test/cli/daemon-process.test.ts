import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/common/logger.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startControllerProcess } from '../../src/controller/launch.ts';
import { defaultAdminSocket } from '../../src/dataplane/admin-access.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { freePortBelowEphemeral as freePort } from '../helpers/free-port.ts';
import { waitFor } from '../helpers/wait.ts';

/** `vnet daemon` as a process: how it fails to start, how it runs without a controller, how it stops when refused. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

interface Exit {
  code: number | null;
  stderr: string;
}

function daemon(args: string[], whileRunning?: (stderr: () => string, kill: () => void) => Promise<void>): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VNET, 'daemon', ...args], { env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr });
    });
    whileRunning?.(() => stderr, () => child.kill('SIGINT')).catch((err: unknown) => {
      child.kill('SIGKILL');
      reject(err);
    });
  });
}

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-daemon-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function occupy(t: { after(fn: () => Promise<void>): void }): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as { port: number }).port;
}

const NO_CONTROLLER = /^vnet daemon: warning: no controller \(--controller URL or controller: in the config\): running standalone/;

/** Every stderr line: the no-controller warning, then exactly one error line; no stack trace. */
function assertOneErrorLine(r: Exit, expected: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(r.code, 1, r.stderr);
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, NO_CONTROLLER);
  assert.match(lines[1]!, expected);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
}

describe('vnet daemon (process)', () => {
  it('a listen port in use: one line naming the address, exit 1, no stack trace', async (t) => {
    const port = await occupy(t);
    const r = await daemon(['--host', 'h1', '--role', 'hub', '--listen', `127.0.0.1:${port}`, '--run-dir', scratch(t)]);
    assertOneErrorLine(r, new RegExp(`^vnet daemon: .*cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  });

  it('an admin or migration port in use: one line naming the address, exit 1', async (t) => {
    const port = await occupy(t);
    const admin = await daemon(['--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${port}`, '--run-dir', scratch(t)]);
    assertOneErrorLine(admin, new RegExp(`^vnet daemon: the admin interface cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    const dir = scratch(t);
    await ensureDemoCertificates(join(dir, 'certs'), ['h1']);
    const migration = await daemon(['--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--tls-dir', join(dir, 'certs'), '--migration', `127.0.0.1:${port}`, '--run-dir', dir]);
    assertOneErrorLine(migration, new RegExp(`^vnet daemon: the migration channel cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  });

  it('a bad flag value is a configuration error, exit 2', async (t) => {
    const r = await daemon(['--host', 'h1', '--role', 'boss', '--listen', '127.0.0.1:0', '--run-dir', scratch(t)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^vnet daemon: command line: role: /);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  });

  it('without a controller it warns once and runs, its admin interface on the owner-only socket of its run directory', async (t) => {
    const run = scratch(t);
    const socket = defaultAdminSocket(run, 'h1');
    const r = await daemon(['--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--run-dir', run], async (stderr, kill) => {
      const status = await waitFor(async () => {
        const s = await adminRequest(`unix:${socket}`, 'GET', '/status').catch(() => undefined);
        return s?.status === 200 ? s : undefined;
      }, 'the admin socket answers', 30_000);
      assert.equal((status.json as { hostId: string }).hostId, 'h1');
      assert.equal(stderr().trimEnd().split('\n').length, 1);
      assert.match(stderr(), NO_CONTROLLER);
      kill();
    });
    assert.equal(r.code, 0, r.stderr);
  });

  it('a host the controller refuses (not in its deployment) stops with the reason, exit 1', async (t) => {
    const dir = scratch(t);
    const certs = join(dir, 'certs');
    await ensureDemoCertificates(certs, ['hub', 'h9']);
    const control = await freePort();
    const deployment = parseDeployment(`name: refusal
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true, listen: { transport: tls, host: 127.0.0.1, port: ${await freePort()} } }
`, 'refusal.yaml');
    const ctl = await startControllerProcess({ logger: silentLogger() }, {
      deployment, dbPath: join(dir, 'vnet.db'), tlsDir: certs, control: { host: '127.0.0.1', port: control }, api: { host: '127.0.0.1', port: 0 }, tokenFile: join(dir, 'api-token'),
    });
    t.after(() => ctl.close());
    const r = await daemon(['--host', 'h9', '--role', 'hub', '--listen', '127.0.0.1:0', '--transport', 'tls', '--tls-dir', certs, '--controller', ctl.controlUrl, '--run-dir', dir]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^vnet daemon: the controller refused host h9: VNET_ERR_UNKNOWN_HOST: host "h9" is not in the deployment \(is h9 a host of the controller's deployment file\?\)$/);
  });
});

describe('vnet daemon flags', () => {
  it('--admin-token-file without an HTTP admin interface is a configuration error, exit 2', async (t) => {
    const r = await daemon(['--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--run-dir', scratch(t), '--admin', 'unix:/tmp/x.sock', '--admin-token-file', '/tmp/t']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'vnet daemon: command line: admin-token-file: --admin-token-file is for an HTTP admin interface (--admin HOST:PORT or admin: {host, port})\n');
  });

  it('a non-loopback --admin without a token file is refused before anything starts, exit 2', async (t) => {
    const r = await daemon(['--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--run-dir', scratch(t), '--admin', '0.0.0.0:7199']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^vnet daemon: command line: admin\.tokenFile: the admin interface on 0\.0\.0\.0, not a loopback address, needs a token/);
  });
});
