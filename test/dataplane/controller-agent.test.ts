import { test, type TestContext } from 'node:test';
import type { WebSocket } from 'ws';
import assert from 'node:assert/strict';
import { ManualClock, realClock, type Clock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ControllerAgent, NO_MIGRATION_AGENT_CODE } from '../../src/dataplane/controller-agent.ts';
import type { MigrationCommand, MigrationControl, MigrationReport } from '../../src/control/migration-control.ts';
import { CONTROL_PROTOCOL_VERSION } from '../../src/control/control-protocol.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';
import { busyBeforePing, stallAtNextPing, type HeartbeatTime } from '../helpers/ping-stall.ts';
import { stallAtTurnEnd } from '../helpers/loop-stall.ts';
import { LogTail, withContext } from '../helpers/failure-context.ts';
import { fakeController, welcome } from './fixtures/fake-controller.ts';

function agentFor(t: { after(fn: () => Promise<void>): void }, url: string, daemon: FakeDaemon, extra: Record<string, unknown> = {}, migrations?: MigrationControl, logger = silentLogger(), clock: Clock = realClock): ControllerAgent {
  const pki = testPki();
  const agent = new ControllerAgent({ daemon, logger, clock, migrations }, { url, tls: { ca: pki.ca, ...pki.host(daemon.hostId) }, backoff: { initialMs: 10, maxMs: 50 }, ...extra });
  t.after(() => agent.close());
  return agent;
}


test('the agent says hello with the daemon facts, applies pushes and acknowledges them by version', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1', { vms: [{ mac: '02:00:00:00:00:01', ip: '10.0.0.1' }], listen: { transport: 'tcp', host: '127.0.0.1', port: 7002 } });
  const agent = agentFor(t, ctl.url, daemon, { joinToken: 'vnetj_0123456789abcdef' });
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const hello = ctl.conns[0]!.received[0]!;
  assert.equal(hello['type'], 'hello');
  assert.equal(hello['protocol'], CONTROL_PROTOCOL_VERSION);
  assert.equal(hello['hostId'], 'h1');
  assert.deepEqual(hello['auth'], { joinToken: 'vnetj_0123456789abcdef' });
  assert.equal((hello['facts'] as { ports: Array<{ mac: string }> }).ports[0]!.mac, '02:00:00:00:00:01');
  const ws = ctl.conns[0]!.ws;
  ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  ws.send(JSON.stringify({ type: 'set-links', version: 3, links: [{ peer: 'h2', address: { transport: 'tcp', host: '127.0.0.1', port: 7003 }, reason: 'r', dial: true }] }));
  ws.send(JSON.stringify({ type: 'set-rules', version: 4, rules: [{ id: 'x', priority: 100, src: 'any', dst: '02:00:00:00:00:02', action: { link: 'hub' } }] }));
  await waitFor(() => ctl.conns[0]!.received.filter((m) => m['type'] === 'ack').length === 2, 'two acks');
  assert.deepEqual(ctl.conns[0]!.received.filter((m) => m['type'] === 'ack'), [
    { type: 'ack', kind: 'links', version: 3, ok: true },
    { type: 'ack', kind: 'rules', version: 4, ok: true },
  ]);
  assert.deepEqual([daemon.linksVersion, daemon.rulesVersion], [3, 4]);
  assert.equal(daemon.links[0]!.dial, true);
});

test('a change the daemon refuses is acknowledged with ok: false and the error code', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  daemon.failRules = Object.assign(new Error('rule 1: bad MAC'), { code: 'VNET_ERR_RULE' });
  const agent = agentFor(t, ctl.url, daemon);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  ctl.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  ctl.conns[0]!.ws.send(JSON.stringify({ type: 'set-rules', version: 7, rules: [] }));
  await waitFor(() => ctl.conns[0]!.received.some((m) => m['type'] === 'ack'), 'nack');
  assert.deepEqual(ctl.conns[0]!.received.find((m) => m['type'] === 'ack'), { type: 'ack', kind: 'rules', version: 7, ok: false, error: { code: 'VNET_ERR_RULE', message: 'rule 1: bad MAC' } });
  assert.equal(daemon.rulesVersion, 0);
});

