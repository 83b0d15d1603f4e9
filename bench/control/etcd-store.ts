/**
 * The etcd store and the election, measured on a 3-member etcd cluster on
 * loopback (test/helpers/etcd-cluster.ts), beside the SQLite file:
 *
 *   node --import tsx bench/control/etcd-store.ts [--writes 200] [--batch 1000] [--ttl 2,3] [--rounds 3]
 *
 * - one-row write until durable (upsertVm, then `committed()`): median and
 *   99th percentile over `--writes`, SQLite file and etcd;
 * - one transaction of `--batch` VMs until durable (etcd: split in
 *   transactions of 128 operations);
 * - failover: a leader's process killed -9 → the other contender elected
 *   (median of `--rounds`, per lease TTL);
 * - step-down: a leader cut off from etcd → it stops (per TTL).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient } from '../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore } from '../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection } from '../../src/controller/store/etcd/leader-election.ts';
import { openStore, type ControllerStore } from '../../src/controller/store/store.ts';
import { startEtcdCluster } from '../../test/helpers/etcd-cluster.ts';
import { startTcpCut } from '../../test/helpers/tcp-cut.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : fallback;
};
const writes = Number(arg('--writes', '200'));
const batch = Number(arg('--batch', '1000'));
const ttls = arg('--ttl', '2,3').split(',').map(Number);
const rounds = Number(arg('--rounds', '3'));
const CONTENDER = join(import.meta.dirname, '..', '..', 'test', 'controller', 'fixtures', 'etcd-contender.ts');

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const mac = (i: number): string => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

async function writeLatencies(store: ControllerStore): Promise<{ one: number[]; batchMs: number }> {
  const one: number[] = [];
  for (let i = 0; i < writes; i++) {
    const t0 = performance.now();
    store.upsertVm({ mac: mac(i), name: undefined, ip: undefined, host: 'h1', state: 'running', source: 'learned', updatedMs: i });
    await store.committed();
    one.push(performance.now() - t0);
  }
  const t0 = performance.now();
  store.transaction(() => {
    for (let i = 0; i < batch; i++) store.upsertVm({ mac: mac(100_000 + i), name: undefined, ip: undefined, host: 'h2', state: 'running', source: 'learned', updatedMs: i });
  });
  await store.committed();
  return { one, batchMs: performance.now() - t0 };
}

const cluster = await startEtcdCluster(3);
const dir = mkdtempSync(join(tmpdir(), 'vnet-bench-store-'));
try {
  const sqlite = openStore({ path: join(dir, 'vnet.db') });
  const s = await writeLatencies(sqlite);
  await sqlite.close();

  const client = new EtcdClient({ endpoints: cluster.endpoints });
  const election = new LeaderElection({ client, key: '/bench/leader', candidate: 'bench', ttlSeconds: 5 });
  const leadership = await election.campaign();
  const { store, backend } = await openEtcdStore({ client, prefix: '/bench' });
  await backend.lead(leadership.fence);
  const e = await writeLatencies(store);
  await store.close();
  await leadership.resign();
  client.close();

  console.log('store writes until durable');
  console.log(`  one row      sqlite: median ${ms(pct(s.one, 0.5))}, p99 ${ms(pct(s.one, 0.99))}   etcd (3 members): median ${ms(pct(e.one, 0.5))}, p99 ${ms(pct(e.one, 0.99))}   (${writes} writes)`);
  console.log(`  ${batch} rows   sqlite: ${ms(s.batchMs)}   etcd: ${ms(e.batchMs)} (${Math.ceil(batch / 128)} transactions of ≤128 operations)`);

  for (const ttl of ttls) {
    const failovers: number[] = [];
    const stepDowns: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const key = `/bench/failover-${ttl}-${r}`;
      const child = spawn(process.execPath, ['--import', 'tsx', CONTENDER, cluster.endpoints.join(','), key, 'doomed', String(ttl)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('leader ')) resolve(); }));
      const c = new EtcdClient({ endpoints: cluster.endpoints });
      const other = new LeaderElection({ client: c, key, candidate: 'other', ttlSeconds: ttl });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const campaign = other.campaign();
      const killedAt = performance.now();
      child.kill('SIGKILL');
      const l = await campaign;
      failovers.push(performance.now() - killedAt);
      await exited;
      await l.resign();

      const target = new URL(cluster.endpoints[0]!);
      const relay = await startTcpCut({ host: target.hostname, port: Number(target.port) });
      const cut = new EtcdClient({ endpoints: [relay.url] });
      const lc = await new LeaderElection({ client: cut, key: `${key}-cut`, candidate: 'cut', ttlSeconds: ttl }).campaign();
      relay.cut();
      const cutAt = performance.now();
      await lc.lost;
      stepDowns.push(performance.now() - cutAt);
      cut.close();
      await relay.close();
      c.close();
    }
    console.log(`lease TTL ${ttl} s: leader killed -9 → other elected: median ${ms(pct(failovers, 0.5))} (max ${ms(Math.max(...failovers))});`
      + ` leader cut off → stepped down: median ${ms(pct(stepDowns, 0.5))} (max ${ms(Math.max(...stepDowns))}); ${rounds} rounds`);
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
