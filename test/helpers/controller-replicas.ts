/**
 * Controller replicas as `vnet controller --store etcd://…` child processes
 * (controller-child.ts, one each) on fixed loopback ports, over an etcd
 * cluster the caller started (etcd-cluster.ts). The first is started alone
 * and leads (it creates the API token, in the shared token file); the others
 * follow. Any of them can be killed -9 and started again.
 *
 *   const rs = await startControllerReplicas(t, { names: ['r1', 'r2'], endpoints, leaseTtlS: 1, … });
 *   const leader = await rs.leader();          // the election key's name, read from etcd
 *   await rs.replica(leader).process.kill();
 *   await rs.awaitLeader((name) => name !== leader);
 *
 * `leader()` reads the election key itself (not a replica's API): who leads
 * is etcd's answer, the same the replicas and the daemons go by.
 */
import { join } from 'node:path';
import { ControllerClient } from '../../src/cli/ctl-client.ts';
import { parseLeaderRecord } from '../../src/controller/leader-record.ts';
import { EtcdClient } from '../../src/controller/store/etcd/etcd-client.ts';
import { startControllerChild, type ControllerChild } from './controller-child.ts';
import { freePortBelowEphemeral } from './free-port.ts';
import { waitFor } from './wait.ts';

export interface ControllerReplicasInit {
  names: readonly string[];
  /** The etcd members' client URLs (http://127.0.0.1:PORT). */
  endpoints: readonly string[];
  /** Key prefix of this deployment's state in etcd. */
  prefix: string;
  leaseTtlS: number;
  deploymentFile: string;
  tlsDir: string;
  /** The token file every replica is given (the first leader writes it). */
  tokenFile: string;
  /** Each replica's output goes to `<logDir>/<name>.log`. */
  logDir: string;
}

export interface ReplicaChild {
  readonly name: string;
  readonly apiUrl: string;
  readonly controlUrl: string;
  /** Its process: `process.kill()` (SIGKILL), `process.restart()`, `process.client`. */
  readonly process: ControllerChild;
}

export interface ControllerReplicas {
  readonly replicas: readonly ReplicaChild[];
  /** Every replica's control channel, for the daemons' `controller.urls`. */
  readonly controlUrls: readonly string[];
  replica(name: string): ReplicaChild;
  /** The leading replica's name as the election key holds it now (undefined: none elected). */
  leader(): Promise<string | undefined>;
  /** Waits until the election key names a replica that `accept`s, and returns it. */
  awaitLeader(accept?: (name: string) => boolean, timeoutMs?: number): Promise<ReplicaChild>;
  /** An operator API client of the replica that leads now. */
  leaderClient(): Promise<ControllerClient>;
}

interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

export async function startControllerReplicas(t: AfterHook, init: ControllerReplicasInit): Promise<ControllerReplicas> {
  const etcd = new EtcdClient({ endpoints: init.endpoints });
  t.after(() => etcd.close());
  const store = `etcd://${init.endpoints.map((e) => new URL(e).host).join(',')}${init.prefix}`;
  const replicas: ReplicaChild[] = [];
  for (const name of init.names) {
    const control = { host: '127.0.0.1', port: await freePortBelowEphemeral() };
    const api = { host: '127.0.0.1', port: await freePortBelowEphemeral() };
    const child = await startControllerChild(t, {
      deploymentFile: init.deploymentFile, dbPath: '', tlsDir: init.tlsDir, tokenFile: init.tokenFile, control, api,
      store: ['--store', store, '--replica-name', name, '--lease-ttl', String(init.leaseTtlS)],
      logFile: join(init.logDir, `${name}.log`),
    });
    replicas.push({ name, apiUrl: `http://${api.host}:${api.port}`, controlUrl: child.controlUrl, process: child });
  }
  const replica = (name: string): ReplicaChild => {
    const r = replicas.find((x) => x.name === name);
    if (r === undefined) throw new Error(`no replica ${name}`);
    return r;
  };
  const leader = async (): Promise<string | undefined> => {
    const kv = (await etcd.range(`${init.prefix}/leader`)).kvs[0];
    return kv === undefined ? undefined : parseLeaderRecord(kv.value).name;
  };
  const awaitLeader = async (accept: (name: string) => boolean = () => true, timeoutMs = 30_000): Promise<ReplicaChild> => {
    const name = await waitFor(async () => {
      const n = await leader().catch(() => undefined);
      return n !== undefined && accept(n) ? n : undefined;
    }, 'a replica to lead', timeoutMs);
    return replica(name);
  };
  return {
    replicas,
    controlUrls: replicas.map((r) => r.controlUrl),
    replica,
    leader,
    awaitLeader,
    async leaderClient() {
      return (await awaitLeader()).process.client;
    },
  };
}