test('traffic and facts are reported every update period, with growing seq', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  daemon.addTraffic({ src: 0x020000000001, dst: 0x020000000002, frames: 2, bytes: 128 });
  ctl.conns[0]!.ws.send(welcome('h1', 20));
  await waitFor(() => ctl.conns[0]!.received.filter((m) => m['type'] === 'traffic').length >= 3, 'three reports');
  const traffic = ctl.conns[0]!.received.filter((m) => m['type'] === 'traffic');
  assert.deepEqual(traffic.slice(0, 3).map((m) => m['seq']), [1, 2, 3]);
  assert.deepEqual((traffic[0]!['snapshot'] as { entries: unknown[] }).entries, [{ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', frames: 2, bytes: 128 }]);
  assert.ok(ctl.conns[0]!.received.some((m) => m['type'] === 'facts'));
});

test('malformed messages from the controller are counted and skipped; the channel stays up', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const ws = ctl.conns[0]!.ws;
  ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  ws.send('{{{');
  ws.send(Buffer.from([1, 2, 3]));
  ws.send(JSON.stringify({ type: 'set-rules', version: 1, rules: [{ id: 'x', priority: 1, src: 'any', dst: 'nope', action: 'flood' }] }));
  ws.send(JSON.stringify({ type: 'set-links', version: 'two', links: [] }));
  ws.send(JSON.stringify({ type: 'set-rules', version: 2, rules: [] }));
  await waitFor(() => daemon.rulesVersion === 2, 'the good message after the bad ones applied');
  assert.equal(agent.stats.malformed, 4);
  assert.equal(agent.state, 'connected');
  assert.equal(daemon.applied.length, 1);
});

test('when the channel drops the agent keeps the daemon state and redials with backoff, reporting its versions', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  ctl.conns[0]!.ws.send(welcome('h1'));
  ctl.conns[0]!.ws.send(JSON.stringify({ type: 'set-rules', version: 5, rules: [{ id: 'x', priority: 1, src: 'any', dst: '02:00:00:00:00:02', action: 'drop' }] }));
  await waitFor(() => daemon.rulesVersion === 5, 'rules applied');
  ctl.conns[0]!.ws.terminate();
  await waitFor(() => ctl.conns.length === 2 && ctl.conns[1]!.received.length === 1, 'redialled and said hello again');
  assert.equal(daemon.rules.length, 1, 'rules kept while away');
  const facts = ctl.conns[1]!.received[0]!['facts'] as { rulesVersion: number };
  assert.equal(facts.rulesVersion, 5);
  ctl.conns[1]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected again');
  assert.equal(agent.stats.disconnects, 1);
  assert.equal(agent.stats.connects, 2);
});

test('daemon events are forwarded with fresh facts', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  ctl.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  daemon.addPort('vm9', '02:00:00:00:00:09');
  await waitFor(() => ctl.conns[0]!.received.some((m) => m['type'] === 'event'), 'event');
  const ev = ctl.conns[0]!.received.find((m) => m['type'] === 'event')!['event'] as { type: string; port: { mac: string } };
  assert.equal(ev.type, 'port-added');
  assert.equal(ev.port.mac, '02:00:00:00:00:09');
  await waitFor(() => ctl.conns[0]!.received.some((m) => m['type'] === 'facts'), 'facts after the event');
});

test('after close() the agent does not redial', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon);
  const states: string[] = [];
  agent.onStateChange((s) => states.push(s));
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  ctl.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  await agent.close();
  assert.equal(agent.state, 'closed');
  assert.deepEqual(states, ['connecting', 'connected', 'closed']);
  // Closed for good: no backoff timer is left that could dial again.
  assert.equal(ctl.conns.length, 1);
});

test('a controller that stops answering pings is cut off and redialled', async (t) => {
  const ctl = await fakeController(t, { autoPong: false });
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon, { keepaliveMs: 50 });
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  ctl.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  // The controller is silent from here on: no pong, no message.
  await waitFor(() => ctl.conns.length === 2, 'redialled after the silence', 30_000);
  assert.equal(agent.stats.disconnects, 1);
});

