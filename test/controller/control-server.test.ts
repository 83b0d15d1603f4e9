import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { factsToWire } from '../../src/control/control-protocol.ts';
import { createJoinToken } from '../../src/controller/join-tokens.ts';
import { metricValue, startHarness } from './fixtures/controller-harness.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { testPki } from './fixtures/test-pki.ts';
import { hello, rawClient } from './fixtures/raw-control-client.ts';
import { waitFor } from '../helpers/wait.ts';
import { busyBeforePing, stallAtNextPing, type HeartbeatTime } from '../helpers/ping-stall.ts';
import { stallAtTurnEnd } from '../helpers/loop-stall.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { LogTail, withContext } from '../helpers/failure-context.ts';

test('a daemon whose certificate is signed by another CA, with no token, is refused', async (t) => {
  const h = await startHarness(t);
  const { agent } = h.daemon('h1', { rogue: true });
  agent.start();
  await waitFor(() => agent.stats.lastError !== undefined, 'error reply');
  assert.equal(agent.stats.lastError?.code, 'VNET_ERR_CONTROL_AUTH');
  assert.match(agent.stats.lastError!.message, /client certificate refused/);
  assert.notEqual(agent.state, 'connected');
  assert.ok(await metricValue(h.registry, 'vnet_control_auth_failures_total', { reason: 'auth' }) >= 1);
  assert.equal(h.controller.model.getHost('h1')?.state, 'down');
});

test('a certificate for one host cannot say hello as another', async (t) => {
  const h = await startHarness(t);
  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h2'));
  assert.equal(await c.closed, 4003);
  assert.equal(c.received[0]?.['code'], 'VNET_ERR_CONTROL_AUTH');
  assert.equal(c.received[0]?.['fatal'], true);
});

test('a join token admits a daemon once; the credential it earns admits it again; the token does not', async (t) => {
  const h = await startHarness(t);
  const { token } = h.controller.createJoinToken({ host: 'h1', ttlMs: 60_000 });
  const credentials: string[] = [];
  const first = h.daemon('h1', { noCert: true, joinToken: token, onCredential: (c) => credentials.push(c) });
  first.agent.start();
  await waitFor(() => first.agent.state === 'connected', 'joined with token');
  assert.equal(credentials.length, 1);
  assert.equal(await metricValue(h.registry, 'vnet_control_sessions_opened_total', { auth: 'join-token' }), 1);
  await first.agent.close();

  // The same token again (another daemon process for h1, without the credential): refused as used.
  const reuse = h.daemon('h1', { noCert: true, joinToken: token });
  reuse.agent.start();
  await waitFor(() => reuse.agent.stats.lastError !== undefined, 'reuse refused');
  assert.equal(reuse.agent.stats.lastError?.code, 'VNET_ERR_JOIN_TOKEN');
  assert.match(reuse.agent.stats.lastError!.message, /already used by h1/);
  await reuse.agent.close();

  // With the credential it gets back in.
  const again = h.daemon('h1', { noCert: true, credential: credentials[0]! });
  again.agent.start();
  await waitFor(() => again.agent.state === 'connected', 'rejoined with credential');
  assert.equal(await metricValue(h.registry, 'vnet_control_sessions_opened_total', { auth: 'credential' }), 1);
  assert.equal(await metricValue(h.registry, 'vnet_control_auth_failures_total', { reason: 'token-used' }) >= 1, true);
});

test('unknown, expired and wrong-host tokens, and a wrong credential, are refused with their reason', async (t) => {
  const h = await startHarness(t);
  // A token created ten seconds ago that lived for one.
  const expired = createJoinToken(h.controller.store, { host: 'h1', ttlMs: 1000 }, Date.now() - 10_000);
  const other = h.controller.createJoinToken({ host: 'h2' });
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ auth: { joinToken: 'vnetj_this-token-does-not-exist' } }, /not recognised/],
    [{ auth: { joinToken: expired.token } }, /expired/],
    [{ auth: { joinToken: other.token } }, /is for host h2, not h1/],
    [{ auth: { credential: 'vnetc_wrong-credential-here' } }, /credential not valid/],
    [{}, /no valid client certificate/],
  ];
  for (const [extra, why] of cases) {
    const c = await rawClient(h, undefined);
    c.ws.send(hello('h1', extra));
    assert.equal(await c.closed, 4003, `closed for ${JSON.stringify(extra)}`);
    assert.match(String(c.received[0]?.['message']), why);
  }
  assert.equal(await metricValue(h.registry, 'vnet_control_auth_failures_total'), cases.length);
  assert.equal(h.controller.model.getHost('h1')?.state, 'down');
});

