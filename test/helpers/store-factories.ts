/**
 * Controller stores for tests that run against both backends, each empty,
 * writable and reopenable (a restart, or another replica taking over):
 * a SQLite file reopened from the same path, and an etcd prefix led under an
 * election, reopened as a new replica that loads the prefix and is elected
 * in turn.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient } from '../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore } from '../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection } from '../../src/controller/store/etcd/leader-election.ts';
import { openStore, type ControllerStore } from '../../src/controller/store/store.ts';
import type { EtcdCluster } from './etcd-cluster.ts';

export interface StoreUnderTest {
  /** Empty and writable. */
  store: ControllerStore;
  /** Close `store` (its pending writes sent) and open the same state anew, writable. */
  reopen(): Promise<ControllerStore>;
}

export interface StoreFactory {
  fresh(t: { after(fn: () => unknown): void }): Promise<StoreUnderTest>;
}

export const sqliteStoreFactory: StoreFactory = {
  async fresh(t) {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-store-'));
    const path = join(dir, 'vnet.db');
    let current = openStore({ path });
    t.after(async () => {
      await current.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return {
      store: current,
      async reopen() {
        await current.close();
        current = openStore({ path });
        return current;
      },
    };
  },
};

async function ledStore(cluster: EtcdCluster, prefix: string): Promise<{ store: ControllerStore; close(): Promise<void> }> {
  const client = new EtcdClient({ endpoints: cluster.endpoints });
  const election = new LeaderElection({ client, key: `${prefix}/leader`, candidate: 'test', ttlSeconds: 5 });
  const leadership = await election.campaign();
  const { store, backend } = await openEtcdStore({ client, prefix });
  await backend.lead(leadership.fence);
  return {
    store,
    async close() {
      await store.close();
      await leadership.resign();
      client.close();
    },
  };
}

let prefixes = 0;

/** Stores in `cluster()` (started by the caller's `before`), each under its own key prefix. */
export function etcdStoreFactory(cluster: () => EtcdCluster): StoreFactory {
  return {
    async fresh(t) {
      const prefix = `/vnet-test-${process.pid}-${++prefixes}`;
      let current = await ledStore(cluster(), prefix);
      t.after(() => current.close());
      return {
        store: current.store,
        async reopen() {
          await current.close();
          current = await ledStore(cluster(), prefix);
          return current.store;
        },
      };
    },
  };
}
