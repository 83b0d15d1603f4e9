import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEPLOYMENT_YAML } from '../controller/fixtures/controller-harness.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { freePortBelowEphemeral } from '../helpers/free-port.ts';
import { ControllerClient } from '../../src/cli/ctl-client.ts';
import type { ReplicaStatusView } from '../../src/controller/replica-status.ts';

/** `vnet controller --store etcd://...` as processes (TLS to etcd with a client certificate): two replicas, one leads; the leader killed -9, the other takes over. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3, { tls: true }); });
after(async () => { await cluster.stop(); });

interface Replica { child: ChildProcess; stderr(): string; exited: Promise<number | null> }

const storeUrl = (prefix = `/vnet-cli-${process.pid}`): string => `etcd://${cluster.endpoints.map((e) => e.replace('https://', '')).join(',')}${prefix}`;
const etcdTlsArgs = (): string[] => ['--etcd-ca', cluster.tls!.files.ca, '--etcd-cert', cluster.tls!.files.cert, '--etcd-key', cluster.tls!.files.key];

/**
 * The replicas' lease: 5 s. The tests expect r1 to lead until they kill it; a shorter lease can lapse on its
 * own on a loaded 2-core machine (its holder must hear etcd renew it within 3/4 of it), and r2 then leads
 * early (migration-leader-change.test.ts saw it with 2 s at load 15).
 */
const LEASE_TTL_S = 5;

function replica(t: { after(fn: () => unknown): void }, dir: string, name: string, prefix = `/vnet-cli-${process.pid}`, addresses = ['--control', '127.0.0.1:0', '--api', '127.0.0.1:0']): Replica {
  const child = spawn(process.execPath, [VNET, 'controller', '-t', join(dir, 'topology.yaml'), '--tls-dir', join(dir, 'tls'), '--store', storeUrl(prefix), ...etcdTlsArgs(),
    '--replica-name', name, '--lease-ttl', String(LEASE_TTL_S), ...addresses, '--token-file', join(dir, `token-${name}`)],
  { env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return { child, stderr: () => stderr, exited };
}

test('two controller replicas over etcd: one leads; killed -9, the other takes over; SIGTERM ends a replica cleanly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-replicas-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'topology.yaml'), DEPLOYMENT_YAML);
  execFileSync(process.execPath, [VNET, 'certs', 'init', '--dir', join(dir, 'tls')], { stdio: 'ignore' });

  const r1 = replica(t, dir, 'r1');
  await waitFor(() => r1.stderr().includes('controller: control channel wss://'), 'r1 to lead and start its controller', 30_000);
  const r2 = replica(t, dir, 'r2');
  await waitFor(() => r2.stderr().includes('campaigning for the leadership'), 'r2 to follow the store', 30_000);
  assert.doesNotMatch(r2.stderr(), /controller: control channel/, 'a follower runs no controller');

  r1.child.kill('SIGKILL');
  await r1.exited;
  await waitFor(() => r2.stderr().includes('controller: control channel wss://'), 'r2 to take over after r1 was killed', 30_000);
  // The API token was created at the first leader's start, in the store: the new leader does not create another.
  assert.doesNotMatch(r2.stderr(), /API token created/);

  r2.child.kill('SIGTERM');
  assert.equal(await r2.exited, 0, r2.stderr());
});

test('bad etcd options are refused with exit 2, naming what is wrong', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-replicas-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'topology.yaml'), DEPLOYMENT_YAML);
  const run = (extra: string[]): { status: number | null; stderr: string } => {
    try {
      execFileSync(process.execPath, [VNET, 'controller', '-t', join(dir, 'topology.yaml'), '--tls-dir', join(dir, 'tls'), ...extra],
        { env: { PATH: process.env.PATH ?? '', VNET_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'pipe'] });
      return { status: 0, stderr: '' };
    } catch (err) {
      const e = err as { status: number | null; stderr: Buffer };
      return { status: e.status, stderr: e.stderr.toString('utf8') };
    }
  };
  const halfCert = run(['--store', storeUrl(), '--etcd-ca', cluster.tls!.files.ca, '--etcd-cert', cluster.tls!.files.cert]);
  assert.equal(halfCert.status, 2);
  assert.match(halfCert.stderr, /--etcd-cert and --etcd-key go together/);
  const noLease = run(['--store', storeUrl(), '--lease-ttl', '0']);
  assert.notEqual(noLease.status, 0);
  assert.match(noLease.stderr, /--lease-ttl <seconds>' argument '0' is invalid\. expected whole seconds, 1 to 60/);
  const badUrl = run(['--store', 'etcd://nowhere']);
  assert.equal(badUrl.status, 2);
  assert.match(badUrl.stderr, /"nowhere" is not HOST:PORT/);
});

