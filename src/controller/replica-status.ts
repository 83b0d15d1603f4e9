import type { EtcdClient } from './store/etcd/etcd-client.ts';
import { parseLeaderRecord } from './leader-record.ts';

/**
 * `GET /api/v1/status` and `vnet ctl status` (docs/ha.md): this controller
 * replica, which one leads, and the store with its health — for etcd, every
 * member asked on its own (reachable, its version, whether it leads the etcd
 * cluster) and the remaining TTL of the leading replica's lease.
 */

export interface StoreMemberView {
  endpoint: string;
  reachable: boolean;
  version: string | null;
  /** This member leads the etcd cluster (raft). */
  raftLeader: boolean;
  error: string | null;
}

export interface ReplicaStatusView {
  /** This replica's name; null for a single controller (SQLite). */
  replica: string | null;
  leading: boolean;
  leader: { name: string; control: string | null; api: string | null } | null;
  store: {
    kind: 'sqlite' | 'etcd';
    location: string;
    members: StoreMemberView[];
    /** Seconds left on the leading replica's lease in etcd (null: no leader, or not etcd). */
    leaderLeaseTtlS: number | null;
  };
}

/** A single controller on SQLite: it leads, no replicas. */
export function sqliteStatus(location: string): ReplicaStatusView {
  return { replica: null, leading: true, leader: null, store: { kind: 'sqlite', location, members: [], leaderLeaseTtlS: null } };
}

/** A replica over etcd: the election key read, its lease's TTL asked, every member asked for its status, at once. */
export async function etcdReplicaStatus(client: EtcdClient, init: { replica: string; leading: boolean; electionKey: string; location: string }): Promise<ReplicaStatusView> {
  const members = Promise.all(client.endpoints.map(async (endpoint): Promise<StoreMemberView> => {
    try {
      const s = await client.memberStatus(endpoint);
      return { endpoint, reachable: true, version: s.version, raftLeader: s.raftLeader, error: null };
    } catch (err) {
      return { endpoint, reachable: false, version: null, raftLeader: false, error: (err as Error).message };
    }
  }));
  const leader = (async () => {
    try {
      const kv = (await client.range(init.electionKey)).kvs[0];
      if (kv === undefined) return { leader: null, ttl: null };
      const r = parseLeaderRecord(kv.value);
      const ttl = kv.lease === '0' ? null : await client.leaseTimeToLive(kv.lease);
      return { leader: { name: r.name, control: r.control ?? null, api: r.api ?? null }, ttl: ttl === null || ttl < 0 ? null : ttl };
    } catch {
      return { leader: null, ttl: null };
    }
  })();
  const [m, l] = await Promise.all([members, leader]);
  return {
    replica: init.replica, leading: init.leading, leader: l.leader,
    store: { kind: 'etcd', location: init.location, members: m, leaderLeaseTtlS: l.ttl },
  };
}
