import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { CONTROL_FEATURES } from '../../src/control/control-features.ts';
import { CONTROL_PROTOCOL_VERSION } from '../../src/control/control-protocol.ts';
import type { MigrationControl, MigrationReport } from '../../src/control/migration-control.ts';
import type { PortFacts } from '../../src/control/daemon-control.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { oldControllerRefuses } from '../control/fixtures/pre-features-schemas.ts';
import { waitFor } from '../helpers/wait.ts';
import { fakeController, welcome } from './fixtures/fake-controller.ts';

/** Feature negotiation, the daemon's side (control-features.ts): optional fields go only to a controller that listed them. */

const PACKET_PORT: PortFacts = {
  name: 'vm0', kind: 'packet', mac: '02:00:00:00:00:01', ip: undefined, mtu: 1500, rxFrames: 3, rxBytes: 180, txFrames: 0, txBytes: 0, txDropped: 0,
  packet: { runts: 0, tooLarge: 1, spoofedMac: 2, spoofedIp: 0, malformed: 0, kernelDrops: 4 },
};
const PAUSED: MigrationReport = { type: 'migration', id: 'm1', state: 'paused', timing: { pausedAt: 1_700_000_000_000 } };

class Reports implements MigrationControl {
  readonly #handlers = new Set<(r: MigrationReport) => void>();
  handle(): void {}
  onReport(handler: (r: MigrationReport) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }
  report(r: MigrationReport): void {
    for (const h of this.#handlers) h(r);
  }
}

function start(t: { after(fn: () => Promise<void>): void }, url: string): { agent: ControllerAgent; daemon: FakeDaemon; reports: Reports } {
  const pki = testPki();
  const daemon = new FakeDaemon('h1');
  daemon.ports.push(PACKET_PORT);
  const reports = new Reports();
  const agent = new ControllerAgent({ daemon, logger: silentLogger(), clock: realClock, migrations: reports }, { url, tls: { ca: pki.ca, ...pki.host('h1') }, backoff: { initialMs: 10, maxMs: 50 } });
  t.after(() => agent.close());
  agent.start();
  return { agent, daemon, reports };
}

const ofType = (received: Array<Record<string, unknown>>, type: string): Array<Record<string, unknown>> => received.filter((m) => m['type'] === type);
const portsOf = (facts: Record<string, unknown>): PortFacts[] => (facts['facts'] as { ports: PortFacts[] }).ports;

test('against a controller older than the lists, the daemon says hello again without one and sends only what that controller\'s strict schemas take', async (t) => {
  const ctl = await fakeController(t);
  const { agent, reports } = start(t, ctl.url);
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'the first hello');
  // The older controller refuses the list, as its decoder words it, fatally.
  const refusal = oldControllerRefuses(ctl.conns[0]!.received[0]!);
  assert.equal(refusal, 'invalid hello: unknown key(s) features');
  ctl.conns[0]!.ws.send(JSON.stringify({ type: 'error', code: 'VNET_ERR_CONTROL_MESSAGE', message: refusal, fatal: true }));
  ctl.conns[0]!.ws.close(4000, 'VNET_ERR_CONTROL_MESSAGE');
  await waitFor(() => ctl.conns[1]?.received.length === 1, 'the hello again');
  const conn = ctl.conns[1]!;
  assert.equal(oldControllerRefuses(conn.received[0]!), undefined, 'the second hello is one the older controller takes');
  assert.equal(conn.received[0]!['features'], undefined);
  conn.ws.send(welcome('h1', 20));
  await waitFor(() => agent.state === 'connected', 'welcomed');
  assert.equal(agent.refusal, undefined, 'not taken for a refusal for good');
  reports.report(PAUSED);
  await waitFor(() => ofType(conn.received, 'migration').length === 1 && ofType(conn.received, 'facts').length >= 2, 'a report and facts');
  for (const m of conn.received) assert.equal(oldControllerRefuses(m), undefined, JSON.stringify(m));
  assert.deepEqual(ofType(conn.received, 'migration')[0], { type: 'migration', id: 'm1', state: 'paused' }, 'the report without its timing');
  assert.equal(portsOf(ofType(conn.received, 'facts')[0]!)[0]!.packet, undefined);
  assert.deepEqual([...agent.features], []);
  // Once the channel drops, the next hello tries the list again (the controller may have been upgraded meanwhile).
  conn.ws.terminate();
  await waitFor(() => ctl.conns[2]?.received.length === 1, 'the hello after the drop');
  assert.deepEqual(ctl.conns[2]!.received[0]!['features'], [...CONTROL_FEATURES]);
});

test('a controller that lists the features gets the timing and the packet counters; the hello itself carries core facts only', async (t) => {
  const ctl = await fakeController(t);
  const { agent, reports } = start(t, ctl.url);
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const conn = ctl.conns[0]!;
  const hello = conn.received[0]!;
  assert.deepEqual(hello['features'], ['migration-timing', 'port-packet-counters', 'rule-patches', 'image-keep']);
  assert.equal(portsOf(hello)[0]!.packet, undefined, 'nothing is negotiated before the welcome');
  conn.ws.send(JSON.stringify({ type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', updatePeriodMs: 60_000, features: ['port-packet-counters', 'a-later-feature', 'migration-timing'] }));
  await waitFor(() => agent.state === 'connected', 'welcomed');
  assert.deepEqual([...agent.features].sort(), ['migration-timing', 'port-packet-counters'], 'an unknown name is ignored');
  await waitFor(() => ofType(conn.received, 'facts').length === 1, 'facts right after the welcome');
  assert.deepEqual(portsOf(ofType(conn.received, 'facts')[0]!)[0]!.packet, PACKET_PORT.packet);
  reports.report(PAUSED);
  await waitFor(() => ofType(conn.received, 'migration').length === 1, 'the report');
  assert.deepEqual(ofType(conn.received, 'migration')[0], PAUSED);
});

test('a controller that lists one feature gets that one\'s fields and not the other\'s', async (t) => {
  const ctl = await fakeController(t);
  const { agent, reports, daemon } = start(t, ctl.url);
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  const conn = ctl.conns[0]!;
  conn.ws.send(JSON.stringify({ type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', updatePeriodMs: 60_000, features: ['migration-timing'] }));
  await waitFor(() => agent.state === 'connected', 'welcomed');
  reports.report(PAUSED);
  daemon.addPort('vm1', '02:00:00:00:00:02');
  await waitFor(() => ofType(conn.received, 'migration').length === 1 && ofType(conn.received, 'facts').length >= 2, 'a report, an event and facts');
  assert.deepEqual(ofType(conn.received, 'migration')[0], PAUSED);
  for (const f of ofType(conn.received, 'facts')) assert.equal(portsOf(f)[0]!.packet, undefined);
  for (const m of conn.received.filter((m) => m['type'] !== 'migration' && m['type'] !== 'hello')) assert.equal(oldControllerRefuses(m), undefined, JSON.stringify(m));
});