test('a follower serves the API\'s reads from its replicated store, redirects changes to the leader (vnet ctl follows), and both report the replicas and the store\'s health', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-replicas-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'topology.yaml'), DEPLOYMENT_YAML);
  execFileSync(process.execPath, [VNET, 'certs', 'init', '--dir', join(dir, 'tls')], { stdio: 'ignore' });
  const prefix = `/vnet-cli-api-${process.pid}`;
  const ports = { r1: { control: await freePortBelowEphemeral(), api: await freePortBelowEphemeral() }, r2: { control: await freePortBelowEphemeral(), api: await freePortBelowEphemeral() } };
  const addresses = (name: 'r1' | 'r2'): string[] => ['--control', `127.0.0.1:${ports[name].control}`, '--api', `127.0.0.1:${ports[name].api}`];
  const r1 = replica(t, dir, 'r1', prefix, addresses('r1'));
  await waitFor(() => r1.stderr().includes('controller: control channel wss://'), 'r1 to lead', 30_000);
  const r2 = replica(t, dir, 'r2', prefix, addresses('r2'));
  await waitFor(() => r2.stderr().includes('campaigning for the leadership'), 'r2 to follow', 30_000);
  const token = readFileSync(join(dir, 'token-r1'), 'utf8').trim();
  const leader = new ControllerClient({ baseUrl: `http://127.0.0.1:${ports.r1.api}`, token });
  const follower = new ControllerClient({ baseUrl: `http://127.0.0.1:${ports.r2.api}`, token });

  // Reads on the follower: the leader's state as replicated (the same token authenticates).
  await waitFor(async () => (await follower.get<{ hosts: unknown[] }>('/api/v1/hosts').catch(() => ({ hosts: [] }))).hosts.length === 3, 'the follower to serve the hosts', 30_000);
  assert.deepEqual((await follower.get<{ hosts: Array<{ id: string }> }>('/api/v1/hosts')).hosts.map((h) => h.id), (await leader.get<{ hosts: Array<{ id: string }> }>('/api/v1/hosts')).hosts.map((h) => h.id));

  // The follower's event stream carries the leader's events as they replicate.
  const streamed: Array<{ type: string; payload: unknown }> = [];
  const stop = new AbortController();
  const { latestSeq } = await follower.get<{ latestSeq: number }>('/api/v1/events?limit=1');
  const following = follower.followEvents(latestSeq, (e) => streamed.push(e), { signal: stop.signal });
  t.after(async () => { stop.abort(); await following.catch(() => undefined); });

  // A change sent to the follower: 307 to the same path on the leader's API, without anything written here.
  const raw = await fetch(`http://127.0.0.1:${ports.r2.api}/api/v1/links`, {
    method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ a: 'h1', b: 'h2' }),
  });
  assert.equal(raw.status, 307);
  assert.equal(raw.headers.get('location'), `http://127.0.0.1:${ports.r1.api}/api/v1/links`);
  assert.equal((await raw.json() as { error: { code: string } }).error.code, 'VNET_ERR_NOT_LEADER');
  // The client follows it: the link is made by the leader, and replicated back to the follower.
  const made = await follower.post<{ a: string; b: string; kind: string }>('/api/v1/links', { a: 'h1', b: 'h2', reason: 'through the follower' });
  assert.deepEqual([made.a, made.b, made.kind], ['h1', 'h2', 'fast-path']);
  assert.ok((await leader.get<{ links: Array<{ reason: string }> }>('/api/v1/links')).links.some((l) => l.reason === 'through the follower'));
  await waitFor(async () => (await follower.get<{ links: Array<{ reason: string }> }>('/api/v1/links')).links.some((l) => l.reason === 'through the follower'), 'the link replicated to the follower');
  await waitFor(() => streamed.some((e) => e.type === 'operator-action' && JSON.stringify(e.payload).includes('add-fast-path-link')), 'the leader\'s event on the follower\'s stream');

  // Status, from either replica: who answers, who leads, the etcd members and the leader's lease.
  for (const [client, name, leading] of [[leader, 'r1', true], [follower, 'r2', false]] as const) {
    const s = await client.get<ReplicaStatusView>('/api/v1/status');
    assert.deepEqual([s.replica, s.leading, s.leader?.name, s.leader?.api], [name, leading, 'r1', `http://127.0.0.1:${ports.r1.api}`]);
    assert.equal(s.store.kind, 'etcd');
    assert.deepEqual(s.store.members.map((m) => m.reachable), [true, true, true]);
    assert.equal(s.store.members.filter((m) => m.raftLeader).length, 1, 'one member leads the etcd cluster');
    assert.ok(s.store.leaderLeaseTtlS !== null && s.store.leaderLeaseTtlS > 0 && s.store.leaderLeaseTtlS <= LEASE_TTL_S, `lease TTL ${s.store.leaderLeaseTtlS}`);
  }
  // What only the leader holds in memory (link rates, the smoothed matrix, placement proposals): the follower forwards those reads to it.
  for (const path of ['/api/v1/matrix', '/api/v1/placement', '/api/v1/links', '/api/v1/overview']) {
    const r = await fetch(`http://127.0.0.1:${ports.r2.api}${path}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, path);
    assert.equal(r.headers.get('x-vnet-served-by'), 'r1', `${path} answered by the leader`);
    assert.deepEqual(Object.keys(await r.json() as object).sort(), Object.keys(await leader.get<object>(path)).sort(), path);
  }
  const local = await fetch(`http://127.0.0.1:${ports.r2.api}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(local.headers.get('x-vnet-served-by'), null, 'hosts from the follower\'s own store');
  // And `vnet ctl status` prints it, against the follower.
  const printed = execFileSync(process.execPath, [VNET, 'ctl', '--controller', `http://127.0.0.1:${ports.r2.api}`, '--token', token, 'status'], { encoding: 'utf8' });
  assert.match(printed, /replica: +r2 \(following\)/);
  assert.match(printed, /leader: +r1 \(API http:\/\/127\.0\.0\.1:\d+\)/);
  assert.match(printed, /members: +3 of 3 reachable/);
});