/**
 * An agent welcomed by a fake controller, its keepalive every 500 ms of a manual clock (moved by the
 * ping-stall helpers), its logs kept; `body` gets the controller's end of the channel, and a failure's
 * message says the agent's state and last log lines. Afterwards the agent is connected, never cut.
 */
async function keepaliveTest(t: TestContext, body: (ws: WebSocket, time: HeartbeatTime) => Promise<string>): Promise<void> {
  const ctl = await fakeController(t);
  const logs = new LogTail(100, 'debug');
  const time = { clock: new ManualClock(), intervalMs: 500 };
  const agent = agentFor(t, ctl.url, new FakeDaemon('h1'), { keepaliveMs: time.intervalMs }, undefined, logs.logger, time.clock);
  await withContext(async () => {
    agent.start();
    // Bounds for a TLS handshake on a loaded machine (this process may be starved): the waits are not what is tested.
    await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello', 60_000);
    const conn = ctl.conns[0]!;
    conn.ws.send(welcome('h1'));
    await waitFor(() => agent.state === 'connected', 'connected', 60_000);
    const seen = await body(conn.ws, time);
    assert.equal(agent.state, 'connected', seen);
    assert.equal(agent.stats.disconnects, 0, seen);
    assert.equal(ctl.conns.length, 1, `no redial: ${seen}`);
  }, () => `agent ${agent.state}, ${JSON.stringify(agent.stats)}, ${ctl.conns.length} connections\n--- the agent's last log lines:\n${logs.tail(20)}`);
}

test('a daemon whose own loop stalls past the keepalive does not cut off a controller whose pong waits unread', async (t) => {
  // The daemon is busy for four keepalive intervals just after the controller answered a ping.
  await keepaliveTest(t, (ws, time) => stallAtNextPing(ws, time, 2000));
});

test('a daemon busy for a little over a keepalive interval, beat after beat, does not cut off a controller whose pongs wait unread', async (t) => {
  // Busy for 1.2 intervals right after each of six pings in a row: the next beat is due but not late
  // (no spare), and the pong to its ping is in the socket, not yet read, when the beat's timer runs.
  await keepaliveTest(t, (ws, time) => stallAtNextPing(ws, time, 600, 6));
});

test('a daemon busy between a keepalive beat and its ping gives the controller an interval to answer that ping before it judges', async (t) => {
  // Busy for 1.2 intervals after a beat's timer ran, before its reads: its ping leaves when the next beat would be due.
  await keepaliveTest(t, (ws, time) => busyBeforePing(ws, time, 600));
});

test('a daemon whose own loop is busy when its welcome deadline falls due does not cut off a controller whose welcome waits unread', async (t) => {
  // The deadline is on the manual clock; the WebSocket's opening handshake is bounded by the same value on
  // the real one, so it is the default's, not a short one a starved process could overrun.
  const welcomeTimeoutMs = 10_000;
  const clock = new ManualClock();
  let welcomed = false;
  const ctl = await fakeController(t, {
    onMessage: (conn, m) => {
      if (m['type'] !== 'hello' || welcomed) return;
      welcomed = true;
      conn.ws.send(welcome('h1'));
      // The daemon is busy past its welcome deadline: the deadline's timer runs while the welcome waits unread.
      stallAtTurnEnd(clock, welcomeTimeoutMs + 500);
    },
  });
  const logs = new LogTail(100, 'debug');
  const agent = agentFor(t, ctl.url, new FakeDaemon('h1'), { welcomeTimeoutMs }, undefined, logs.logger, clock);
  await withContext(async () => {
    agent.start();
    await waitFor(() => agent.state !== 'connecting', 'welcomed, or cut', 60_000);
    assert.ok(clock.now() > welcomeTimeoutMs, 'the deadline fell due');
    assert.equal(agent.state, 'connected');
    assert.equal(agent.stats.connects, 1);
    assert.equal(agent.stats.disconnects, 0);
    assert.equal(ctl.conns.length, 1, 'no redial');
  }, () => `agent ${agent.state}, ${JSON.stringify(agent.stats)}, ${ctl.conns.length} connections, clock at ${clock.now()} ms\n--- the agent's last log lines:\n${logs.tail(20)}`);
});

