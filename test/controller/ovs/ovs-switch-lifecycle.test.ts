import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { ManualClock } from '../../../src/common/clock.ts';
import { parseDeployment } from '../../../src/controller/deployment-file.ts';
import { startController } from '../../../src/controller/runtime.ts';
import { openStore } from '../../../src/controller/store/store.ts';
import { FakeSwitch } from '../../openflow/fake-switch.ts';
import { capturingLogger } from '../../helpers/log-capture.ts';
import { waitFor } from '../../helpers/wait.ts';
import { testPki } from '../fixtures/test-pki.ts';
import { MemoryBridgeDb } from './memory-bridge-db.ts';
import { FlowTableSwitch } from './flow-table-switch.ts';
import { connectSwitch, DEPLOYMENT, OVS_DPID, settled, start } from './ovs-harness.ts';

test('a switch that disconnects and reconnects: the host is down meanwhile, then up with its flows checked again', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const first = connectSwitch(t, h);
  await settled(h, first);
  first.close();
  await waitFor(() => store.getHost('ovs1')?.connected === false, 'host down with its switch');
  const again = connectSwitch(t, h, [...first.flows.values()]);
  await waitFor(() => store.getHost('ovs1')?.connected === true, 'host up again');
  await waitFor(() => again.sw.received.some((m) => m.type === 'multipart-request' && m.body.kind === 'flow'), 'flows read back on reconnect');
  await settled(h, again);
  assert.equal(again.mods.filter((m) => m.command === 'add').length, 0, 'the flows it kept are not re-added');
});

test('garbage on the OpenFlow port and a switch of no OVS host are refused with typed errors logged; the OVS host stays connected', async (t) => {
  const logs = capturingLogger();
  const pki = testPki();
  const store = openStore({ path: ':memory:' });
  const db = new MemoryBridgeDb();
  const controller = await startController({
    logger: logs.logger, registry: new Registry(), clock: new ManualClock(), store, ovsBridgeDb: async () => db, onError: (err) => { throw err; },
  }, { deployment: parseDeployment(DEPLOYMENT, 'ovs-unit.yaml'), control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000 });
  t.after(async () => { await controller.close(); store.close(); });
  const sw = new FlowTableSwitch(controller.openflowPort!, OVS_DPID);
  t.after(() => sw.close());
  await waitFor(() => store.getHost('ovs1')?.connected === true, 'OVS host up');

  const garbage = connect(controller.openflowPort!, '127.0.0.1');
  let garbageClosed = false;
  garbage.on('error', () => undefined);
  garbage.on('close', () => { garbageClosed = true; });
  garbage.resume();
  garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await waitFor(() => logs.records.find((l) => l.code === 'VNET_ERR_OF_BAD_VERSION' || l.code === 'VNET_ERR_OF_BAD_LENGTH'), 'garbage refused with a decoder code');
  await waitFor(() => garbageClosed ? true : undefined, 'garbage connection closed by the controller');

  const stranger = new FakeSwitch({ port: controller.openflowPort!, datapathId: 0x1234n });
  t.after(() => stranger.close());
  await waitFor(() => stranger.closed ? true : undefined, 'unknown switch closed');
  const refused = logs.records.find((l) => (l.err as { code?: string } | undefined)?.code === 'VNET_ERR_OVS_UNKNOWN_SWITCH');
  assert.ok(refused !== undefined, 'UnknownSwitchError logged');

  assert.equal(store.getHost('ovs1')?.connected, true, 'the OVS host\'s switch is untouched');
  assert.equal(sw.closed, false);
});

test('a lost OVSDB connection is retried, through a failed attempt, until the bridge is set up again', async (t) => {
  const store = openStore({ path: ':memory:' });
  const dbs: MemoryBridgeDb[] = [];
  const pki = testPki();
  const clock = new ManualClock();
  let attempts = 0;
  const controller = await startController({
    logger: capturingLogger().logger, registry: new Registry(), clock, store, onError: (err) => { throw err; },
    ovsBridgeDb: async () => {
      attempts++;
      if (attempts === 2) throw new Error('connection refused');
      const db = new MemoryBridgeDb();
      dbs.push(db);
      return db;
    },
  }, { deployment: parseDeployment(DEPLOYMENT, 'ovs-unit.yaml'), control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000, openflow: { retryMs: 500 } });
  t.after(async () => { await controller.close(); store.close(); });
  await waitFor(() => dbs[0]?.setups.length === 1 ? true : undefined, 'first setup');
  dbs[0]!.lose();
  clock.advance(500); // the failed attempt
  await waitFor(() => attempts >= 2 ? true : undefined, 'second attempt');
  await waitFor(() => { clock.advance(500); return dbs[1]?.setups.length === 1 ? true : undefined; }, 'set up again after the failure');
  assert.equal(attempts, 3);
});

test('a statistics read the switch never answers is given up after its deadline: the next period reads again', async (t) => {
  const store = openStore({ path: ':memory:' });
  const h = await start(t, store);
  const sw = connectSwitch(t, h);
  await settled(h, sw);
  const reads = (): number => sw.sw.received.filter((m) => m.type === 'multipart-request' && m.body.kind === 'flow' && m.body.tableId === 0).length;
  sw.holdFlowStats = true;
  h.clock.advance(100);
  await waitFor(() => reads() === 1 ? true : undefined, 'the first read, held');
  h.clock.advance(9_800);
  assert.equal(reads(), 1, 'no second read while the first is in flight');
  h.clock.advance(300); // past the 10 s deadline: given up, and a later period asks again
  await waitFor(() => {
    if (reads() >= 2) return true;
    h.clock.advance(100);
    return undefined;
  }, 'a new read after the deadline');
  sw.release();
});

test('an OpenFlow address already in use stops the controller\'s start with a typed error naming it', async (t) => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => taken.close(() => r())));
  const port = (taken.address() as AddressInfo).port;
  const pki = testPki();
  const store = openStore({ path: ':memory:' });
  t.after(() => store.close());
  await assert.rejects(
    startController({ logger: capturingLogger().logger, registry: new Registry(), clock: new ManualClock(), store, ovsBridgeDb: async () => new MemoryBridgeDb() }, {
      deployment: parseDeployment(DEPLOYMENT.replace('port: 0, transport: tcp', `port: ${port}, transport: tcp`), 'ovs-unit.yaml'),
      control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } },
    }),
    (err: Error & { code?: string }) => err.code === 'VNET_ERR_OVS_LISTEN' && err.message.includes(`127.0.0.1:${port}`) && /EADDRINUSE|in use/.test(err.message),
  );
});