test('a hello from a host not in the deployment, or in another protocol version, is refused', async (t) => {
  const h = await startHarness(t);
  const c1 = await rawClient(h, testPki().host('stranger'));
  c1.ws.send(hello('stranger'));
  assert.equal(await c1.closed, 4003);
  assert.equal(c1.received[0]?.['code'], 'VNET_ERR_UNKNOWN_HOST');
  const c2 = await rawClient(h, testPki().host('h1'));
  c2.ws.send(JSON.stringify({ ...JSON.parse(hello('h1')), protocol: 99 }));
  assert.equal(await c2.closed, 4000);
  assert.equal(c2.received[0]?.['code'], 'VNET_ERR_CONTROL_PROTOCOL_VERSION');
});

test('a daemon the controller refuses (unknown host) stops dialling and says why, once', async (t) => {
  const h = await startHarness(t);
  const refusals: Array<{ code: string; message: string }> = [];
  const { agent } = h.daemon('stranger', { onRefused: (r) => refusals.push(r) });
  agent.start();
  await waitFor(() => refusals.length === 1, 'the refusal');
  assert.equal(refusals[0]?.code, 'VNET_ERR_UNKNOWN_HOST');
  assert.match(refusals[0]!.message, /"stranger" is not in the deployment/);
  assert.equal(agent.state, 'closed');
  assert.deepEqual(agent.refusal, refusals[0]);
  assert.equal(await metricValue(h.registry, 'vnet_control_auth_failures_total', { reason: 'unknown-host' }), 1);
});

test('malformed messages before hello are refused and the socket closed', async (t) => {
  const h = await startHarness(t);
  for (const bad of ['garbage', JSON.stringify({ type: 'traffic', seq: 1, snapshot: { startMs: 0, endMs: 1, entries: [] } }), Buffer.from([0xde, 0xad, 0xbe, 0xef])]) {
    const c = await rawClient(h, testPki().host('h1'));
    c.ws.send(bad);
    assert.equal(await c.closed, 4000);
    assert.equal(c.received[0]?.['type'], 'error');
    assert.equal(c.received[0]?.['fatal'], true);
  }
});

test('malformed messages in a session get an error reply and are counted; the controller keeps serving everyone', async (t) => {
  const h = await startHarness(t, { maxMessageBytes: 4096 });
  const other = h.daemon('h2', { vms: [{ mac: '02:00:00:00:00:02' }] });
  other.agent.start();
  await waitFor(() => other.agent.state === 'connected', 'h2 connected');

  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h1'));
  await waitFor(() => c.received.some((m) => m['type'] === 'welcome'), 'welcome');
  const bad: Array<string | Buffer> = [
    'not json at all {{{',
    Buffer.from('00ff13370000deadbeef', 'hex'),
    JSON.stringify({ type: 'traffic', seq: -1, snapshot: { startMs: 0, endMs: 1, entries: [] } }),
    JSON.stringify({ type: 'traffic', seq: 1, snapshot: { startMs: 0, endMs: 1, entries: [{ src: 'zz', dst: '02:00:00:00:00:01', frames: 1, bytes: 1 }] } }),
    JSON.stringify({ type: 'ack', kind: 'rules', version: 1, ok: true, extra: 1 }),
    JSON.stringify({ type: 'launch-missiles' }),
    JSON.stringify([1, 2, 3]),
    JSON.stringify({ type: 'facts', facts: { ...factsToWire(new FakeDaemon('h2').facts()) } }), // another host's facts
    JSON.stringify({ type: 'event', event: { type: 'port-removed', name: 'x'.repeat(5000), reason: '' } }), // oversize (> 4096)
  ];
  for (const m of bad) c.ws.send(m);
  await waitFor(() => c.received.filter((m) => m['type'] === 'error').length === bad.length, 'one error per bad message');
  const errors = c.received.filter((m) => m['type'] === 'error');
  assert.ok(errors.every((e) => e['fatal'] === false));
  assert.deepEqual(errors.map((e) => e['code']), [
    'VNET_ERR_CONTROL_MESSAGE', 'VNET_ERR_CONTROL_MESSAGE', 'VNET_ERR_CONTROL_MESSAGE', 'VNET_ERR_CONTROL_MESSAGE',
    'VNET_ERR_CONTROL_MESSAGE', 'VNET_ERR_CONTROL_MESSAGE', 'VNET_ERR_CONTROL_MESSAGE', 'VNET_ERR_CONTROL_STATE', 'VNET_ERR_CONTROL_MESSAGE_TOO_LARGE',
  ]);
  assert.match(String(errors[3]!['message']), /snapshot\.entries\[0\]\.src/);
  assert.equal(await metricValue(h.registry, 'vnet_control_malformed_messages_total'), bad.length);
  assert.equal(c.ws.readyState, WebSocket.OPEN);
  assert.equal(h.controller.model.getHost('h1')?.state, 'up');

  // Beyond the hard cap (4 × the limit) the WebSocket layer closes that one connection (1009), counted.
  c.ws.send('x'.repeat(4 * 4096 + 10));
  assert.equal(await c.closed, 1009);
  await waitFor(() => h.controller.model.getHost('h1')?.state === 'down', 'h1 down');

  // Meanwhile the other daemon is still served.
  await h.controller.model.addFastPathLink('h2', 'h1', 'still serving', 'operator:admin');
  await waitFor(() => other.daemon.links.some((l) => l.peer === 'h1'), 'h2 still receives pushes');
  assert.ok(h.controller.store.integrityCheck().includes('ok'));
});

