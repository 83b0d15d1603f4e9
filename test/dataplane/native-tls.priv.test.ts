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
 *   - with a tiny rekey threshold (vnet-records/2), the forwarder carries the
 *     flow across many key updates each way (counted on the wire by a proxy),
 *     counters exact, a local close mid-stream hands the keys back and the
 *     goodbye arrives; a spoke that offers only vnet-records/1 links with /1;
 *   - a peer that does not offer records keeps plain TLS, and the flow works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { createDaemonRegistry } from '../../src/dataplane/daemon-metrics.ts';
import { TlsTransport, type TlsTransportInit } from '../../src/dataplane/tls-transport.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import { capturingLogger, type LogRecord } from '../helpers/log-capture.ts';
import { requireTools, useNetns, waitFor } from '../helpers/netns.ts';
import { assertCountersExact, assertDropRuleAtOnce, vmPair } from './native-vm-fixtures.ts';
import { recordWireTap } from './record-wire-tap.ts';

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
async function startDaemon(t: After, hostId: string, logs: LogRecord[], hub?: { id: string; port: number }, nativeRecords?: boolean, recordOptions: Partial<Pick<TlsTransportInit, 'recordRekey' | 'nativeRecordVersions'>> = {}): Promise<Daemon> {
  const { logger, records } = capturingLogger();
  const origPush = records.push.bind(records);
  records.push = (...r: LogRecord[]) => { logs.push(...r.map((x) => ({ ...x, host: hostId }))); return origPush(...r); };
  const transport = new TlsTransport({ logger }, { localHost: hostId, keepaliveMs: 200, deadMs: 2000, ...(await credentials(hostId)), ...(nativeRecords === undefined ? {} : { nativeRecords }), ...recordOptions });
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
  const tap = await recordWireTap(port, (dir, chunk) => {
    if (dir !== 'toServer' || !armed || chunk.length < 32) return chunk;
    armed = false;
    flipped = true;
    const out = Buffer.from(chunk);
    out[out.length - 3]! ^= 0x40; // inside the last record's tag
    return out;
  });
  t.after(() => tap.close());
  return { port: tap.port, arm: () => { armed = true; }, flipped: () => flipped };
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

test('with a tiny rekey threshold the forwarder carries the flow across key updates both ways, counters exact; a /1-only spoke links with /1', { timeout: 180_000 }, async (t) => {
  const h = await useNetns(t, 'vnt-');
  const logs: LogRecord[] = [];
  const rekey = { recordRekey: { records: 5, bytes: 4096 } };
  const hub = await startDaemon(t, 'h1', logs, undefined, undefined, rekey);
  const tap = await recordWireTap(hub.listenAddress!.port);
  t.after(() => tap.close());
  const spoke = await startDaemon(t, 'h2', logs, { id: 'h1', port: tap.port }, undefined, rekey);
  const [vm1, vm2] = await vmPair(h, [hub, spoke], [MAC1, MAC2], '10.98.0');
  await waitFor(() => spoke.link('h1') !== undefined && hub.link('h2') !== undefined, 'the spoke linked to the hub through the tap');
  const ping = (count: number) => h.exec(vm1.ns, ['ping', '-q', '-c', String(count), '-i', '0.005', '-s', '1000', '-W', '1', vm2.ip], { timeoutMs: 60_000 });
  await ping(300);
  assert.ok(logs.some((r) => r.msg === 'switched to native records' && r.alpn === 'vnet-records/2'), 'vnet-records/2 agreed');
  assert.ok(hub.nativeCarriedFrames! >= 250 && spoke.nativeCarriedFrames! >= 250, `carried natively (hub ${hub.nativeCarriedFrames}, spoke ${spoke.nativeCarriedFrames})`);
  const { toServer, toClient } = tap.counts;
  assert.ok(toServer.keyUpdate >= 40 && toClient.keyUpdate >= 40, `key updates on the wire: spoke→hub ${toServer.keyUpdate}, hub→spoke ${toClient.keyUpdate}`);
  assert.equal(toServer.other + toClient.other, 0);
  await assertCountersExact(h, [hub, spoke], [vm1, vm2], [MAC1, MAC2]);
  assert.ok(!logs.some((r) => typeof r.code === 'string' && r.code.startsWith('VNET_ERR_RECORD_')), 'no record error on either side');
  // GET /links and the metrics read the forwarder's keys while it holds them: version, generation each way, bytes under the current key.
  const keys = hub.linkDetails().find((l) => l.peer === 'h2')?.records;
  assert.ok(keys !== undefined && keys.version === 2 && keys.txGeneration >= toClient.keyUpdate && keys.rxGeneration >= 40 && keys.txBytes < 4096 + 2048, JSON.stringify(keys));
  assert.ok(servedByRecords(logs, 'h1') >= 1, 'read while the forwarder serves the link');
  const text = await createDaemonRegistry({ daemon: hub }).metrics();
  const updates = /^vnet_daemon_link_key_updates_total\{peer="h2",kind="backbone",direction="tx",host="h1"\} (\d+)$/m.exec(text);
  assert.ok(updates !== null && Number(updates[1]) >= keys.txGeneration, `the metric: ${updates?.[0]}`);
  assert.match(text, /^vnet_daemon_link_record_version\{peer="h2",kind="backbone",host="h1"\} 2$/m);

  // A local close mid-stream: the event loop seals the goodbye with the generation and counter the forwarder reached.
  const oldLink = hub.link('h2')!;
  await oldLink.close('test: link change');
  await waitFor(() => logs.some((r) => r.host === 'h2' && r.msg === 'link down' && r.code === 'VNET_ERR_PEER_GOODBYE'), 'the spoke read the hub\'s goodbye');
  await waitFor(() => hub.link('h2') !== undefined && hub.link('h2') !== oldLink && spoke.link('h1') !== undefined, 'the spoke redialled');
  assert.ok(!logs.some((r) => typeof r.code === 'string' && r.code.startsWith('VNET_ERR_RECORD_')), 'no record error after the hand-back');

  // A spoke from before rekeying (offers vnet-records/1 only) links to the same hub with /1, its tiny threshold unused.
  const h3 = await startDaemon(t, 'h3', logs, { id: 'h1', port: hub.listenAddress!.port }, undefined, { nativeRecordVersions: [1], recordRekey: { records: 1, bytes: 1 } });
  await waitFor(() => h3.link('h1') !== undefined, 'the /1 spoke linked');
  await waitFor(() => logs.some((r) => r.host === 'h3' && r.msg === 'switched to native records' && r.alpn === 'vnet-records/1'), 'vnet-records/1 agreed');
  assert.equal(logs.filter((r) => r.host === 'h3' && r.msg === 'switched to native records' && r.alpn !== 'vnet-records/1').length, 0);
});