/** A scripted migration agent: records the commands, reports what the test says. */
class FakeMigrations implements MigrationControl {
  readonly commands: MigrationCommand[] = [];
  readonly #handlers = new Set<(r: MigrationReport) => void>();
  handle(command: MigrationCommand): void {
    this.commands.push(command);
    this.report({ type: 'migration', id: command.id, state: command.type === 'migrate-query' ? 'unknown' : 'prepared', ...(command.type === 'migrate-prepare' ? { address: { host: '127.0.0.1', port: 9000 } } : {}) });
  }
  onReport(handler: (r: MigrationReport) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }
  report(r: MigrationReport): void {
    for (const h of this.#handlers) h(r);
  }
}

const migrationsOf = (c: { received: Array<Record<string, unknown>> }): Array<Record<string, unknown>> => c.received.filter((m) => m['type'] === 'migration');
const prepare = { type: 'migrate-prepare', id: 'm1', vm: { mac: '02:00:00:00:00:0A', port: 'vm1' }, from: 'h2' };

test('migration commands go to the migration agent; its reports go to the controller', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const migrations = new FakeMigrations();
  const agent = agentFor(t, ctl.url, daemon, {}, migrations);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const ws = ctl.conns[0]!.ws;
  ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  ws.send(JSON.stringify(prepare));
  ws.send(JSON.stringify({ type: 'migrate-start', id: 'm2', vm: { mac: '02:00:00:00:00:0b', port: 'vm2' }, to: 'h3', address: { host: '10.0.0.3', port: 8000 }, rule: 'time-bound', deadlineMs: 5000 }));
  ws.send(JSON.stringify({ type: 'migrate-commit', id: 'm1' }));
  ws.send(JSON.stringify({ type: 'migrate-abort', id: 'm2', reason: 'operator' }));
  ws.send(JSON.stringify({ type: 'migrate-query', id: 'm3' }));
  ws.send(JSON.stringify({ type: 'migrate-start', id: 'm4', vm: { mac: '02:00:00:00:00:0b', port: 'vm2' }, to: 'h3', address: { host: '10.0.0.3', port: 8000 }, rule: 'no-such-rule' }));
  await waitFor(() => migrationsOf(ctl.conns[0]!).length === 5, 'five reports');
  assert.deepEqual(migrations.commands.map((c) => `${c.type} ${c.id}`), ['migrate-prepare m1', 'migrate-start m2', 'migrate-commit m1', 'migrate-abort m2', 'migrate-query m3']);
  assert.equal((migrations.commands[0] as { vm: { mac: string } }).vm.mac, '02:00:00:00:00:0a', 'the MAC as the decoder normalises it');
  assert.equal(agent.stats.malformed, 1, 'a command with an unknown rule is malformed');
  assert.deepEqual(migrationsOf(ctl.conns[0]!)[0], { type: 'migration', id: 'm1', state: 'prepared', address: { host: '127.0.0.1', port: 9000 } });
  assert.deepEqual(migrationsOf(ctl.conns[0]!).map((m) => m['state']), ['prepared', 'prepared', 'prepared', 'prepared', 'unknown']);
  assert.equal(agent.stats.migrationCommands, 5);
});

test('without a migration agent, migration commands are answered failed with a clear code', async (t) => {
  const ctl = await fakeController(t);
  const agent = agentFor(t, ctl.url, new FakeDaemon('h1'));
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  ctl.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  ctl.conns[0]!.ws.send(JSON.stringify(prepare));
  await waitFor(() => migrationsOf(ctl.conns[0]!).length === 1, 'the refusal');
  const r = migrationsOf(ctl.conns[0]!)[0]!;
  assert.equal(r['state'], 'failed');
  assert.equal(r['id'], 'm1');
  assert.equal((r['error'] as { code: string }).code, NO_MIGRATION_AGENT_CODE);
});

