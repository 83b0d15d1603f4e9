import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient } from '../../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore } from '../../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection } from '../../../src/controller/store/etcd/leader-election.ts';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';

// The store and the election over TLS to etcd, with client certificates (etcd's --client-cert-auth).
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3, { tls: true }); });
after(async () => { await cluster.stop(); });

test('over TLS with a client certificate: elected, written, followed by another replica', async (t) => {
  const tls = cluster.tls!;
  const client = new EtcdClient({ endpoints: cluster.endpoints, tls: { ca: tls.ca, cert: tls.cert, key: tls.key } });
  t.after(() => client.close());
  const leadership = await new LeaderElection({ client, key: '/tls/leader', candidate: 'a', ttlSeconds: 5 }).campaign();
  t.after(() => leadership.resign());
  const { store, backend } = await openEtcdStore({ client, prefix: '/tls' });
  t.after(() => store.close());
  await backend.lead(leadership.fence);
  store.upsertHost({ id: 'h1', site: undefined, role: 'hub', addresses: [] });
  await store.committed();
  const reader = new EtcdClient({ endpoints: cluster.endpoints, tls: { ca: tls.ca, cert: tls.cert, key: tls.key } });
  t.after(() => reader.close());
  const { store: follower } = await openEtcdStore({ client: reader, prefix: '/tls' });
  t.after(() => follower.close());
  assert.deepEqual(follower.listHosts().map((h) => h.id), ['h1']);
});

test('refused without a client certificate, or with plaintext, or trusting another CA', async () => {
  const tls = cluster.tls!;
  const noCert = new EtcdClient({ endpoints: cluster.endpoints, tls: { ca: tls.ca }, requestTimeoutMs: 2000 });
  await assert.rejects(noCert.range('/tls/leader'), { code: 'VNET_ERR_ETCD_UNAVAILABLE' });
  noCert.close();
  const plain = new EtcdClient({ endpoints: cluster.endpoints.map((e) => e.replace('https://', 'http://')), requestTimeoutMs: 2000 });
  await assert.rejects(plain.range('/tls/leader'));
  plain.close();
  const wrongCa = new EtcdClient({ endpoints: cluster.endpoints, tls: { ca: tls.cert, cert: tls.cert, key: tls.key }, requestTimeoutMs: 2000 });
  await assert.rejects(wrongCa.range('/tls/leader'), (err: Error) => /certificate/i.test(String((err as { cause?: Error }).cause?.message ?? err.message)));
  wrongCa.close();
  assert.throws(() => new EtcdClient({ endpoints: cluster.endpoints }), { code: 'VNET_ERR_ETCD_REQUEST', message: /need a CA/ });
});
