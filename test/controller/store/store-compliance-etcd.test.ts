import { after, before } from 'node:test';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import { etcdStoreFactory } from '../../helpers/store-factories.ts';
import { storeCompliance } from './store-compliance.ts';

// The store compliance suite on etcd: a 3-member cluster on loopback; each test
// its own key prefix; the store led under an election, reopened as a new
// replica that loads the prefix and is elected in turn.
let cluster: EtcdCluster;
before(async () => { cluster = await startEtcdCluster(3); });
after(async () => { await cluster.stop(); });

storeCompliance('etcd', etcdStoreFactory(() => cluster));