test('reports made while the channel is down are queued, bounded, and sent in order after the next welcome', async (t) => {
  const ctl = await fakeController(t);
  const migrations = new FakeMigrations();
  const agent = agentFor(t, ctl.url, new FakeDaemon('h1'), { maxQueuedReports: 4 }, migrations);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  // Not welcomed yet: everything waits.
  const progress = (n: number): MigrationReport => ({ type: 'migration', id: 'm1', state: 'progress', progress: { phase: 'memory', iteration: n, bytesSent: n, pagesLeft: 0, ramPages: 1, dirtyRate: 0, etaMs: null, elapsedMs: n } });
  migrations.report(progress(1));
  migrations.report({ type: 'migration', id: 'm1', state: 'paused' });
  migrations.report(progress(2));
  migrations.report(progress(3));
  migrations.report({ type: 'migration', id: 'm0', state: 'resumed', stats: { held: 1, flushed: 1, relayed: 0, lost: 0, announced: 2 } });
  migrations.report({ type: 'migration', id: 'm1', state: 'released', stats: { held: 3, flushed: 3, relayed: 0, lost: 0, announced: 0 } });
  assert.equal(migrationsOf(ctl.conns[0]!).length, 0);
  assert.equal(agent.stats.migrationReportsDropped, 2, 'two progress reports made room');
  ctl.conns[0]!.ws.terminate();
  await waitFor(() => ctl.conns.length === 2 && ctl.conns[1]!.received.length === 1, 'redialled');
  ctl.conns[1]!.ws.send(welcome('h1'));
  await waitFor(() => migrationsOf(ctl.conns[1]!).length === 4, 'the queue flushed');
  assert.deepEqual(migrationsOf(ctl.conns[1]!).map((m) => `${m['id']} ${m['state']}`), ['m1 paused', 'm1 progress', 'm0 resumed', 'm1 released']);
  assert.equal((migrationsOf(ctl.conns[1]!)[1]!['progress'] as { iteration: number }).iteration, 3);
  // Up again: reports go straight out.
  migrations.report({ type: 'migration', id: 'm5', state: 'ready' });
  await waitFor(() => migrationsOf(ctl.conns[1]!).length === 5, 'a live report');
  assert.equal(agent.stats.migrationReports, 5);
});

test('a migration report over the message limit even in parts is dropped and counted, not queued ahead of the next ones', async (t) => {
  const ctl = await fakeController(t);
  const migrations = new FakeMigrations();
  // 4 KiB: an ordinary report fits; one whose error message alone is 8 KiB does not, and a report is never split.
  const agent = agentFor(t, ctl.url, new FakeDaemon('h1'), { maxMessageBytes: 4096 }, migrations);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const huge: MigrationReport = { type: 'migration', id: 'm9', state: 'failed', error: { code: 'VNET_ERR_X', message: 'x'.repeat(8000) } };
  // While the channel is down the huge one is queued between two others; the welcome's flush drops it and sends the rest.
  migrations.report({ type: 'migration', id: 'm1', state: 'paused' });
  migrations.report(huge);
  migrations.report({ type: 'migration', id: 'm1', state: 'released', stats: { held: 0, flushed: 0, relayed: 0, lost: 0, announced: 0 } });
  ctl.conns[0]!.ws.send(welcome('h1'));
  await waitFor(() => migrationsOf(ctl.conns[0]!).length === 2, 'the two that fit');
  assert.deepEqual(migrationsOf(ctl.conns[0]!).map((m) => `${m['id']} ${m['state']}`), ['m1 paused', 'm1 released']);
  // Up: a huge one is dropped at once, and the next goes straight out.
  migrations.report(huge);
  migrations.report({ type: 'migration', id: 'm2', state: 'ready' });
  await waitFor(() => migrationsOf(ctl.conns[0]!).length === 3, 'the next report');
  assert.equal(migrationsOf(ctl.conns[0]!)[2]!['id'], 'm2');
  assert.equal(agent.stats.migrationReportsDropped, 2, 'both huge reports dropped');
  assert.equal(agent.stats.migrationReports, 3);
});

