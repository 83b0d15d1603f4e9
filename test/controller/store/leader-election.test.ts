import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { EtcdClient } from '../../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore } from '../../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection, type Leadership } from '../../../src/controller/store/etcd/leader-election.ts';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import { startTcpCut } from '../../helpers/tcp-cut.ts';
import { waitFor } from '../../helpers/wait.ts';

// Leader election and fenced writes against a 3-member etcd cluster on loopback.
// Lease TTL 3 s: small, yet a keep-alive every second has two seconds of slack on a loaded machine.
const TTL = 3;
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

let keys = 0;
const freshKey = (): string => `/vnet-election-${process.pid}-${++keys}`;

function contender(t: { after(fn: () => unknown): void }, key: string, name: string, endpoints = cluster.endpoints, ttlSeconds = TTL): { election: LeaderElection; client: EtcdClient } {
  const client = new EtcdClient({ endpoints, requestTimeoutMs: 2000 });
  t.after(() => client.close());
  return { election: new LeaderElection({ client, key, candidate: name, ttlSeconds }), client };
}

test('one leader among three contenders; when it resigns, exactly one other takes over', async (t) => {
  const key = freshKey();
  const abort = new AbortController();
  t.after(() => abort.abort());
  const won: Array<[string, Leadership]> = [];
  for (const name of ['r1', 'r2', 'r3']) {
    const { election } = contender(t, key, name);
    void election.campaign(abort.signal).then((l) => { won.push([name, l]); }, () => undefined);
  }
  await waitFor(() => won.length >= 1, 'a first leader');
  const [firstName, first] = won[0]!;
  const { election: observer } = contender(t, key, 'observer');
  assert.equal(await observer.leader(), firstName);
  assert.equal(won.length, 1, 'only one contender leads');
  await first.resign();
  await waitFor(() => won.length >= 2, 'a second leader after the resignation');
  const [secondName, second] = won[1]!;
  assert.notEqual(secondName, firstName);
  assert.ok(second.fence.createRevision > first.fence.createRevision, 'a new term has a higher revision');
  assert.equal(await observer.leader(), secondName);
  assert.equal(won.length, 2);
  await second.resign();
  await waitFor(() => won.length === 3, 'the last contender leads');
  await won[2]![1].resign();
});

test('the leader\'s process killed (-9): its lease ends and the other contender takes over', async (t) => {
  const key = freshKey();
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'fixtures', 'etcd-contender.ts'), cluster.endpoints.join(','), key, 'doomed', String(TTL)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor(() => out.includes('leader '), 'the child process to lead', 30_000);
  const { election } = contender(t, key, 'survivor');
  assert.equal(await election.leader(), 'doomed');
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  const leadership = await election.campaign();
  assert.equal(await election.leader(), 'survivor');
  await leadership.resign();
});

test('a leader cut off from etcd steps down before its lease ends; only then does the other take over', async (t) => {
  const key = freshKey();
  const target = new URL(cluster.endpoints[0]!);
  const relay = await startTcpCut({ host: target.hostname, port: Number(target.port) });
  t.after(() => relay.close());
  const cutOff = contender(t, key, 'cut-off', [relay.url]);
  const leadership = await cutOff.election.campaign();
  const order: string[] = [];
  void leadership.lost.then((reason) => order.push(`stepped down: ${reason}`));
  const other = contender(t, key, 'other');
  const abort = new AbortController();
  t.after(() => abort.abort());
  const taken = other.election.campaign(abort.signal).then((l) => { order.push('other leads'); return l; });
  relay.cut();
  const next = await taken;
  assert.equal(order.length, 2, `both happened: ${order.join('; ')}`);
  assert.match(order[0]!, /^stepped down: lease not renewed in time/, `the cut-off leader stopped first (${order.join('; ')})`);
  assert.equal(order[1], 'other leads');
  await next.resign();
});

test('a deposed leader\'s late write is refused by the fence; the new leader\'s state has none of it', async (t) => {
  const prefix = freshKey();
  const a = contender(t, `${prefix}/leader`, 'a');
  const la = await a.election.campaign();
  const { store: storeA, backend: backendA } = await openEtcdStore({ client: a.client, prefix });
  await backendA.lead(la.fence);
  const fenced: string[] = [];
  backendA.onWriteRefused((err) => fenced.push(err.code));
  storeA.upsertHost({ id: 'before', site: undefined, role: 'hub', addresses: [] });
  await storeA.committed();

  // A's term ends behind its back (as when etcd expires its lease while A is paused); B is elected.
  const admin = new EtcdClient({ endpoints: cluster.endpoints });
  t.after(() => admin.close());
  await admin.leaseRevoke(la.leaseId);
  const b = contender(t, `${prefix}/leader`, 'b');
  const lb = await b.election.campaign();
  const { store: storeB, backend: backendB } = await openEtcdStore({ client: b.client, prefix });
  await backendB.lead(lb.fence);

  // A, not yet aware, writes: etcd refuses it.
  storeA.upsertHost({ id: 'late', site: undefined, role: 'spoke', addresses: [] });
  await assert.rejects(storeA.committed()!, { code: 'VNET_ERR_FENCED_WRITE' });
  assert.deepEqual(fenced, ['VNET_ERR_FENCED_WRITE']);
  // B writes, and a replica loading the store now sees B's state, not A's late write.
  storeB.upsertHost({ id: 'from-b', site: undefined, role: 'spoke', addresses: [] });
  await storeB.committed();
  const reader = contender(t, `${prefix}/leader`, 'reader');
  const { store: fresh } = await openEtcdStore({ client: reader.client, prefix });
  assert.deepEqual(fresh.listHosts().map((h) => h.id), ['before', 'from-b']);
  // A follower refuses writes outright, before anything changes.
  assert.throws(() => fresh.upsertHost({ id: 'x', site: undefined, role: 'spoke', addresses: [] }), { code: 'VNET_ERR_NOT_LEADER' });
  assert.equal(fresh.getHost('x'), undefined);
  await backendA.stepDown();
  await Promise.all([storeA.close(), storeB.close(), fresh.close()]);
  await lb.resign();
});

test('an etcd member killed: the cluster keeps quorum, the leader keeps writing and a follower keeps following', async (t) => {
  const prefix = freshKey();
  // A TTL that outlasts an etcd leader election (the member killed may be the raft leader).
  const leader = contender(t, `${prefix}/leader`, 'leader', cluster.endpoints, 6);
  const lease = await leader.election.campaign();
  let lost: string | undefined;
  void lease.lost.then((r) => { lost = r; });
  const { store, backend } = await openEtcdStore({ client: leader.client, prefix });
  await backend.lead(lease.fence);
  const follower = contender(t, `${prefix}/leader`, 'follower');
  const { store: followerStore } = await openEtcdStore({ client: follower.client, prefix });
  store.upsertHost({ id: 'h0', site: undefined, role: 'hub', addresses: [] });
  await store.committed();
  await waitFor(() => followerStore.getHost('h0'), 'the follower to see h0');

  // Kill the member both clients talk to first.
  await cluster.kill('m0');
  t.after(() => cluster.restart('m0'));
  for (let i = 1; i <= 20; i++) store.upsertVm({ mac: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`, name: undefined, ip: undefined, host: 'h0', state: 'running', source: 'learned', updatedMs: i });
  await store.committed();
  await waitFor(() => followerStore.listVms().length === 20, 'the follower to see the 20 VMs written after the kill', 20_000);
  assert.equal(lost, undefined, 'the leadership held');
  await Promise.all([store.close(), followerStore.close()]);
  await lease.resign();
});
