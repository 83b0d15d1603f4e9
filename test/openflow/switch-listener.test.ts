import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCa, issueHostCertificate } from '../../src/pki/certs.ts';
import { SwitchRejectedError, type SwitchConnectionError } from '../../src/openflow/errors.ts';
import { flowMod } from '../../src/openflow/messages.ts';
import { OFPMPF_MORE } from '../../src/openflow/multipart.ts';
import { SwitchListener, type SwitchListenerInit } from '../../src/openflow/switch-listener.ts';
import type { SwitchConnection } from '../../src/openflow/switch-connection.ts';
import { waitFor } from '../helpers/wait.ts';
import { FakeSwitch, type FakeSwitchInit } from './fake-switch.ts';

async function listen(t: { after(fn: () => Promise<void>): void }, init: SwitchListenerInit = {}): Promise<{ listener: SwitchListener; port: number; errors: SwitchConnectionError[]; gone: bigint[] }> {
  const listener = new SwitchListener({ port: 0, ...init });
  const errors: SwitchConnectionError[] = [];
  const gone: bigint[] = [];
  listener.on('connection-error', (e) => errors.push(e));
  listener.on('switch-gone', (dpid) => gone.push(dpid));
  const { port } = await listener.listen();
  t.after(() => listener.close());
  return { listener, port, errors, gone };
}

function fake(t: { after(fn: () => void): void }, init: FakeSwitchInit): FakeSwitch {
  const sw = new FakeSwitch(init);
  t.after(() => sw.close());
  return sw;
}

async function ready(listener: SwitchListener, dpid: bigint): Promise<SwitchConnection> {
  return waitFor(() => listener.switches.get(dpid), `switch ${dpid} ready`);
}

