/**
 * Privileged (root): TLS links served by the native forwarder through native
 * records (tls-switch.ts, record-layer.ts, native/tap/records.cc). Daemons
 * in this process on loopback with `nativeForwarding` and the TLS transport,
 * each with a TAP port moved into a VM namespace (IPv6 off, static ARP):
 *
 *   - the link switches to records and the forwarder carries a ping flow
 *     (its carried count rises), with the port counters and the traffic
 *     matrix equal to the frames the VMs' kernels sent; a drop rule stops
 *     the flow at once; a local close takes the link back mid-stream (the
 *     goodbye is sealed on from the forwarder's counter) and the redial is
 *     carried natively again;
 *   - a TCP proxy on loopback between the two that flips one byte after the
 *     switch makes the link close with VNET_ERR_RECORD_AUTH; the spoke
 *     redials (fresh keys) and the flow is carried natively again;
 *   - a peer that does not offer records keeps plain TLS, and the flow works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import { capturingLogger, type LogRecord } from '../helpers/log-capture.ts';
import { requireTools, useNetns, waitFor } from '../helpers/netns.ts';
import { assertCountersExact, assertDropRuleAtOnce, vmPair } from './native-vm-fixtures.ts';

requireTools(['ip', 'ping']);

const MAC1 = '02:00:00:78:00:01';
const MAC2 = '02:00:00:78:00:02';
type After = { after(fn: () => Promise<void> | void): void };

let ca: PemPair | undefined;
async function credentials(host: string): Promise<{ ca: string; cert: string; key: string }> {
  ca ??= await createCa();
  const c = await issueHostCertificate(ca, host);
  return { ca: ca.cert, cert: c.cert, key: c.key };
}

/** A daemon with the native forwarder over TLS: the hub on loopback, or a spoke dialling `hubPort`. */
async function startDaemon(t: After, hostId: string, logs: LogRecord[], hub?: { id: string; port: number }, nativeRecords?: boolean): Promise<Daemon> {
  const { logger, records } = capturingLogger();
  const origPush = records.push.bind(records);
  records.push = (...r: LogRecord[]) => { logs.push(...r.map((x) => ({ ...x, host: hostId }))); return origPush(...r); };
  const transport = new TlsTransport({ logger }, { localHost: hostId, keepaliveMs: 200, deadMs: 2000, ...(await credentials(hostId)), ...(nativeRecords === undefined ? {} : { nativeRecords }) });
  const d = await Daemon.start({ logger, transport }, hub === undefined
    ? { hostId, role: 'hub', listen: { host: '127.0.0.1', port: 0 }, nativeForwarding: {} }
    : { hostId, role: 'spoke', hub: { host: '127.0.0.1', port: hub.port, id: hub.id }, reconnect: { initialMs: 20, maxMs: 200 }, nativeForwarding: {} });
  t.after(() => d.close());
  return d;
}


const servedByRecords = (logs: LogRecord[], host: string): number =>
  logs.filter((r) => r.host === host && r.msg === 'link served by the native forwarder' && r.records === true).length;

test('a TLS link switches to native records; the forwarder carries the flow, counters exact, a rule change at once', { timeout: 120_000 }, async (t) => {
  const h = await useNetns(t, 'vnt-');
  const logs: LogRecord[] = [];
  const hub = await startDaemon(t, 'h1', logs);
  const spoke = await startDaemon(t, 'h2', logs, { id: 'h1', port: hub.listenAddress!.port });
  const [vm1, vm2] = await vmPair(h, [hub, spoke], [MAC1, MAC2], '10.98.0');
  await waitFor(() => spoke.link('h1') !== undefined, 'the spoke linked to the hub');
  const ping = (count: number, allowFailure = false) =>
    h.exec(vm1.ns, ['ping', '-q', '-c', String(count), '-i', '0.005', '-W', '1', vm2.ip], { timeoutMs: 30_000, allowFailure });

  await ping(200);
  assert.ok(servedByRecords(logs, 'h1') >= 1 && servedByRecords(logs, 'h2') >= 1, 'both ends handed the records link to the forwarder');
  assert.ok(hub.nativeCarriedFrames! >= 150, `the hub's forwarder carried ${hub.nativeCarriedFrames} of the 200 echo requests`);
  assert.ok(spoke.nativeCarriedFrames! >= 300, `the spoke's forwarder carried ${spoke.nativeCarriedFrames} frames`);
  await assertCountersExact(h, [hub, spoke], [vm1, vm2], [MAC1, MAC2]);
  await waitFor(() => {
    hub.facts();
    spoke.facts();
    const out = hub.link('h2')!.stats;
    const into = spoke.link('h1')!.stats;
    return out.txFrames === into.rxFrames && out.txFrames >= 200;
  }, 'the link counts the same frames on both ends');

  await assertDropRuleAtOnce(h, hub, vm2, [MAC1, MAC2], ping);

  // A local close takes the records link back from the forwarder mid-stream: the goodbye, sealed with the
  // forwarder's counter, reaches the spoke as a goodbye (not a record error); it redials, natively again.
  const oldLink = hub.link('h2')!;
  await oldLink.close('test: link change');
  await waitFor(() => hub.link('h2') !== undefined && hub.link('h2') !== oldLink && spoke.link('h1') !== undefined, 'the spoke redialled');
  assert.ok(logs.some((r) => r.host === 'h2' && r.msg === 'link down' && r.code === 'VNET_ERR_PEER_GOODBYE'), 'the spoke read the hub\'s goodbye');
  assert.ok(!logs.some((r) => typeof r.code === 'string' && r.code.startsWith('VNET_ERR_RECORD_')), 'no record error on either side');
  const beforeNew = hub.nativeCarriedFrames!;
  await ping(100);
  assert.ok(hub.nativeCarriedFrames! - beforeNew >= 50, 'the new link is served natively too');
});

