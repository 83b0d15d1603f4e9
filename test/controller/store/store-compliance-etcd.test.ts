import { after, before } from 'node:test';
import { EtcdClient } from '../../../src/controller/store/etcd/etcd-client.ts';
import { openEtcdStore } from '../../../src/controller/store/etcd/etcd-backend.ts';
import { LeaderElection } from '../../../src/controller/store/etcd/leader-election.ts';
import type { ControllerStore } from '../../../src/controller/store/store.ts';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import { storeCompliance } from './store-compliance.ts';

// The store compliance suite on etcd: a 3-member cluster on loopback; each test
// its own key prefix; the store led under an election, reopened as a new
// replica that loads the prefix and is elected in turn.
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

let prefixes = 0;

async function ledStore(prefix: string): Promise<{ store: ControllerStore; close(): Promise<void> }> {
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

storeCompliance('etcd', {
  async fresh(t) {
    const prefix = `/vnet-test-${process.pid}-${++prefixes}`;
    let current = await ledStore(prefix);
    t.after(() => current.close());
    return {
      store: current.store,
      async reopen() {
        await current.close();
        current = await ledStore(prefix);
        return current.store;
      },
    };
  },
});
