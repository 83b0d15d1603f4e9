import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { startFollowerControl, type FollowerControl } from '../../src/controller/follower-control.ts';
import { startReplica, type Replica } from '../../src/controller/replica.ts';
import { startController, type ControllerHandle } from '../../src/controller/runtime.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { freePortBelowEphemeral } from '../helpers/free-port.ts';
import { waitFor } from '../helpers/wait.ts';
import { DEPLOYMENT_YAML, testDeployment } from './fixtures/controller-harness.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { testPki } from './fixtures/test-pki.ts';

// Daemons given the replicas' control URLs find the leader, and follow it across a leader change with no change to their links or rules.
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

const pki = testPki();
// Fast paths between hosts that talk through the hub (about 1 MB/s from v1 to v2, ten times the threshold).
const deployment = testDeployment(DEPLOYMENT_YAML.replace('  updatePeriodMs: 100\n', '  updatePeriodMs: 100\n  smoothingIntervalMs: 200\n  fastPathMinBytesPerSec: 100000\n'));

interface ReplicaUnderTest {
  replica: Replica;
  url: string;
  controller: ControllerHandle | undefined;
  follower: FollowerControl | undefined;
  refused: number;
}

async function replicaOn(prefix: string, name: string, endpoints: readonly string[]): Promise<ReplicaUnderTest> {
  const port = await freePortBelowEphemeral();
  const url = `wss://127.0.0.1:${port}/control`;
  const tls = { ...pki.controller, ca: pki.ca };
  const r: ReplicaUnderTest = { replica: undefined as unknown as Replica, url, controller: undefined, follower: undefined, refused: 0 };
  // A 5 s lease: a 2 s one can lapse on its own on a loaded 2-core machine (its holder must hear etcd renew it within
  // 1.5 s), and the leader then changes before the test stops r1 (migration-leader-change.test.ts saw it at load 15).
  // r1 resigns when it stops, so the lease's length does not slow the hand-over here.
  r.replica = await startReplica({ logger: silentLogger() }, { endpoints, prefix, name, ttlSeconds: 5, advertise: { control: url } }, async (store) => {
    const controller = await startController({ logger: silentLogger(), registry: new Registry(), store }, {
      deployment, control: { host: '127.0.0.1', port, tls }, pingIntervalMs: 60_000,
    });
    r.controller = controller;
    return { close: async () => { r.controller = undefined; await controller.close(); } };
  }, async ({ leader }) => {
    const follower = await startFollowerControl({ logger: silentLogger(), leader }, { host: '127.0.0.1', port, tls, replica: name });
    r.follower = follower;
    return { close: async () => { r.refused += follower.refused; r.follower = undefined; await follower.close(); } };
  });
  return r;
}

function daemonOf(id: string, urls: string[], vm: string): { daemon: FakeDaemon; agent: ControllerAgent } {
  const daemon = new FakeDaemon(id, { role: 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 + Number(id.slice(1)) }, vms: [{ mac: vm }] });
  const cert = pki.host(id);
  const agent = new ControllerAgent({ daemon, logger: silentLogger(), clock: realClock }, {
    urls, tls: { ca: pki.ca, cert: cert.cert, key: cert.key }, backoff: { initialMs: 20, maxMs: 200 }, keepaliveMs: 500,
  });
  return { daemon, agent };
}

