import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEPLOYMENT_YAML } from '../controller/fixtures/controller-harness.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { waitFor } from '../helpers/wait.ts';

/** `vnet controller --store etcd://...` as processes (TLS to etcd with a client certificate): two replicas, one leads; the leader killed -9, the other takes over. */

const VNET = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3, { tls: true }); });
after(async () => { await cluster.stop(); });

interface Replica { child: ChildProcess; stderr(): string; exited: Promise<number | null> }

const storeUrl = (): string => `etcd://${cluster.endpoints.map((e) => e.replace('https://', '')).join(',')}/vnet-cli-${process.pid}`;
const etcdTlsArgs = (): string[] => ['--etcd-ca', cluster.tls!.files.ca, '--etcd-cert', cluster.tls!.files.cert, '--etcd-key', cluster.tls!.files.key];

function replica(t: { after(fn: () => unknown): void }, dir: string, name: string): Replica {
  const child = spawn(process.execPath, [VNET, 'controller', '-t', join(dir, 'topology.yaml'), '--tls-dir', join(dir, 'tls'), '--store', storeUrl(), ...etcdTlsArgs(),
    '--replica-name', name, '--lease-ttl', '3', '--control', '127.0.0.1:0', '--api', '127.0.0.1:0', '--token-file', join(dir, `token-${name}`)],
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
  const badUrl = run(['--store', 'etcd://nowhere']);
  assert.equal(badUrl.status, 2);
  assert.match(badUrl.stderr, /"nowhere" is not HOST:PORT/);
});
