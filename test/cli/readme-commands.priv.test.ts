/**
 * The README's "deployment by hand", run as a new user would run it (root:
 * the daemon's VM is a TAP device in network namespace vm2): its shell
 * commands in a fresh directory, then its daemon YAML as h2.yaml. The daemon
 * reaches the controller, and the VM's device is up in its namespace with the
 * address the YAML gives it. Fixed ports and names, as the README has them
 * (7400, 7480, 7502, 8502; namespace vm2; /run/vnet/h2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminRequest } from '../helpers/admin-client.ts';
import { requireTools, run, waitFor } from '../helpers/netns.ts';

requireTools(['ip']);

const ROOT = join(import.meta.dirname, '../..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const byHand = readme.slice(readme.indexOf('### A deployment by hand'));
const sh = /```sh\n([\s\S]*?)```/.exec(byHand)?.[1] ?? '';
const yaml = /```yaml\n([\s\S]*?)```/.exec(byHand)?.[1] ?? '';

test('the README\'s deployment by hand works as written: certificates, controller, and a daemon whose VM is up in its namespace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-readme-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(join(ROOT, 'topologies'), join(dir, 'topologies'));
  // `vnet` on the PATH, as an installed one would be.
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'vnet'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin/vnet.js')}" "$@"\n`, { mode: 0o755 });
  const env = { PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`, VNET_LOG_LEVEL: 'warn' };

  const lines = sh.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '');
  const controllerLine = lines.find((l) => l.startsWith('vnet controller'));
  const daemonLine = lines.find((l) => l.startsWith('vnet daemon'));
  assert.ok(controllerLine?.endsWith('&') && daemonLine !== undefined, 'the README starts a controller in the background and a daemon');
  for (const l of lines.filter((x) => x !== controllerLine && x !== daemonLine)) execFileSync('bash', ['-c', l], { cwd: dir, env, stdio: 'pipe' });
  writeFileSync(join(dir, 'h2.yaml'), yaml);

  const ns = /netns: (\S+?)[,\s}]/.exec(yaml)?.[1] ?? 'vm2';
  assert.ok(!existsSync(`/var/run/netns/${ns}`), `namespace ${ns} is free for this test`);
  await run(['ip', 'netns', 'add', ns]);
  t.after(async () => { await run(['ip', 'netns', 'del', ns], { allowFailure: true }); });

  const children: ChildProcess[] = [];
  t.after(async () => {
    const exits = children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => c.once('exit', r)));
    for (const c of children) c.kill('SIGINT');
    await Promise.all(exits);
  });
  let logs = '';
  const start = (line: string): ChildProcess => {
    const c = spawn('bash', ['-c', `exec ${line.replace(/&$/, '').trim()}`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    children.push(c);
    return c;
  };
  start(controllerLine!);
  await waitFor(() => existsSync(join(dir, '.vnet', 'api-token')), `the controller's first start (log: ${logs})`, 60_000).catch((err: Error) => { throw new Error(`${err.message}\n${logs}`); });
  const daemon = start(daemonLine!);

  const socket = /admin: \{ socket: (\S+) \}/.exec(yaml)?.[1];
  assert.ok(socket !== undefined, 'the README\'s daemon has an admin socket');
  await waitFor(async () => {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited ${daemon.exitCode}:\n${logs}`);
    const r = await adminRequest(`unix:${socket}`, 'GET', '/status').catch(() => undefined);
    return (r?.json as { controller?: { state: string } } | undefined)?.controller?.state === 'connected';
  }, 'the README\'s daemon connected to the controller', 60_000).catch((err: Error) => { throw new Error(`${err.message}\n${logs}`); });

  const port = /ports:\n\s+- \{ name: (\S+?),/.exec(yaml)?.[1] ?? 'vm2';
  const ip = /ip: (\S+?),/.exec(yaml)?.[1];
  const addr = await run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', port]);
  const info = (JSON.parse(addr.stdout) as Array<{ flags: string[]; addr_info: Array<{ local: string; prefixlen: number }> }>)[0]!;
  assert.ok(info.flags.includes('UP'), `the VM's device is up in ${ns}`);
  assert.ok(info.addr_info.some((a) => `${a.local}/${a.prefixlen}` === ip), `the VM has ${ip}: ${addr.stdout}`);
});