describe('SwitchListener', () => {
  it('negotiates OpenFlow 1.3 from a version bitmap and learns the datapath id', async (t) => {
    const { listener, port } = await listen(t);
    const seen: bigint[] = [];
    listener.on('switch', (c) => seen.push(c.datapathId));
    const sw = fake(t, { port, datapathId: 0xabcn, versions: [1, 3, 4] });
    const conn = await ready(listener, 0xabcn);
    assert.equal(conn.state, 'ready');
    assert.deepEqual(seen, [0xabcn]);
    assert.deepEqual(sw.received.slice(0, 2).map((m) => m.type), ['hello', 'features-request']);
    assert.deepEqual(sw.received[0]!.type === 'hello' && sw.received[0]!.versions, [4]);
  });

  it('refuses a switch without 1.3 with OFPET_HELLO_FAILED and names the versions it offered', async (t) => {
    const { listener, port, errors } = await listen(t);
    const sw = fake(t, { port, datapathId: 1n, versions: [1, 2] });
    await waitFor(() => errors.length === 1 && sw.closed, 'the connection refused');
    assert.equal(errors[0]!.code, 'VNET_ERR_OF_NO_COMMON_VERSION');
    assert.match(errors[0]!.message, /0x01, 0x02/);
    const err = sw.received.find((m) => m.type === 'error');
    assert.ok(err?.type === 'error' && err.errorType === 0 && err.errorCode === 0, 'HELLO_FAILED/INCOMPATIBLE sent');
    assert.equal(listener.switches.size, 0);
  });

  it('closes a switch that skips HELLO, naming what it sent instead', async (t) => {
    const { listener, port, errors } = await listen(t);
    const sw = fake(t, { port, datapathId: 2n, skipHello: true });
    sw.send({ type: 'features-reply', xid: 1, datapathId: 2n, nBuffers: 0, nTables: 1, auxiliaryId: 0, capabilities: 0 });
    await waitFor(() => sw.closed && errors.length === 1, 'the connection closed');
    assert.equal(errors[0]!.code, 'VNET_ERR_OF_HANDSHAKE');
    assert.match(errors[0]!.message, /sent features-reply before HELLO/);
    assert.equal(listener.switches.size, 0);
  });

  it('answers the switch echo and sends its own when the switch is quiet; a silent switch is closed at the liveness timeout', async (t) => {
    const { listener, port, errors, gone } = await listen(t, { echoIntervalMs: 50, livenessTimeoutMs: 1000 });
    const live = fake(t, { port, datapathId: 1n });
    await ready(listener, 1n);
    live.send({ type: 'echo-request', xid: 77, data: Buffer.from('hi') });
    await waitFor(() => live.received.some((m) => m.type === 'echo-reply' && m.xid === 77 && m.data.toString() === 'hi'), 'our echo reply');
    await waitFor(() => live.received.some((m) => m.type === 'echo-request'), 'an echo request from the controller');
    const hung = fake(t, { port, datapathId: 2n, silent: true });
    await ready(listener, 2n);
    await waitFor(() => gone.includes(2n), 'the silent switch gone');
    assert.equal(errors.find((e) => e.code === 'VNET_ERR_OF_LIVENESS')?.code, 'VNET_ERR_OF_LIVENESS');
    assert.ok(hung.received.some((m) => m.type === 'echo-request'), 'it was asked first');
    assert.equal(listener.switches.get(1n)?.state, 'ready', 'the live switch, answering echoes, stays');
  });

  it('a switch that reconnects replaces its old connection by datapath id', async (t) => {
    const { listener, port, gone } = await listen(t);
    const first = fake(t, { port, datapathId: 7n });
    const old = await ready(listener, 7n);
    fake(t, { port, datapathId: 7n });
    await waitFor(() => listener.switches.get(7n) !== old && listener.switches.get(7n)?.state === 'ready', 'the new connection');
    await waitFor(() => first.closed, 'the old socket closed');
    assert.equal(old.state, 'closed');
    assert.deepEqual(gone, [], 'the datapath never went away');
    assert.equal(listener.switches.size, 1);
  });

  it('disconnects a switch that sends garbage, naming what was wrong, and leaves the others alone', async (t) => {
    const { listener, port, errors, gone } = await listen(t);
    const good = fake(t, { port, datapathId: 1n });
    const bad = fake(t, { port, datapathId: 2n });
    const conn = await ready(listener, 1n);
    await ready(listener, 2n);
    bad.socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await waitFor(() => gone.includes(2n) && bad.closed, 'the garbage switch dropped');
    assert.equal(errors[0]?.code, 'VNET_ERR_OF_BAD_VERSION');
    assert.match(errors[0]!.message, /not OpenFlow 1\.3: OpenFlow version 0x47/);
    assert.ok(bad.received.some((m) => m.type === 'error' && m.errorType === 1), 'told OFPET_BAD_REQUEST first');
    await conn.barrier();
    assert.equal(good.closed, false);
    assert.deepEqual([...listener.switches.keys()], [1n]);
  });

  it('holds a bounded number of connections in their handshake, each with a deadline; a newcomer takes the oldest one\'s slot', async (t) => {
    const { listener, port, errors } = await listen(t, { maxPendingConnections: 2, handshakeTimeoutMs: 2000 });
    const stuck = [fake(t, { port, datapathId: 1n, noFeatures: true })];
    await waitFor(() => listener.pendingConnections === 1, 'the first in its handshake');
    stuck.push(fake(t, { port, datapathId: 2n, noFeatures: true }));
    await waitFor(() => listener.pendingConnections === 2, 'two in their handshake');
    const third = fake(t, { port, datapathId: 3n });
    await ready(listener, 3n);
    assert.equal(listener.evictedConnections, 1);
    await waitFor(() => stuck[0]!.closed, 'the oldest (same address) evicted');
    assert.equal(errors[0]?.code, 'VNET_ERR_OF_EVICTED');
    assert.match(errors[0]!.message, /still in its handshake .* needed its slot \(at most 2 in their handshake\)/);
    await waitFor(() => stuck[1]!.closed, 'the other stuck one closed at its deadline');
    assert.deepEqual(errors.map((e) => e.code), ['VNET_ERR_OF_EVICTED', 'VNET_ERR_OF_HANDSHAKE_TIMEOUT']);
    assert.equal(third.closed, false);
    assert.equal(listener.switches.get(3n)?.state, 'ready');
  });

  it('reports a batch applied only after its barrier, and rejects it naming a switch error', async (t) => {
    const { listener, port } = await listen(t);
    const sw = fake(t, {
      port,
      datapathId: 1n,
      onMessage: (m, s) => {
        if (m.type === 'flow-mod' && m.priority === 13) s.send({ type: 'error', xid: m.xid, errorType: 5, errorCode: 3, data: Buffer.alloc(0) });
      },
    });
    const conn = await ready(listener, 1n);
    await conn.apply([flowMod({ priority: 1 }), flowMod({ priority: 2 })]);
    const types = sw.received.map((m) => m.type);
    assert.deepEqual(types.slice(-3), ['flow-mod', 'flow-mod', 'barrier-request'], 'the barrier follows the batch');
    await assert.rejects(conn.apply([flowMod({ priority: 13 }), flowMod({ priority: 14 })]), (e: unknown) => e instanceof SwitchRejectedError && /flow-mod: OFPET_FLOW_MOD_FAILED\/OVERLAP/.test(e.message));
  });

  it('joins a multipart reply sent in parts, and answers role requests', async (t) => {
    const { listener, port } = await listen(t);
    const flow = { tableId: 0, durationSec: 1, durationNsec: 0, priority: 1, idleTimeout: 0, hardTimeout: 0, flags: 0, packetCount: 0n, byteCount: 0n, match: {}, instructions: [] };
    fake(t, {
      port,
      datapathId: 1n,
      onMessage: (m, s) => {
        if (m.type === 'multipart-request') {
          s.send({ type: 'multipart-reply', xid: m.xid, flags: OFPMPF_MORE, body: { kind: 'flow', flows: [{ ...flow, cookie: 1n }] } });
          s.send({ type: 'multipart-reply', xid: m.xid, flags: 0, body: { kind: 'flow', flows: [{ ...flow, cookie: 2n }] } });
        }
        if (m.type === 'role-request') s.send({ type: 'role-reply', xid: m.xid, role: m.role, generationId: m.generationId });
      },
    });
    const conn = await ready(listener, 1n);
    assert.deepEqual((await conn.flowStats()).map((f) => f.cookie), [1n, 2n]);
    assert.deepEqual(await conn.setRole('master', 5n), { role: 'master', generationId: 5n });
  });

  it('over TLS, accepts a switch with a certificate from the CA and refuses one without', async (t) => {
    const ca = await createCa();
    const server = await issueHostCertificate(ca, 'controller', { ips: ['127.0.0.1'] });
    const client = await issueHostCertificate(ca, 'switch-1');
    const stranger = await issueHostCertificate(await createCa(), 'switch-2');
    const { listener, port, errors } = await listen(t, { tls: { ca: ca.cert, cert: server.cert, key: server.key } });
    fake(t, { port, datapathId: 1n, tls: { ca: ca.cert, ...client } });
    await ready(listener, 1n);
    const intruder = fake(t, { port, datapathId: 2n, tls: { ca: ca.cert, ...stranger } });
    await waitFor(() => intruder.closed && errors.some((e) => e.code === 'VNET_ERR_OF_TLS'), 'the stranger refused');
    assert.deepEqual([...listener.switches.keys()], [1n]);
  });
});
