import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  defaultAdminTokenFile, defaultRunDir, isLoopbackHost, prepareAdminAccess, MIN_ADMIN_TOKEN_CHARS,
} from '../../src/dataplane/admin-access.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-admin-access-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('loopback addresses are told from the others', () => {
  for (const h of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.org', '128.0.0.1', '::2']) assert.equal(isLoopbackHost(h), false, h);
});

test('HTTP on loopback: a fresh 256-bit token at every start, in a 0600 file in the host\'s 0700 run directory', (t) => {
  const run = scratch(t);
  const first = prepareAdminAccess({ host: '127.0.0.1', port: 0 }, { runDir: run, hostId: 'h2' });
  const file = defaultAdminTokenFile(run, 'h2');
  assert.equal(first.tokenFile, file);
  assert.ok('token' in first.listen);
  const token = first.listen.token;
  assert.match(token, /^vadm_[A-Za-z0-9_-]{43}$/);
  assert.equal(readFileSync(file, 'utf8').trim(), token);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(run, 'h2')).mode & 0o777, 0o700);
  const second = prepareAdminAccess({ host: '127.0.0.1', port: 0 }, { runDir: run, hostId: 'h2' });
  assert.ok('token' in second.listen);
  assert.notEqual(second.listen.token, token);
  assert.equal(readFileSync(file, 'utf8').trim(), second.listen.token);
});

test('the host\'s run directory is made private again if it was opened up', (t) => {
  const run = scratch(t);
  mkdirSync(join(run, 'h2'), { mode: 0o755 });
  chmodSync(join(run, 'h2'), 0o777);
  prepareAdminAccess({ host: '127.0.0.1', port: 0 }, { runDir: run, hostId: 'h2' });
  assert.equal(statSync(join(run, 'h2')).mode & 0o777, 0o700);
});

test('a non-loopback address is refused without an operator token, in the config and at start', (t) => {
  assert.throws(() => parseDaemonConfig({ host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, admin: { host: '0.0.0.0', port: 7100 } }, 'h1.yaml'), {
    code: 'VNET_ERR_CONFIG', message: /^h1\.yaml: admin\.tokenFile: the admin interface on 0\.0\.0\.0, not a loopback address, needs a token/,
  });
  const run = scratch(t);
  assert.throws(() => prepareAdminAccess({ host: '10.1.2.3', port: 7100 }, { runDir: run, hostId: 'h1' }), { code: 'VNET_ERR_ADMIN_ACCESS', message: /refusing to serve the admin interface on 10\.1\.2\.3/ });
});

test('a non-loopback address serves the operator\'s token from a private file; a world-readable or short one is refused', (t) => {
  const run = scratch(t);
  const file = join(run, 'token');
  const token = 'x'.repeat(MIN_ADMIN_TOKEN_CHARS);
  writeFileSync(file, token + '\n', { mode: 0o600 });
  const ok = prepareAdminAccess({ host: '10.1.2.3', port: 7100, tokenFile: file }, { runDir: run, hostId: 'h1' });
  assert.deepEqual(ok.listen, { host: '10.1.2.3', port: 7100, token });
  assert.equal(readFileSync(file, 'utf8'), token + '\n', 'an operator\'s token is read, never replaced');
  chmodSync(file, 0o644);
  assert.throws(() => prepareAdminAccess({ host: '10.1.2.3', port: 7100, tokenFile: file }, { runDir: run, hostId: 'h1' }), { code: 'VNET_ERR_ADMIN_ACCESS', message: /readable by others \(mode 644\)/ });
  writeFileSync(join(run, 'short'), 'abc', { mode: 0o600 });
  assert.throws(() => prepareAdminAccess({ host: '10.1.2.3', port: 7100, tokenFile: join(run, 'short') }, { runDir: run, hostId: 'h1' }), { code: 'VNET_ERR_ADMIN_ACCESS', message: /at least 32 characters/ });
  assert.throws(() => prepareAdminAccess({ host: '10.1.2.3', port: 7100, tokenFile: join(run, 'missing') }, { runDir: run, hostId: 'h1' }), { code: 'VNET_ERR_ADMIN_ACCESS', message: /cannot read the admin token file/ });
});

test('the run directory: systemd\'s RuntimeDirectory first, then /run/vnet for root or the user\'s runtime directory', () => {
  assert.equal(defaultRunDir({ RUNTIME_DIRECTORY: '/run/vnet-unit' }), '/run/vnet-unit');
  const root = process.getuid?.() === 0;
  assert.equal(defaultRunDir({ XDG_RUNTIME_DIR: '/run/user/1000' }), root ? '/run/vnet' : '/run/user/1000/vnet');
});
