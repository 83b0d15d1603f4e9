/**
 * Host identities on the control channel: a join token never takes over a
 * host that has a certificate identity or an issued credential (the hub
 * included); revoking a host's identity closes its live session at once and
 * refuses the credential or certificate afterwards, after which a new token
 * admits it again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { CONTROL_PROTOCOL_VERSION, factsToWire } from '../../src/control/control-protocol.ts';
import { CLOSE_AUTH_FAILED } from '../../src/controller/control-server.ts';
import { metricValue, startHarness, type Harness } from './fixtures/controller-harness.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { testPki } from './fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';

/** A hello with a join token from a client without a certificate; resolves with the close code and the error message. */
async function helloWithToken(h: Harness, hostId: string, joinToken: string): Promise<{ code: number; message: string }> {
  const ws = new WebSocket(h.url(), { ca: testPki().ca, perMessageDeflate: false });
  const received: Array<Record<string, unknown>> = [];
  ws.on('message', (data) => received.push(JSON.parse(String(data)) as Record<string, unknown>));
  ws.on('error', () => {});
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId, auth: { joinToken }, facts: factsToWire(new FakeDaemon(hostId).facts()) }));
  const code = await closed;
  return { code, message: String(received.find((m) => m['type'] === 'error')?.['message'] ?? received[0]?.['type']) };
}

test('a join token cannot take over a connected, certificate-authenticated host: the hub stays connected, the token stays unused', async (t) => {
  const h = await startHarness(t);
  const hub = h.daemon('hub');
  hub.agent.start();
  await waitFor(() => hub.agent.state === 'connected', 'the hub connected with its certificate');
  const { token } = await h.controller.access.createJoinToken({ host: 'hub' }, 'operator:test');
  const anyHost = await h.controller.access.createJoinToken({ anyHost: true, singleUse: false }, 'operator:test');

  for (const secret of [token, anyHost.token]) {
    const r = await helloWithToken(h, 'hub', secret);
    assert.equal(r.code, CLOSE_AUTH_FAILED);
    assert.match(r.message, /host hub already has an identity.*revoke it first/);
  }
  assert.equal(hub.agent.state, 'connected');
  assert.deepEqual(h.controller.access.listJoinTokens().map((j) => j.state), ['valid', 'valid']);
  assert.equal(await metricValue(h.registry, 'vnet_control_auth_failures_total', { reason: 'token-host-has-identity' }), 2);
  assert.equal(await metricValue(h.registry, 'vnet_control_sessions_opened_total', { auth: 'join-token' }), 0);
  const listed = h.controller.access.listHostIdentities();
  assert.deepEqual(listed.map((i) => [i.host, i.kind, i.connected]), [['hub', 'certificate', true]]);
});

test('a host with an issued credential is not taken over by a second token', async (t) => {
  const h = await startHarness(t);
  const first = await h.controller.access.createJoinToken({ host: 'h1' }, 'operator:test');
  const joined = h.daemon('h1', { noCert: true, joinToken: first.token });
  joined.agent.start();
  await waitFor(() => joined.agent.state === 'connected', 'h1 joined with the first token');
  await joined.agent.close();

  const second = await h.controller.access.createJoinToken({ host: 'h1' }, 'operator:test');
  const r = await helloWithToken(h, 'h1', second.token);
  assert.equal(r.code, CLOSE_AUTH_FAILED);
  assert.match(r.message, /host h1 already has an identity/);
  assert.equal(h.controller.access.listJoinTokens().find((j) => j.id === second.id)?.state, 'valid');
});

test('revoking a host credential closes its live session at once and refuses the credential afterwards; a new token admits it again', async (t) => {
  const h = await startHarness(t);
  const { token } = await h.controller.access.createJoinToken({ host: 'h1' }, 'operator:test');
  const credentials: string[] = [];
  const d = h.daemon('h1', { noCert: true, joinToken: token, onCredential: (c) => credentials.push(c) });
  d.agent.start();
  await waitFor(() => d.agent.state === 'connected' && h.controller.model.getHost('h1')?.state === 'up', 'h1 joined');
  const connects = d.agent.stats.connects;

  const revoked = await h.controller.access.revokeHostIdentity('h1', 'operator:test');
  assert.deepEqual(revoked, { host: 'h1', credential: true, certificates: 0, sessionClosed: true });
  // Closed at once: the controller no longer has a session, and the agent's redials (with its credential) are refused.
  assert.equal(h.controller.loop.appliedVersions('h1'), undefined);
  await waitFor(() => d.agent.stats.lastError?.message.includes('host credential not valid for h1') === true, 'the credential refused on redial');
  assert.equal(d.agent.stats.connects, connects);
  await waitFor(() => h.controller.model.getHost('h1')?.state === 'down', 'h1 down');
  assert.deepEqual(h.controller.access.listHostIdentities(), []);
  await d.agent.close();

  // Revoked, the host may join again with a new token.
  const again = await h.controller.access.createJoinToken({ host: 'h1' }, 'operator:test');
  const back = h.daemon('h1', { noCert: true, joinToken: again.token, onCredential: (c) => credentials.push(c) });
  back.agent.start();
  await waitFor(() => back.agent.state === 'connected', 'h1 back with a new token');
  assert.equal(credentials.length, 2);
  assert.notEqual(credentials[0], credentials[1]);
});

test('revoking a certificate-authenticated host closes its session and refuses that certificate afterwards', async (t) => {
  const h = await startHarness(t);
  const d = h.daemon('h2');
  d.agent.start();
  await waitFor(() => d.agent.state === 'connected', 'h2 connected with its certificate');
  const revoked = await h.controller.access.revokeHostIdentity('h2', 'operator:test');
  assert.deepEqual(revoked, { host: 'h2', credential: false, certificates: 1, sessionClosed: true });
  await waitFor(() => d.agent.stats.lastError?.message.includes('client certificate revoked') === true, 'the revoked certificate refused on redial');
  assert.notEqual(d.agent.state, 'connected');
  const listed = h.controller.access.listHostIdentities();
  assert.equal(listed.length, 1);
  assert.equal(listed[0]?.kind, 'certificate');
  assert.notEqual(listed[0]?.revokedAt, null);
  // Nothing left to revoke: a clear not-found.
  await assert.rejects(h.controller.access.revokeHostIdentity('h2', 'operator:test'), { code: 'VNET_ERR_NOT_FOUND' });
  await assert.rejects(h.controller.access.revokeHostIdentity('nosuch', 'operator:test'), { code: 'VNET_ERR_NOT_FOUND' });
});
