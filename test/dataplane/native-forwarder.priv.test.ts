/**
 * Privileged (root): the native forwarder under real traffic. Two daemons in
 * this process (hub h1, spoke h2, a plain-TCP link on loopback) with
 * `nativeForwarding`, each with a TAP port moved into a VM namespace (vm1,
 * vm2: IPv6 off and static ARP entries, so the VMs send nothing but what the
 * test makes them send). While the forwarder carries a ping flow:
 *
 *   - the traffic snapshot and the port counters equal the frames the VMs'
 *     kernels sent and received (exact, native counts merged);
 *   - a drop rule stops the flow at once (not one frame reaches vm2 after the
 *     rule is applied), removing it lets the flow back onto the native path;
 *   - closing the link takes the socket back from the forwarder; the spoke
 *     redials and the forwarder carries the flow over the new link.
 *
 * And a hub between two spokes relays their flow link to link on its thread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { createDaemonRegistry } from '../../src/dataplane/daemon-metrics.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { requireTools, useNetns, waitFor } from '../helpers/netns.ts';
import { assertCountersExact, assertDropRuleAtOnce, kernelCounter, vmPair } from './native-vm-fixtures.ts';

requireTools(['ip', 'ping']);

const MAC1 = '02:00:00:77:00:01';
const MAC2 = '02:00:00:77:00:02';


/** A daemon in this process with the native forwarder: the hub (listening on loopback), or a spoke of `hub`. */
async function startDaemon(t: { after(fn: () => Promise<void>): void }, hostId: string, hub?: Daemon): Promise<Daemon> {
  const logger = silentLogger();
  const transport = new TcpTransport({ logger }, { localHost: hostId, keepaliveMs: 200, deadMs: 2000 });
  const d = await Daemon.start({ logger, transport }, hub === undefined
    ? { hostId, role: 'hub', listen: { host: '127.0.0.1', port: 0 }, nativeForwarding: {} }
    : { hostId, role: 'spoke', hub: { host: '127.0.0.1', port: hub.listenAddress!.port, id: hub.hostId }, reconnect: { initialMs: 20, maxMs: 200 }, nativeForwarding: {} });
  t.after(() => d.close());
  return d;
}


test('the native forwarder carries a flow with exact counters, obeys a rule change at once and survives a link change', { timeout: 120_000 }, async (t) => {
  const h = await useNetns(t, 'vnf-');
  const hub = await startDaemon(t, 'h1');
  const spoke = await startDaemon(t, 'h2', hub);
  const [vm1, vm2] = await vmPair(h, [hub, spoke], [MAC1, MAC2], '10.97.0');
  await waitFor(() => spoke.link('h1') !== undefined, 'the spoke linked to the hub');

  const ping = (count: number, allowFailure = false) =>
    h.exec(vm1.ns, ['ping', '-q', '-c', String(count), '-i', '0.005', '-W', '1', vm2.ip], { timeoutMs: 30_000, allowFailure });

  // 1. Carried natively, counted exactly.
  await ping(200);
  const carried = hub.nativeCarriedFrames!;
  assert.ok(carried >= 150, `the hub's forwarder carried ${carried} of the 200 echo requests`);
  assert.ok(spoke.nativeCarriedFrames! >= 300, `the spoke's forwarder carried ${spoke.nativeCarriedFrames} frames (requests in, replies out)`);
  const metric = /^vnet_daemon_native_forwarded_frames_total\{host="h1"\} (\d+)$/m.exec(await createDaemonRegistry({ daemon: hub }).metrics());
  assert.ok(metric !== null && Number(metric[1]) >= carried, `the metric shows what the hub's forwarder carried: ${metric?.[0]}`);
  await assertCountersExact(h, [hub, spoke], [vm1, vm2], [MAC1, MAC2]);

  // 2. A drop rule applies at once: nothing more reaches vm2.
  await assertDropRuleAtOnce(h, hub, vm2, [MAC1, MAC2], ping);

  // 3. A link change: the hub closes the link; the spoke redials; the forwarder carries the flow over the new one.
  const oldLink = hub.link('h2')!;
  await oldLink.close('test: link change');
  await waitFor(() => hub.link('h2') !== undefined && hub.link('h2') !== oldLink && spoke.link('h1') !== undefined, 'the spoke redialled');
  const beforeNew = hub.nativeCarriedFrames!;
  await ping(100);
  assert.ok(hub.nativeCarriedFrames! - beforeNew >= 50, 'the new link is served natively too');
  await waitFor(async () => {
    const tx = await kernelCounter(h, vm1.ns, vm1.dev, 'tx_packets');
    return hub.port(vm1.dev)!.stats.rxFrames === tx;
  }, 'port counters still equal the frames vm1 sent');
});

test('a hub relays between two spokes on the native forwarder, link to link, counters exact', { timeout: 120_000 }, async (t) => {
  const h = await useNetns(t, 'vnf-');
  const hub = await startDaemon(t, 'hub');
  const a = await startDaemon(t, 'sA', hub);
  const b = await startDaemon(t, 'sB', hub);
  const [vmA, vmB] = await vmPair(h, [a, b], [MAC1, MAC2], '10.97.0');
  await waitFor(() => a.link('hub') !== undefined && b.link('hub') !== undefined, 'both spokes linked to the hub');
  await h.exec(vmA.ns, ['ping', '-q', '-c', '200', '-i', '0.005', '-W', '1', vmB.ip], { timeoutMs: 30_000 });
  assert.ok(hub.nativeCarriedFrames! >= 300, `the hub's forwarder relayed ${hub.nativeCarriedFrames} of the 400 frames`);
  await waitFor(() => {
    const toB = hub.link('sB')!.stats;
    const fromB = b.link('hub')!.stats;
    const toA = hub.link('sA')!.stats;
    const fromA = a.link('hub')!.stats;
    hub.facts(); // merges the forwarders' counts (the spokes' too: their own facts)
    a.facts();
    b.facts();
    return toB.txFrames === fromB.rxFrames && toA.txFrames === fromA.rxFrames && fromA.txFrames === toA.rxFrames && toB.txFrames >= 200;
  }, 'each link counts on both ends the same frames');
});
