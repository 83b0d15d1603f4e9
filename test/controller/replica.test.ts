import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createRootLogger, silentLogger } from '../../src/common/logger.ts';
import { startReplica, type Replica } from '../../src/controller/replica.ts';
import { startController } from '../../src/controller/runtime.ts';
import type { ControllerStore } from '../../src/controller/store/store.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { startTcpCut } from '../helpers/tcp-cut.ts';
import { waitFor } from '../helpers/wait.ts';
import { testDeployment } from './fixtures/controller-harness.ts';
import { testPki } from './fixtures/test-pki.ts';

// Two controller replicas over a 3-member etcd cluster: the leader runs the controller; cut off, it stops and the other takes over with the state.
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

function controllerOn(started: string[], name: string) {
  return async (store: ControllerStore) => {
    const pki = testPki();
    const controller = await startController({ logger: silentLogger(), registry: new Registry(), store }, {
      deployment: testDeployment(), control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000,
    });
    started.push(`${name} started`);
    return { close: async () => { await controller.close(); started.push(`${name} stopped`); } };
  };
}

test('the leader replica runs the controller; cut off from etcd it stops, and the other replica takes over with the stored state', async (t) => {
  const prefix = `/vnet-replica-${process.pid}`;
  const target = new URL(cluster.endpoints[0]!);
  const relay = await startTcpCut({ host: target.hostname, port: Number(target.port) });
  t.after(() => relay.close());
  const log: string[] = [];
  const replicas: Replica[] = [];
  t.after(async () => { for (const r of replicas) await r.close(); });
  const r1 = await startReplica({ logger: process.env.DEBUG_REPLICA ? createRootLogger({ level: 'debug' }) : silentLogger() }, { endpoints: [relay.url], prefix, name: 'r1', ttlSeconds: 3 }, controllerOn(log, 'r1'));
  replicas.push(r1);
  await waitFor(() => log.includes('r1 started'), 'r1 to lead and start its controller', 20_000);
  const hosts = r1.store.listHosts().map((h) => h.id);
  assert.ok(hosts.length > 0, 'the controller wrote the deployment\'s hosts');
  await r1.store.committed();

  const r2 = await startReplica({ logger: process.env.DEBUG_REPLICA ? createRootLogger({ level: 'debug' }) : silentLogger() }, { endpoints: cluster.endpoints.slice(1), prefix, name: 'r2', ttlSeconds: 3 }, controllerOn(log, 'r2'));
  replicas.push(r2);
  // A follower: the state followed from etcd, writes refused, no controller running.
  await waitFor(() => r2.store.listHosts().length === hosts.length, 'r2 to follow the hosts');
  assert.equal(r2.leading, false);
  assert.throws(() => r2.store.upsertHost({ id: 'x', site: undefined, role: 'spoke', addresses: [] }), { code: 'VNET_ERR_NOT_LEADER' });

  relay.cut();
  await waitFor(() => log.includes('r2 started'), 'r2 to take over', 30_000);
  assert.deepEqual(log.slice(0, 3), ['r1 started', 'r1 stopped', 'r2 started'], 'r1 stopped before r2 started');
  assert.equal(r1.leading, false);
  assert.equal(r2.terms, 1);
  assert.deepEqual(r2.store.listHosts().map((h) => h.id), hosts);
  assert.throws(() => r1.store.upsertHost({ id: 'late', site: undefined, role: 'spoke', addresses: [] }), { code: 'VNET_ERR_NOT_LEADER' });
});
