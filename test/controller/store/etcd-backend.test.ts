import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient } from '../../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore, type EtcdBackendInit } from '../../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection } from '../../../src/controller/store/etcd/leader-election.ts';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import { recordingLogger } from '../../helpers/http-inject.ts';

// The etcd backend's flushes: split to etcd's limits, and a write etcd refuses ends the writer's term.
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

let n = 0;
async function led(t: { after(fn: () => unknown): void }, init: Partial<EtcdBackendInit> = {}) {
  const prefix = `/vnet-backend-${process.pid}-${++n}`;
  const client = new EtcdClient({ endpoints: cluster.endpoints });
  t.after(() => client.close());
  const leadership = await new LeaderElection({ client, key: `${prefix}/leader`, candidate: 'w', ttlSeconds: 5 }).campaign();
  t.after(() => leadership.resign());
  const { store, backend } = await openEtcdStore({ client, prefix, ...init });
  await backend.lead(leadership.fence);
  t.after(() => store.close());
  return { store, backend, prefix, client };
}

test('a flush larger than one transaction is split (operations and bytes), its transactions sent together, and lands whole', async (t) => {
  const { store, prefix, client } = await led(t, { maxTxnOps: 8, maxTxnBytes: 600 });
  // How many fenced transactions are in flight at once.
  const txn = client.txn.bind(client);
  let inFlight = 0;
  let most = 0;
  client.txn = async (...args) => {
    most = Math.max(most, ++inFlight);
    try {
      return await txn(...args);
    } finally {
      inFlight--;
    }
  };
  store.transaction(() => {
    for (let i = 0; i < 50; i++) store.upsertHost({ id: `h${String(i).padStart(2, '0')}`, site: 'x'.repeat(40), role: 'spoke', addresses: [] });
  });
  await store.committed();
  assert.ok(most > 1, `the flush's transactions went out together (at most ${most} at once)`);
  const { store: reader } = await openEtcdStore({ client, prefix });
  t.after(() => reader.close());
  assert.equal(reader.listHosts().length, 50);
});

test('a write etcd refuses (too large) ends the term: the writer is told, committed() rejects with the reason', async (t) => {
  const { store, backend } = await led(t, { maxTxnBytes: 8 * 1024 * 1024 });
  const refused: string[] = [];
  backend.onWriteRefused((err) => refused.push(err.code));
  store.appendEvent({ atMs: 1, type: 'huge', data: { blob: 'x'.repeat(2 * 1024 * 1024) } });
  await assert.rejects(store.committed()!, { code: 'VNET_ERR_ETCD_REQUEST' });
  assert.deepEqual(refused, ['VNET_ERR_ETCD_REQUEST']);
});

test('rows of a table the schema dropped (link_reports, schema 9) are ignored when loaded and deleted when a controller leads', async (t) => {
  const prefix = `/vnet-backend-${process.pid}-${++n}`;
  const client = new EtcdClient({ endpoints: cluster.endpoints });
  t.after(() => client.close());
  // What an older controller left: two rows of its link_reports table, beside a host row this schema reads.
  const old = [`${prefix}/t/link_reports/${encodeURIComponent('["h1","h2"]')}`, `${prefix}/t/link_reports/${encodeURIComponent('["h2","h3"]')}`];
  await client.txn([], [
    ...old.map((key) => ({ put: { key, value: '{"a":"h1","b":"h2","up":1}' } })),
    { put: { key: `${prefix}/t/hosts/${encodeURIComponent('["h1"]')}`, value: JSON.stringify({ id: 'h1', site: 's', role: 'spoke', addresses: '[]' }) } },
    { put: { key: `${prefix}/schema`, value: '8' } },
  ]);
  const log = recordingLogger('info');
  const { store, backend } = await openEtcdStore({ client, prefix, logger: log.logger });
  t.after(() => store.close());
  assert.deepEqual(store.listHosts().map((h) => h.id), ['h1'], 'the rows this schema has are loaded');
  assert.equal((await client.range(old[0]!)).kvs.length, 1, 'a follower deletes nothing');
  assert.ok(log.lines.some((l) => l.includes('no longer has') && l.includes('"link_reports":2')), 'the load says what it ignored');
  const leadership = await new LeaderElection({ client, key: `${prefix}/leader`, candidate: 'w', ttlSeconds: 5 }).campaign();
  t.after(() => leadership.resign());
  await backend.lead(leadership.fence);
  for (const key of old) assert.equal((await client.range(key)).kvs.length, 0, `${key} deleted`);
  assert.equal((await client.range(`${prefix}/t/hosts/${encodeURIComponent('["h1"]')}`)).kvs.length, 1, 'the other rows stay');
  assert.ok(log.lines.some((l) => l.includes('no longer has: deleted') && l.includes('"link_reports":2')));
});