test('a second session of one host replaces the first', async (t) => {
  const h = await startHarness(t);
  const c1 = await rawClient(h, testPki().host('h1'));
  c1.ws.send(hello('h1'));
  await waitFor(() => c1.received.some((m) => m['type'] === 'welcome'), 'first welcome');
  const c2 = await rawClient(h, testPki().host('h1'));
  c2.ws.send(hello('h1'));
  assert.equal(await c1.closed, 4001);
  await waitFor(() => c2.received.some((m) => m['type'] === 'welcome'), 'second welcome');
  assert.equal(h.controller.model.getHost('h1')?.state, 'up');
  c2.ws.close();
  await waitFor(() => h.controller.model.getHost('h1')?.state === 'down', 'down after the second closes');
});

test('certificates made by `vnet certs` (src/dataplane/certs.ts) work end to end: controller by name, host by CN', async (t) => {
  const { createCa, issueHostCertificate } = await import('../../src/pki/certs.ts');
  const { startController } = await import('../../src/controller/runtime.ts');
  const { ControllerAgent } = await import('../../src/dataplane/controller-agent.ts');
  const { testDeployment } = await import('./fixtures/controller-harness.ts');
  const { Registry } = await import('prom-client');
  const { silentLogger } = await import('../../src/common/logger.ts');
  const { realClock } = await import('../../src/common/clock.ts');
  const ca = await createCa();
  const own = await issueHostCertificate(ca, 'controller');
  const h1 = await issueHostCertificate(ca, 'h1');
  const controller = await startController({ logger: silentLogger(), registry: new Registry(), clock: realClock }, {
    deployment: testDeployment(), dbPath: ':memory:', control: { host: '127.0.0.1', port: 0, tls: { ...own, ca: ca.cert } },
  });
  t.after(() => controller.close());
  const daemon = new FakeDaemon('h1');
  const agent = new ControllerAgent({ daemon, logger: silentLogger(), clock: realClock }, {
    url: `wss://127.0.0.1:${controller.controlPort}/control`,
    // The controller's certificate names it "controller", not 127.0.0.1: check it by that name.
    tls: { ca: ca.cert, ...h1, servername: 'controller' },
  });
  t.after(() => agent.close());
  agent.start();
  await waitFor(() => agent.state === 'connected', 'connected with certs.ts certificates');
  assert.equal(controller.model.getHost('h1')?.state, 'up');
});

test('a connection that says nothing is closed when the hello timeout passes', async (t) => {
  const h = await startHarness(t, { helloTimeoutMs: 100 });
  const c = await rawClient(h, testPki().host('h1'));
  assert.equal(await c.closed, 4008);
  assert.equal(c.received[0]?.['code'], 'VNET_ERR_CONTROL_STATE');
  assert.equal(c.received[0]?.['fatal'], false, 'nothing against the daemon: it dials again');
  assert.equal(await metricValue(h.registry, 'vnet_control_malformed_messages_total', { reason: 'hello-timeout' }), 1);
});

