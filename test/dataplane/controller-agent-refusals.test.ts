/**
 * What the agent does when the controller cuts its connection before the
 * welcome: a refusal of the daemon (authentication, a protocol error) stops
 * it for good; a connection cut because its hello came too late (4008) or a
 * newer one took its pending slot (4029) — a controller busy with a mass
 * connect — is dialled again, even when an older controller marked that
 * error fatal. (Four of 600 daemons of a SQLite scale run stopped for good on
 * those and were never welcomed.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';
import { fakeController, welcome } from './fixtures/fake-controller.ts';

type FakeCtl = Awaited<ReturnType<typeof fakeController>>;

function agentOn(t: { after(fn: () => Promise<void>): void }, url: string, clock: ManualClock): ControllerAgent {
  const pki = testPki();
  const agent = new ControllerAgent({ daemon: new FakeDaemon('h1'), logger: silentLogger(), clock, random: () => 0 }, {
    urls: [url], tls: { ca: pki.ca, ...pki.host('h1') }, backoff: { initialMs: 1000, maxMs: 1000 },
  });
  t.after(() => agent.close());
  return agent;
}

/** Connection `i`'s hello answered with `error {code, fatal}` and the close `closeCode`. */
async function refuseHello(ctl: FakeCtl, i: number, code: string, fatal: boolean, closeCode: number): Promise<void> {
  await waitFor(() => ctl.conns[i]?.received.length === 1, `hello ${i + 1}`);
  const ws = ctl.conns[i]!.ws;
  ws.send(JSON.stringify({ type: 'error', code, message: `refused (${closeCode})`, fatal }));
  ws.close(closeCode, code);
}

for (const [closeCode, code, what] of [
  [4008, 'VNET_ERR_CONTROL_STATE', 'no hello in time'],
  [4029, 'VNET_ERR_CONTROL_PENDING_DROPPED', 'evicted while waiting for its hello'],
] as const) {
  for (const fatal of [false, true]) {
    test(`a hello cut off with ${closeCode} (${what}, fatal: ${fatal}) is dialled again after the backoff, and welcomed`, async (t) => {
      const ctl = await fakeController(t);
      const clock = new ManualClock();
      const agent = agentOn(t, ctl.url, clock);
      agent.start();
      await refuseHello(ctl, 0, code, fatal, closeCode);
      await waitFor(() => agent.state === 'backoff', 'closed, waiting to dial again');
      assert.equal(agent.refusal, undefined, 'not a refusal for good');
      clock.advance(1000);
      await waitFor(() => ctl.conns[1]?.received.length === 1, 'the hello dialled again');
      ctl.conns[1]!.ws.send(welcome('h1'));
      await waitFor(() => agent.state === 'connected', 'welcomed the second time');
      assert.equal(agent.stats.lastError?.code, code);
    });
  }
}

for (const [closeCode, code] of [[4003, 'VNET_ERR_CONTROL_AUTH'], [4000, 'VNET_ERR_CONTROL_STATE']] as const) {
  test(`a hello refused with ${closeCode} (${code}) stops the agent: not dialled again`, async (t) => {
    const ctl = await fakeController(t);
    const clock = new ManualClock();
    const refused: string[] = [];
    const pki = testPki();
    const agent = new ControllerAgent({ daemon: new FakeDaemon('h1'), logger: silentLogger(), clock, random: () => 0 }, {
      urls: [ctl.url], tls: { ca: pki.ca, ...pki.host('h1') }, backoff: { initialMs: 1000, maxMs: 1000 }, onRefused: (r) => refused.push(r.code),
    });
    t.after(() => agent.close());
    agent.start();
    await refuseHello(ctl, 0, code, true, closeCode);
    await waitFor(() => agent.state === 'closed', 'the agent stopped');
    assert.equal(agent.refusal?.code, code);
    assert.deepEqual(refused, [code]);
    clock.advance(60_000);
    assert.equal(ctl.conns.length, 1, 'never dialled again');
  });
}