test('daemons find the leader through a follower\'s refusal and, after a leader change, converge on the new one with no change to links or rules', async (t) => {
  const prefix = `/vnet-replica-daemons-${process.pid}`;
  const replicas: ReplicaUnderTest[] = [];
  const agents: ControllerAgent[] = [];
  t.after(async () => {
    for (const a of agents) await a.close();
    for (const r of replicas) await r.replica.close();
  });
  const r1 = await replicaOn(prefix, 'r1', cluster.endpoints);
  replicas.push(r1);
  await waitFor(() => r1.controller !== undefined, 'r1 to lead', 20_000);
  const r2 = await replicaOn(prefix, 'r2', cluster.endpoints);
  replicas.push(r2);
  await waitFor(() => r2.follower !== undefined, 'r2 to serve as a follower');
  assert.deepEqual(await r2.replica.leader(), { name: 'r1', control: r1.url, api: undefined });

  // The follower first in every daemon's list: refused with the leader's URL, they dial r1.
  const a = daemonOf('h1', [r2.url, r1.url], '02:00:00:00:00:01');
  const b = daemonOf('h2', [r2.url, r1.url], '02:00:00:00:00:02');
  agents.push(a.agent, b.agent);
  a.daemon.steady = [{ src: 0x020000000001, dst: 0x020000000002, frames: 70, bytes: 100_000 }];
  a.agent.start();
  b.agent.start();
  await waitFor(() => a.agent.state === 'connected' && b.agent.state === 'connected', 'both daemons welcomed');
  assert.equal(a.agent.url, r1.url);
  assert.equal(b.agent.url, r1.url);
  assert.ok((r2.follower?.refused ?? 0) >= 2, 'the follower refused both hellos');
  assert.equal(a.agent.stats.lastError?.code, 'VNET_ERR_NOT_LEADER');

  // Converged on r1: a fast path h1–h2, its rule, every version acknowledged.
  const acked = (r: ReplicaUnderTest, d: FakeDaemon): boolean => {
    const v = r.controller?.store.getVersions(d.hostId);
    return v !== undefined && v.linksVersion > 0 && v.linksAcked === v.linksVersion && v.rulesAcked === v.rulesVersion && d.linksVersion === v.linksVersion && d.rulesVersion === v.rulesVersion;
  };
  await waitFor(() => a.daemon.links.some((l) => l.peer === 'h2') && b.daemon.links.some((l) => l.peer === 'h1'), 'the fast path pushed to both ends', 15_000);
  await waitFor(() => a.daemon.rules.some((r) => JSON.stringify(r.action) === '{"link":"h2"}'), 'the rule via the fast path');
  await waitFor(() => acked(r1, a.daemon) && acked(r1, b.daemon), 'r1 to see every version acknowledged');
  await r1.controller!.store.committed();
  const before = [a, b].map((d) => ({ links: d.daemon.links, rules: d.daemon.rules, applied: d.daemon.applied.length, linksVersion: d.daemon.linksVersion, rulesVersion: d.daemon.rulesVersion }));
  const connects = a.agent.stats.connects + b.agent.stats.connects;

  // The leader goes (a clean stop: r2 takes over at once); the daemons find r2 and it finds them converged.
  await r1.replica.close();
  await waitFor(() => r2.controller !== undefined, 'r2 to lead', 20_000);
  await waitFor(() => a.agent.state === 'connected' && b.agent.state === 'connected' && a.agent.stats.connects + b.agent.stats.connects === connects + 2, 'both daemons welcomed by r2', 20_000);
  assert.equal(a.agent.url, r2.url);
  assert.equal(b.agent.url, r2.url);
  await waitFor(() => acked(r2, a.daemon) && acked(r2, b.daemon) && r2.controller!.store.listHosts().filter((h) => h.connected).length === 2, 'r2 to hold both daemons converged');
  // Update periods on r2 past its adaptation's warm-up (3 smoothing intervals of 200 ms), the traffic still flowing: nothing pushed, so nothing removed and re-added.
  const reports = a.agent.stats.trafficReports;
  await waitFor(() => a.agent.stats.trafficReports >= reports + 15, 'fifteen update periods on r2');
  const after = [a, b].map((d) => ({ links: d.daemon.links, rules: d.daemon.rules, applied: d.daemon.applied.length, linksVersion: d.daemon.linksVersion, rulesVersion: d.daemon.rulesVersion }));
  assert.deepEqual(after, before, 'no set applied after the leader change: links and rules as they were');
  assert.equal(a.agent.stats.applyFailures + b.agent.stats.applyFailures, 0);
});
