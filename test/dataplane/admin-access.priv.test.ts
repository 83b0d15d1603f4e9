/**
 * The admin interface of a real `vnet daemon` process (root) against another
 * local user (uid 65534, nobody): on the default Unix socket the kernel
 * refuses the connection; on loopback HTTP the request has no token (the
 * token file is the owner's) and is answered 401. Neither can change the
 * daemon's rules or links; the owner can.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultAdminSocket, defaultAdminTokenFile } from '../../src/dataplane/admin-access.ts';
import { adminRequest, type AdminTarget } from '../helpers/admin-client.ts';
import { freePortBelowEphemeral as freePort } from '../helpers/free-port.ts';
import { requireTools, waitFor } from '../helpers/netns.ts';

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));
const NOBODY = 65534;

requireTools([]);

/** What another user sees: a PUT of a drop-everything rule, then a read of the token file, as uid 65534. */
const ATTACKER = `
const http = require('node:http');
const fs = require('node:fs');
const [where, tokenFile] = process.argv.slice(1);
const out = {};
try { fs.readFileSync(tokenFile); out.tokenFile = 'read'; } catch (e) { out.tokenFile = e.code; }
const body = JSON.stringify([{ id: 'evil', priority: 1000, src: 'any', dst: 'any', action: 'drop' }]);
const target = where.startsWith('unix:') ? { socketPath: where.slice(5) } : { host: new URL(where).hostname, port: Number(new URL(where).port) };
const req = http.request({ ...target, method: 'PUT', path: '/rules', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
  res.resume();
  res.on('end', () => { out.status = res.statusCode; console.log(JSON.stringify(out)); });
});
req.on('error', (e) => { out.error = e.code; console.log(JSON.stringify(out)); });
req.end(body);
`;

function asNobody(where: string, tokenFile: string): Promise<{ status?: number; error?: string; tokenFile: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', ATTACKER, where, tokenFile], { uid: NOBODY, gid: NOBODY, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`the uid ${NOBODY} client failed (${code}): ${err}`));
      resolve(JSON.parse(out) as { status?: number; error?: string; tokenFile: string });
    });
  });
}

/** A daemon process with its run directory in a world-readable scratch directory (so only the daemon's own modes protect it). */
async function startDaemon(t: TestContext, extra: string[]): Promise<string> {
  const scratch = mkdtempSync(join(tmpdir(), 'vnet-admin-priv-'));
  chmodSync(scratch, 0o755);
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const run = join(scratch, 'run');
  const child = spawn(process.execPath, [VNET, 'daemon', '--host', 'h1', '--role', 'hub', '--listen', '127.0.0.1:0', '--run-dir', run, ...extra], {
    env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' }, stdio: 'ignore',
  });
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  });
  return run;
}

async function adminRules(target: AdminTarget): Promise<unknown[]> {
  const r = await adminRequest(target, 'GET', '/rules');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return (r.json as { rules: Array<{ origin?: string; id: string }> }).rules.filter((x) => x.id === 'evil');
}

test('another local user cannot connect to the default admin socket; the owner can', async (t) => {
  const run = await startDaemon(t, []);
  const socket = defaultAdminSocket(run, 'h1');
  const owner = { url: `unix:${socket}` };
  await waitFor(async () => (await adminRequest(owner, 'GET', '/status').catch(() => undefined))?.status === 200, 'the admin socket answers its owner', 30_000);
  const attack = await asNobody(`unix:${socket}`, join(run, 'h1', 'admin-token'));
  assert.equal(attack.error, 'EACCES', JSON.stringify(attack));
  assert.equal(attack.status, undefined);
  assert.deepEqual(await adminRules(owner), [], 'no rule reached the daemon');
  const put = await adminRequest(owner, 'PUT', '/rules', [{ id: 'evil', priority: 1000, src: 'any', dst: 'any', action: 'drop' }]);
  assert.equal(put.status, 200);
  assert.equal((await adminRules(owner)).length, 1, 'the owner changes the rules');
});

test('on loopback HTTP another local user cannot read the token and is answered 401; the owner, with the token, is not', async (t) => {
  const port = await freePort();
  const run = await startDaemon(t, ['--admin', `127.0.0.1:${port}`]);
  const tokenFile = defaultAdminTokenFile(run, 'h1');
  const url = `http://127.0.0.1:${port}`;
  const token = await waitFor(async () => {
    const tok = (() => { try { return readFileSync(tokenFile, 'utf8').trim(); } catch { return undefined; } })();
    if (tok === undefined) return undefined;
    return (await adminRequest({ url, token: tok }, 'GET', '/status').catch(() => undefined))?.status === 200 ? tok : undefined;
  }, 'the admin interface answers with the token', 30_000);
  const attack = await asNobody(url, tokenFile);
  assert.deepEqual(attack, { tokenFile: 'EACCES', status: 401 });
  assert.deepEqual(await adminRules({ url, token }), [], 'no rule reached the daemon');
  assert.equal((await adminRequest({ url }, 'GET', '/status')).status, 401, 'the owner too needs the token');
  assert.equal((await adminRequest({ url, token }, 'PUT', '/rules', [{ id: 'evil', priority: 1000, src: 'any', dst: 'any', action: 'drop' }])).status, 200);
  assert.equal((await adminRules({ url, token })).length, 1);
});
