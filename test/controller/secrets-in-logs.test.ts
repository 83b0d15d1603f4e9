/**
 * No secret in any log line: a controller process (first start and a
 * restart) and a daemon's agent log everything (level trace) to one captured
 * stream while API tokens are created, used, refused and revoked, join
 * tokens created, used, refused and revoked, and a host credential issued,
 * used and revoked. None of those secrets may appear in the output — and the
 * restart's page URL carries no token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect } from 'node:net';
import { pino } from 'pino';
import { realClock } from '../../src/common/clock.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { CONTROLLER_HOST_ID, startControllerProcess, type ControllerProcess } from '../../src/controller/launch.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { caFiles } from '../../src/pki/certs.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { waitFor } from '../helpers/wait.ts';

const DEPLOYMENT = `
name: secrets-test
controller: { control: { host: 127.0.0.1, port: 0 }, api: { host: 127.0.0.1, port: 0 } }
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true }
  - { id: hA, site: lab }
`;

test('no API token, join token or host credential appears in any log line', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-secrets-'));
  let out = '';
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { out += chunk.toString('utf8'); done(); } });
  const logger = pino({ level: 'trace' }, sink);
  const secrets: string[] = [];
  const cleanup: Array<() => Promise<void>> = [];
  t.after(async () => {
    for (const c of cleanup.reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });
  await ensureDemoCertificates(join(dir, 'certs'), []);
  const init = { deployment: parseDeployment(DEPLOYMENT, 'secrets.yaml'), dbPath: join(dir, 'vnet.db'), tlsDir: join(dir, 'certs'), tokenFile: join(dir, 'api-token') };
  const start = async (): Promise<ControllerProcess> => {
    const p = await startControllerProcess({ logger }, init);
    cleanup.push(() => p.close());
    return p;
  };
  const ctl = await start();
  const admin = ctl.newToken!;
  secrets.push(admin);
  const api = async (token: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${ctl.api.url}${path}`, {
      method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as Record<string, unknown>;
  };

  // API tokens: created, used, revoked, refused.
  const reader = await api(admin, 'POST', '/api/v1/tokens', { label: 'reader', scope: 'read' });
  secrets.push(String(reader['token']));
  await api(String(reader['token']), 'GET', '/api/v1/hosts');
  await api(String(reader['token']), 'POST', '/api/v1/links', { a: 'hub', b: 'hA' });
  await api(admin, 'DELETE', `/api/v1/tokens/${String(reader['id'])}`);
  await api(String(reader['token']), 'GET', '/api/v1/hosts');
  await api(`${admin}x`, 'GET', '/api/v1/hosts');
  // A malformed HTTP request that carries the token: the parser's error holds the raw bytes.
  await new Promise<void>((resolve) => {
    const sock = connect(ctl.api.port, '127.0.0.1', () => sock.end(`GET /api/v1/hosts HTTP/1.1\r\nAuthorization: Bearer ${admin}\r\nContent-Length: x\r\n\r\n`));
    sock.on('data', () => {});
    sock.on('error', () => resolve());
    sock.on('close', () => resolve());
  });

  // Join tokens: one revoked, one used by a daemon (which earns a credential), refused on reuse.
  const revoked = await api(admin, 'POST', '/api/v1/join-tokens', { host: 'hA' });
  secrets.push(String(revoked['token']));
  await api(admin, 'DELETE', `/api/v1/join-tokens/${String(revoked['id'])}`);
  const join1 = await api(admin, 'POST', '/api/v1/join-tokens', { host: 'hA' });
  secrets.push(String(join1['token']));
  const ca = await readFile(caFiles(init.tlsDir).cert);
  const agentFor = (joinToken: string, credential?: string): ControllerAgent => {
    const agent = new ControllerAgent({ daemon: new FakeDaemon('hA'), logger, clock: realClock }, {
      url: ctl.controlUrl, tls: { ca, servername: CONTROLLER_HOST_ID }, joinToken, ...(credential !== undefined ? { credential } : {}),
      backoff: { initialMs: 20, maxMs: 100 }, onCredential: (c) => secrets.push(c),
    });
    cleanup.push(() => agent.close());
    agent.start();
    return agent;
  };
  const first = agentFor(String(revoked['token']));
  await waitFor(() => first.stats.lastError !== undefined, 'the revoked token refused');
  await first.close();
  const joined = agentFor(String(join1['token']));
  await waitFor(() => joined.state === 'connected', 'hA joined');
  assert.equal(secrets.length, 5, 'a credential was issued');
  await joined.close();
  const withCredential = agentFor(String(join1['token']), secrets[4]);
  await waitFor(() => withCredential.state === 'connected', 'hA back with its credential');
  await api(admin, 'GET', '/api/v1/credentials');
  await api(admin, 'DELETE', '/api/v1/credentials/hA');
  await waitFor(() => withCredential.stats.lastError?.code === 'VNET_ERR_CONTROL_AUTH', 'the revoked credential refused');
  await withCredential.close();

  // A restart: the page URL it reports carries no token.
  await ctl.close();
  cleanup.length = 0;
  const again = await start();
  assert.equal(again.newToken, undefined);
  assert.equal(again.pageUrl.includes('#token='), false);

  assert.ok(out.split('\n').length > 30, 'the test captured the log');
  assert.match(out, /join token [0-9a-f]{12} was revoked/, 'refusals are logged, by token id');
  for (const secret of secrets) {
    assert.ok(secret.length >= 40);
    assert.equal(out.includes(secret), false, `a secret (${secret.slice(0, 6)}…) is in the log`);
    // Nor its URL-encoded form, nor its base64url body alone, nor its bytes (a serialised Buffer).
    assert.equal(out.includes(encodeURIComponent(secret)), false);
    assert.equal(out.includes(secret.slice(secret.indexOf('_') + 1)), false);
    assert.equal(out.includes(JSON.stringify([...Buffer.from(secret)]).slice(1, -1)), false, 'the secret\'s bytes are in the log');
  }
});