test('a rule set in parts is applied only whole; broken sequences are nacked and nothing of them applied; a newer version supersedes an incomplete one', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const agent = agentFor(t, ctl.url, daemon);
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const ws = ctl.conns[0]!.ws;
  ws.send(welcome('h1'));
  await waitFor(() => agent.state === 'connected', 'connected');
  const rule = (i: number): Record<string, unknown> => ({ id: `r${i}`, priority: 100, src: 'any', dst: `02:00:00:00:01:${(i % 256).toString(16).padStart(2, '0')}`, action: { link: 'hub' } });
  const part = (version: number, index: number, count: number, rules = [rule(index)]): string => JSON.stringify({ type: 'set-rules', version, rules, part: { index, count } });
  const acks = (): Array<Record<string, unknown>> => ctl.conns[0]!.received.filter((m) => m['type'] === 'ack');

  ws.send(part(5, 0, 3));
  ws.send(part(5, 1, 3));
  assert.deepEqual(daemon.applied, []);
  ws.send(part(5, 1, 3)); // overlap
  await waitFor(() => acks().length === 1, 'a nack for version 5');
  assert.deepEqual(acks()[0], { type: 'ack', kind: 'rules', version: 5, ok: false, error: { code: 'VNET_ERR_CONTROL_PARTS', message: 'rule set 5 part 2 of 3: expected part 3' } });
  ws.send(part(5, 2, 3)); // the rest of a dropped sequence
  await waitFor(() => acks().length === 2, 'a nack for the orphan part');

  ws.send(part(6, 0, 2));
  ws.send(JSON.stringify({ type: 'set-rules', version: 7, rules: [rule(70), rule(71)] }));
  await waitFor(() => acks().some((a) => a['version'] === 7), 'version 7 acknowledged');
  ws.send(part(6, 1, 2)); // stale: 7 has begun
  await waitFor(() => acks().length === 4, 'a nack for stale version 6');
  assert.equal(acks()[3]!['ok'], false);
  assert.deepEqual(daemon.applied, [{ kind: 'rules', version: 7 }]);
  assert.deepEqual(daemon.rules.map((r) => r.id), ['r70', 'r71']);
  assert.equal(agent.stats.partsDropped, 1);

  ws.send(part(8, 0, 2, [rule(1), rule(2)]));
  ws.send(part(8, 1, 2, [rule(3)]));
  await waitFor(() => daemon.rulesVersion === 8, 'version 8 applied whole');
  assert.deepEqual(daemon.rules.map((r) => r.id), ['r1', 'r2', 'r3']);
  // The acknowledgement follows the apply over the socket: wait for it to arrive.
  await waitFor(() => acks().length === 5, 'the acknowledgement of version 8');
  assert.deepEqual(acks().at(-1), { type: 'ack', kind: 'rules', version: 8, ok: true });
});

test('a daemon message over the limit goes in parts, each under it', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1', { vms: Array.from({ length: 300 }, (_, i) => ({ mac: `02:00:00:00:02:${(i % 256).toString(16).padStart(2, '0')}` })) });
  const agent = agentFor(t, ctl.url, daemon, { maxMessageBytes: 16 * 1024 });
  agent.start();
  await waitFor(() => ctl.conns[0] !== undefined && ctl.conns[0].received.some((m) => (m['part'] as { count?: number } | undefined)?.count === ctl.conns[0]!.received.length), 'the hello and its facts in parts');
  const parts = ctl.conns[0]!.received;
  assert.equal(parts[0]!['type'], 'hello');
  assert.ok(parts.slice(1).every((m) => m['type'] === 'facts' && m['seq'] === 0));
  assert.equal(parts.flatMap((m) => (m['facts'] as { ports: unknown[] }).ports).length, 300);
  assert.ok(parts.every((m) => Buffer.byteLength(JSON.stringify(m)) <= 16 * 1024));
});
