import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ElectionThread } from '../../../src/controller/store/etcd/election-thread.ts';
import { EtcdClient } from '../../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore } from '../../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection } from '../../../src/controller/store/etcd/leader-election.ts';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import { startTcpCut } from '../../helpers/tcp-cut.ts';
import { waitFor } from '../../helpers/wait.ts';

// The election on its own thread (election-thread.ts) against a 3-member etcd
// on loopback. TTL 2 s (etcd's minimum at its default election timeout): the
// leader steps down 1.5 s after its last answered keep-alive, so a main
// thread busy for 4 s is well past that deadline.
const TTL = 2;
const BUSY_MS = 4000;
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

let keys = 0;
const freshPrefix = (): string => `/vnet-thread-${process.pid}-${++keys}`;

/** The controller's event loop busy (a connect storm, a big reconcile): nothing else runs on this thread meanwhile. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* the loop is monopolised: no timer, no socket read runs here */ }
}

function client(t: { after(fn: () => unknown): void }, endpoints = cluster.endpoints): EtcdClient {
  const c = new EtcdClient({ endpoints, requestTimeoutMs: 2000 });
  t.after(() => c.close());
  return c;
}

function thread(t: { after(fn: () => unknown): void }, key: string, init: { endpoints?: string[]; stallLimitMs?: number } = {}): ElectionThread {
  const endpoints = init.endpoints ?? cluster.endpoints;
  const e = new ElectionThread({ client: client(t, endpoints), endpoints, key, candidate: 'busy', ttlSeconds: TTL, stallLimitMs: init.stallLimitMs });
  t.after(() => e.close());
  return e;
}

test('a leader whose event loop is busy past the step-down deadline keeps its lease on the election thread (on the loop, it loses it)', async (t) => {
  const admin = client(t);

  // Before: the election on the controller's own loop. Busy past the deadline, it steps down.
  const inLoop = await new LeaderElection({ client: client(t), key: `${freshPrefix()}/leader`, candidate: 'loop', ttlSeconds: TTL }).campaign();
  let inLoopLost: string | undefined;
  void inLoop.lost.then((r) => { inLoopLost = r; });
  busy(BUSY_MS);
  await waitFor(() => inLoopLost !== undefined, 'the in-loop leader to step down');
  assert.match(inLoopLost!, /lease not renewed in time/);

  // Now: the election thread keeps renewing while this loop is busy.
  const prefix = freshPrefix();
  const election = thread(t, `${prefix}/leader`);
  const leadership = await election.campaign();
  let lost: string | undefined;
  void leadership.lost.then((r) => { lost = r; });
  busy(BUSY_MS);
  assert.equal(leadership.holds(), true, 'the term still holds right after the busy spell');
  const key = await admin.range(`${prefix}/leader`);
  assert.equal(key.kvs[0]?.createRevision, leadership.fence.createRevision, 'the election key is still this term\'s');
  assert.ok(await admin.leaseTimeToLive(leadership.leaseId) > 0, 'the lease is alive in etcd');
  // A fenced write goes through: etcd agrees this is still the leader.
  const { store, backend } = await openEtcdStore({ client: client(t), prefix });
  await backend.lead(leadership.fence, leadership.holds);
  store.upsertHost({ id: 'after-busy', site: undefined, role: 'hub', addresses: [] });
  await store.committed();
  assert.equal(lost, undefined, 'the term did not end');
  await leadership.resign();
  assert.equal(leadership.holds(), false);
  assert.equal((await admin.range(`${prefix}/leader`)).kvs.length, 0, 'resigning deletes the key');
  await backend.stepDown();
  await store.close();
});

test('cut off from etcd while the loop is busy: the thread ends the term at the deadline, and the loop refuses writes the moment it runs again', async (t) => {
  const prefix = freshPrefix();
  const target = new URL(cluster.endpoints[0]!);
  const relay = await startTcpCut({ host: target.hostname, port: Number(target.port) });
  t.after(() => relay.close());
  const election = thread(t, `${prefix}/leader`, { endpoints: [relay.url] });
  const leadership = await election.campaign();
  const { store, backend } = await openEtcdStore({ client: client(t), prefix });
  await backend.lead(leadership.fence, leadership.holds);
  store.upsertHost({ id: 'before', site: undefined, role: 'hub', addresses: [] });
  await store.committed();

  relay.cut();
  busy(BUSY_MS);
  // Nothing has been delivered to this loop yet: the shared mark alone says the term is over.
  assert.equal(leadership.holds(), false, 'the thread ended the term while this loop was busy');
  assert.throws(() => store.upsertHost({ id: 'late', site: undefined, role: 'spoke', addresses: [] }), { code: 'VNET_ERR_NOT_LEADER' });
  assert.equal(store.getHost('late'), undefined, 'the refused write changed nothing');
  assert.match(await leadership.lost, /lease not renewed in time/);

  // Another replica is elected once etcd ends the lease; etcd has none of the late write.
  const other = await new LeaderElection({ client: client(t), key: `${prefix}/leader`, candidate: 'other', ttlSeconds: TTL }).campaign();
  const { store: fresh } = await openEtcdStore({ client: client(t), prefix });
  assert.deepEqual(fresh.listHosts().map((h) => h.id), ['before']);
  await other.resign();
  await Promise.all([store.close(), fresh.close()]);
});

test('a loop that does not run again within the stall limit: the thread resigns, so a hung leader does not keep the lease', async (t) => {
  const prefix = freshPrefix();
  const election = thread(t, `${prefix}/leader`, { stallLimitMs: 1000 });
  const leadership = await election.campaign();
  busy(BUSY_MS);
  assert.equal(leadership.holds(), false, 'the term ended while the loop was stalled');
  assert.match(await leadership.lost, /event loop did not run for \d+ ms \(stall limit 1000 ms\)/);
  const admin = client(t);
  await waitFor(async () => (await admin.range(`${prefix}/leader`)).kvs.length === 0, 'the election key to be deleted');
  // The thread campaigns again when asked, and leads a new term.
  const next = await election.campaign();
  assert.ok(next.fence.createRevision > leadership.fence.createRevision);
  assert.equal(next.holds(), true);
  await next.resign();
});
