/**
 * Privileged (root): adaptive busy polling in the native forwarder under real
 * traffic. Two daemons in this process (hub h1, spoke h2, plain TCP on
 * loopback), each with a TAP port in a VM namespace (IPv6 off, static ARP:
 * the VMs send only what the test makes them send), each forwarder with its
 * own policy:
 *
 *   - request/response (vm1 pings vm2): both forwarders spin after a request
 *     and some spins end with the answer (hits rise), and the metrics show
 *     the same counts as the forwarder;
 *   - a one-way stream (vm1 sends echo requests to an address vm2 does not
 *     answer for): hundreds of frames carried natively, not one spin.
 *
 * Counters only — spins, hits, frames — never times. The cap is wide
 * (10 ms) so that a loaded machine's slow answers still earn a window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { createDaemonRegistry } from '../../src/dataplane/daemon-metrics.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { requireTools, useNetns, waitFor } from '../helpers/netns.ts';
import { vmPair, type Vm } from './native-vm-fixtures.ts';

requireTools(['ip', 'ping']);

const MAC1 = '02:00:00:78:00:01';
const MAC2 = '02:00:00:78:00:02';
const POLL = { capUs: 10_000, budgetPercent: 50 };

async function startDaemon(t: { after(fn: () => Promise<void>): void }, hostId: string, hub?: Daemon): Promise<Daemon> {
  const logger = silentLogger();
  const transport = new TcpTransport({ logger }, { localHost: hostId, keepaliveMs: 200, deadMs: 2000 });
  const nativeForwarding = { adaptivePoll: POLL };
  const d = await Daemon.start({ logger, transport }, hub === undefined
    ? { hostId, role: 'hub', listen: { host: '127.0.0.1', port: 0 }, nativeForwarding }
    : { hostId, role: 'spoke', hub: { host: '127.0.0.1', port: hub.listenAddress!.port, id: hub.hostId }, reconnect: { initialMs: 20, maxMs: 200 }, nativeForwarding });
  t.after(() => d.close());
  return d;
}

async function pair(t: Parameters<typeof useNetns>[0], subnet: string): Promise<{ h: Awaited<ReturnType<typeof useNetns>>; hub: Daemon; spoke: Daemon; vm1: Vm; vm2: Vm }> {
  const h = await useNetns(t, 'vnp-');
  const hub = await startDaemon(t, 'h1');
  const spoke = await startDaemon(t, 'h2', hub);
  await waitFor(() => spoke.link('h1') !== undefined, 'the spoke linked to the hub');
  const [vm1, vm2] = await vmPair(h, [hub, spoke], [MAC1, MAC2], subnet);
  return { h, hub, spoke, vm1, vm2 };
}

test('request/response traffic: the forwarders spin after a request and the answer ends spins (hits), counted in the metrics', { timeout: 120_000 }, async (t) => {
  const { h, hub, spoke, vm1, vm2 } = await pair(t, '10.98.0');
  await h.exec(vm1.ns, ['ping', '-q', '-c', '300', '-i', '0.005', '-W', '1', vm2.ip], { timeoutMs: 60_000 });
  assert.ok(hub.nativeCarriedFrames! >= 250, `the hub's forwarder carried the flow: ${hub.nativeCarriedFrames}`);
  for (const [name, d] of [['hub (vm1 asks)', hub], ['spoke (vm2 answers)', spoke]] as const) {
    const p = d.nativePollStats!;
    assert.ok(p.hits > 0, `${name}: answers ended spins: ${JSON.stringify(p)}`);
    assert.ok(p.spins >= p.hits, `${name}: hits are spins: ${JSON.stringify(p)}`);
    assert.ok(p.spins <= d.nativeCarriedFrames!, `${name}: at most one spin per batch carried: ${JSON.stringify(p)}`);
  }
  // The metrics read the same counters: a reading between two equal ones (a last spin may still be running, up to the cap).
  const registry = createDaemonRegistry({ daemon: hub });
  const series = (metrics: string, result: string): number => Number(new RegExp(`^vnet_daemon_native_poll_spins_total\\{[^}]*result="${result}"[^}]*\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  await waitFor(async () => {
    const before = hub.nativePollStats!;
    const metrics = await registry.metrics();
    const after = hub.nativePollStats!;
    if (before.spins !== after.spins) return false;
    assert.equal(series(metrics, 'hit'), after.hits);
    assert.equal(series(metrics, 'miss'), after.spins - after.hits);
    return true;
  }, 'a reading of the metrics while the counters stood still');
});

test('a one-way stream: carried natively, and the forwarders never spin', { timeout: 120_000 }, async (t) => {
  const { h, hub, spoke, vm1, vm2 } = await pair(t, '10.98.1');
  // One exchange so that each daemon knows where the other VM lives (and the flow can be installed).
  await h.exec(vm1.ns, ['ping', '-q', '-c', '1', '-W', '2', vm2.ip], { timeoutMs: 10_000 });
  // An address on vm2's MAC that vm2 does not hold: its kernel drops the requests without a word.
  const silent = '10.98.1.9';
  await h.exec(vm1.ns, ['ip', 'neigh', 'replace', silent, 'lladdr', MAC2, 'dev', vm1.dev, 'nud', 'permanent']);
  const before = hub.nativeCarriedFrames!;
  await h.exec(vm1.ns, ['ping', '-q', '-c', '500', '-i', '0.002', '-W', '1', silent], { timeoutMs: 60_000, allowFailure: true });
  await waitFor(() => spoke.port(vm2.dev)!.stats.txFrames >= 500, 'vm2 was given the 500 requests');
  assert.ok(hub.nativeCarriedFrames! - before >= 450, `the hub's forwarder carried the stream: ${hub.nativeCarriedFrames! - before} frames`);
  assert.deepEqual(hub.nativePollStats, { spins: 0, hits: 0, spinNs: 0, budgetDenied: 0, contended: 0 }, 'the hub never spun');
  assert.deepEqual(spoke.nativePollStats, { spins: 0, hits: 0, spinNs: 0, budgetDenied: 0, contended: 0 }, 'the spoke never spun');
});