test('a daemon that stops answering pings is cut off and marked down', async (t) => {
  const h = await startHarness(t, { pingIntervalMs: 50 });
  const c = await rawClient(h, testPki().host('h1'), false);
  c.ws.send(hello('h1'));
  await waitFor(() => c.received.some((m) => m['type'] === 'welcome'), 'welcome');
  assert.equal(h.controller.model.getHost('h1')?.state, 'up');
  assert.equal(await c.closed, 1006);
  await waitFor(() => h.controller.model.getHost('h1')?.state === 'down', 'h1 down');
});

/** Acknowledge the links and rules pushed, as a daemon does: the controller pushes nothing again, so nothing is queued toward the client at a beat (a connection with data draining toward it is not judged). */
function acknowledgePushes(ws: WebSocket): void {
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { type?: string; version?: number };
    const kind = m.type === 'set-links' ? 'links' : m.type === 'set-rules' ? 'rules' : undefined;
    if (kind !== undefined && typeof m.version === 'number') ws.send(JSON.stringify({ type: 'ack', kind, version: m.version, ok: true }));
  });
}

/**
 * A daemon's session (a raw client that acknowledges what it is pushed) on a controller that pings every
 * 500 ms of a manual clock (moved by the ping-stall helpers), its logs kept; `body` gets the client's end,
 * and a failure's message has the controller's last log lines. Afterwards the session is open, the host up.
 */
async function heartbeatTest(t: TestContext, body: (ws: WebSocket, time: HeartbeatTime) => Promise<string>): Promise<void> {
  const logs = new LogTail(100, 'debug');
  const time = { clock: new ManualClock(), intervalMs: 500 };
  const h = await startHarness(t, { pingIntervalMs: time.intervalMs }, { logger: logs.logger, clock: time.clock });
  await withContext(async () => {
    const c = await rawClient(h, testPki().host('h1'));
    acknowledgePushes(c.ws);
    c.ws.send(hello('h1'));
    // A bound for a TLS handshake on a loaded machine (this process may be starved): the wait is not what is tested.
    await waitFor(() => c.received.some((m) => m['type'] === 'welcome'), 'welcome', 60_000);
    const seen = await body(c.ws, time);
    assert.equal(c.ws.readyState, c.ws.OPEN, `the session survived: ${seen}`);
    assert.equal(h.controller.model.getHost('h1')?.state, 'up', seen);
  }, () => `--- the controller's last log lines:\n${logs.tail(20)}`);
}

test('a controller whose own loop stalls past the ping interval does not cut off daemons whose pongs wait unread', async (t) => {
  // The controller is busy for four ping intervals just after the client answered a ping.
  await heartbeatTest(t, (ws, time) => stallAtNextPing(ws, time, 2000));
});

test('a controller busy for a little over a ping interval, beat after beat, does not cut off daemons whose pongs wait unread', async (t) => {
  // Busy for 1.2 intervals right after each of six pings in a row: the next beat is due but not late
  // (no spare), and the pong to its ping is in the socket, not yet read, when the beat's timer runs.
  await heartbeatTest(t, (ws, time) => stallAtNextPing(ws, time, 600, 6));
});

test('a controller busy between a beat\'s timer and its pings gives daemons an interval to answer them before it judges', async (t) => {
  // Busy for 1.2 intervals after a beat's timer ran, before its reads: its pings leave when the next beat would be due.
  await heartbeatTest(t, (ws, time) => busyBeforePing(ws, time, 600));
});

test('a hello sent before the deadline but still unread when a busy controller\'s deadline timer fires is welcomed, not refused', async (t) => {
  // The deadline is on the manual clock; the listener's TLS handshake backstop (a second past it) is on
  // the real one, so the deadline is the default's, not a short one a starved process could overrun.
  const helloTimeoutMs = 10_000;
  const clock = new ManualClock();
  const h = await startHarness(t, { helloTimeoutMs }, { clock });
  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h1'));
  // The controller busy past the deadline right after the hello was sent: when the loop turns again,
  // the deadline's timer runs before the socket holding the hello is read.
  let stalled = false;
  stallAtTurnEnd(clock, helloTimeoutMs + 1000, () => { stalled = true; });
  await waitFor(() => c.received.length > 0, 'an answer', 60_000);
  assert.ok(stalled, 'the deadline fell due');
  assert.equal(c.received[0]?.['type'], 'welcome', JSON.stringify(c.received[0]));
  await waitFor(() => h.controller.model.getHost('h1')?.state === 'up', 'h1 up');
});
