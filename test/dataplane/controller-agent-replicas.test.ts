import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { NOT_LEADER_CODE } from '../../src/control/control-protocol.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';
import { fakeController, welcome } from './fixtures/fake-controller.ts';

// A daemon given the control URLs of a replicated controller's replicas (docs/ha.md) finds the leader.

type FakeCtl = Awaited<ReturnType<typeof fakeController>>;

/** A replica that does not lead: answers every hello with the not-the-leader refusal. */
function refuseHellos(t: { after(fn: () => void): void }, ctl: FakeCtl, leader?: string): void {
  let seen = 0;
  const timer = setInterval(() => {
    for (const c of ctl.conns.slice(seen)) {
      if (c.received.length === 0) return;
      seen++;
      c.ws.send(JSON.stringify({ type: 'error', code: NOT_LEADER_CODE, message: 'not the leader', fatal: true, ...(leader !== undefined ? { leader } : {}) }));
      c.ws.close(1013, 'not the leader');
    }
  }, 5);
  t.after(() => clearInterval(timer));
}

function agentOn(t: { after(fn: () => Promise<void>): void }, urls: string[], clock: ManualClock): { agent: ControllerAgent } {
  const pki = testPki();
  const agent = new ControllerAgent({ daemon: new FakeDaemon('h1'), logger: silentLogger(), clock, random: () => 0 }, {
    urls, tls: { ca: pki.ca, ...pki.host('h1') }, backoff: { initialMs: 1000, maxMs: 1000 },
  });
  t.after(() => agent.close());
  return { agent };
}

/** Until the replica has had a connection (past `before`) and the agent, refused, waits to redial. */
async function refusedBy(agent: ControllerAgent, conns: () => number, before: number): Promise<void> {
  await waitFor(() => conns() > before && agent.state === 'backoff', 'refused and closed');
}

test('a replica that does not lead names the leader: the agent dials it next, skipping the rest of its list', async (t) => {
  const [a, b, c] = [await fakeController(t), await fakeController(t), await fakeController(t)];
  refuseHellos(t, a, c.url);
  const clock = new ManualClock();
  const { agent } = agentOn(t, [a.url, b.url, c.url], clock);
  agent.start();
  await refusedBy(agent, () => a.conns.length, 0);
  clock.advance(0);
  assert.equal(agent.state, 'connecting', 'redialled at once, no backoff');
  await waitFor(() => c.conns[0]?.received.length === 1, 'the hello to the named leader');
  c.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'welcomed by the leader');
  assert.equal(agent.url, c.url);
  assert.equal(b.conns.length, 0, 'the replica in between was not dialled');
  assert.equal(agent.refusal, undefined, 'not a refusal for good');
});

test('with no leader named the agent tries the next address at once, and backs off only after the whole list', async (t) => {
  const [a, b] = [await fakeController(t), await fakeController(t)];
  refuseHellos(t, a);
  refuseHellos(t, b);
  const clock = new ManualClock();
  const { agent } = agentOn(t, [a.url, b.url], clock);
  agent.start();
  await refusedBy(agent, () => a.conns.length, 0);
  clock.advance(0);
  assert.equal(agent.state, 'connecting', 'the next address at once');
  await refusedBy(agent, () => b.conns.length, 0);
  assert.equal(agent.url, b.url);
  // The whole list refused: the backoff (500 ms with no jitter) before the first address again.
  clock.advance(499);
  assert.equal(agent.state, 'backoff', 'waiting out the backoff');
  clock.advance(1);
  assert.equal(agent.state, 'connecting');
  await waitFor(() => a.conns.length === 2, 'the first address dialled again');
  assert.equal(agent.url, a.url);
  assert.equal(agent.stats.lastError?.code, NOT_LEADER_CODE);
});

test('a leader that goes away: the agent dials the next replica at once, and the one that welcomes it is used', async (t) => {
  const [a, b] = [await fakeController(t), await fakeController(t)];
  const clock = new ManualClock();
  const { agent } = agentOn(t, [a.url, b.url], clock);
  agent.start();
  await waitFor(() => a.conns[0]?.received.length === 1, 'hello to the first');
  a.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected to the first');
  a.conns[0]!.ws.terminate();
  await waitFor(() => agent.state === 'backoff', 'channel lost');
  clock.advance(0);
  await waitFor(() => b.conns[0]?.received.length === 1, 'hello to the second at once');
  b.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected to the second');
  assert.equal(agent.url, b.url);
  assert.equal(agent.stats.connects, 2);
});