/** A loopback TCP proxy to `port` that, once armed, flips one byte of the next spoke→hub chunk. */
async function tamperingProxy(t: After, port: number): Promise<{ port: number; arm: () => void; flipped: () => boolean }> {
  let armed = false;
  let flipped = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((from) => {
    const to = connect({ host: '127.0.0.1', port, noDelay: true });
    from.setNoDelay(true);
    for (const s of [from, to]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => { from.destroy(); to.destroy(); });
    }
    from.on('data', (chunk: Buffer) => {
      if (armed && chunk.length >= 32) {
        armed = false;
        flipped = true;
        chunk = Buffer.from(chunk);
        chunk[chunk.length - 3]! ^= 0x40; // inside the last record's tag
      }
      to.write(chunk);
    });
    to.on('data', (chunk: Buffer) => from.write(chunk));
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, arm: () => { armed = true; }, flipped: () => flipped };
}

test('a byte flipped on the wire after the switch closes the link with VNET_ERR_RECORD_AUTH; the spoke redials and the flow is native again', { timeout: 120_000 }, async (t) => {
  const h = await useNetns(t, 'vnt-');
  const logs: LogRecord[] = [];
  const hub = await startDaemon(t, 'h1', logs);
  const proxy = await tamperingProxy(t, hub.listenAddress!.port);
  const spoke = await startDaemon(t, 'h2', logs, { id: 'h1', port: proxy.port });
  const [vm1, vm2] = await vmPair(h, [hub, spoke], [MAC1, MAC2], '10.98.0');
  await waitFor(() => spoke.link('h1') !== undefined && hub.link('h2') !== undefined, 'the spoke linked to the hub through the proxy');
  const ping = (count: number, allowFailure = false) =>
    h.exec(vm2.ns, ['ping', '-q', '-c', String(count), '-i', '0.005', '-W', '1', vm1.ip], { timeoutMs: 30_000, allowFailure });
  await ping(100);
  assert.ok(spoke.nativeCarriedFrames! >= 50, 'carried natively before the tampering');
  const first = hub.link('h2')!;
  proxy.arm();
  await ping(50, true);
  assert.ok(proxy.flipped(), 'the proxy flipped a byte');
  await waitFor(() => logs.some((r) => r.host === 'h1' && r.msg === 'link down' && r.code === 'VNET_ERR_RECORD_AUTH'), 'the hub closed the link with VNET_ERR_RECORD_AUTH');
  await waitFor(() => hub.link('h2') !== undefined && hub.link('h2') !== first && spoke.link('h1') !== undefined, 'the spoke redialled');
  const before = spoke.nativeCarriedFrames!;
  await ping(100);
  assert.ok(spoke.nativeCarriedFrames! - before >= 50, 'the new link (fresh keys) is served natively');
  assert.ok(servedByRecords(logs, 'h2') >= 2, 'the new link switched to records too');
});

test('a peer that does not offer native records keeps plain TLS, and the flow works', { timeout: 120_000 }, async (t) => {
  const h = await useNetns(t, 'vnt-');
  const logs: LogRecord[] = [];
  const hub = await startDaemon(t, 'h1', logs);
  const spoke = await startDaemon(t, 'h2', logs, { id: 'h1', port: hub.listenAddress!.port }, false);
  const [vm1, vm2] = await vmPair(h, [hub, spoke], [MAC1, MAC2], '10.98.0');
  await waitFor(() => spoke.link('h1') !== undefined, 'the spoke linked to the hub');
  await h.exec(vm1.ns, ['ping', '-q', '-c', '50', '-i', '0.005', '-W', '1', vm2.ip], { timeoutMs: 30_000 });
  assert.equal(servedByRecords(logs, 'h1') + servedByRecords(logs, 'h2'), 0, 'no records link');
  assert.equal(logs.filter((r) => r.msg === 'link served by the native forwarder').length, 0, 'a TLS socket proper stays on the event loop');
  await waitFor(() => {
    hub.facts();
    return hub.link('h2')!.stats.txFrames >= 50;
  }, 'the link carried the flow over plain TLS');
});
