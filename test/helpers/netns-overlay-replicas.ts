/**
 * The overlay of netns-overlay.ts (root: `vnet daemon` processes, namespace
 * VMs on TAP devices) with a replicated controller: a 3-member etcd cluster
 * on loopback (etcd-cluster.ts) and `replicas` `vnet controller --store
 * etcd://…` processes (controller-replicas.ts) with a lease of `leaseTtlS`.
 * Every daemon is given every replica's control channel
 * (`controller: {urls: […]}`) and finds the leader.
 *
 *   const o = await startNetnsOverlayWithControllerReplicas(t, { hosts: ['c1', 'c2'], vms: […], policy: '', replicas: 2, leaseTtlS: 2 });
 *   const leader = await o.controllers.awaitLeader();
 *   await leader.process.kill();                       // kill -9
 *   await o.controllers.awaitLeader((n) => n !== leader.name);
 *
 * Everything (daemons, replicas, etcd, namespaces) is removed when the test ends.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startControllerReplicas, type ControllerReplicas } from './controller-replicas.ts';
import { startEtcdCluster, type EtcdCluster, type EtcdTiming } from './etcd-cluster.ts';
import { launchOverlay, type AfterHook, type NetnsOverlayBase, type NetnsOverlayInit } from './netns-overlay.ts';
import { lifoAfter } from './teardown.ts';

export interface NetnsOverlayReplicasInit extends NetnsOverlayInit {
  replicas: number;
  leaseTtlS: number;
  /** The etcd members' raft timing (a 1 s lease needs an election timeout ≤ 666 ms: etcd-cluster.ts). */
  etcdTiming?: EtcdTiming;
}

export interface NetnsOverlayWithControllerReplicas extends NetnsOverlayBase {
  readonly etcd: EtcdCluster;
  readonly controllers: ControllerReplicas;
  /** The key prefix of the deployment's state in etcd. */
  readonly prefix: string;
}

export async function startNetnsOverlayWithControllerReplicas(t: AfterHook, init: NetnsOverlayReplicasInit): Promise<NetnsOverlayWithControllerReplicas> {
  const td = lifoAfter(t);
  const etcd = await startEtcdCluster(3, init.etcdTiming === undefined ? {} : { timing: init.etcdTiming });
  // Registered before the overlay's own: runs after the daemons and the replicas are gone.
  td.after(() => etcd.stop());
  const prefix = `/vnet-overlay-${process.pid}`;
  let controllers: ControllerReplicas | undefined;
  const upOnLeader = async (ids: readonly string[] | undefined): Promise<boolean> => {
    const client = await controllers!.leaderClient();
    const { hosts } = await client.get<{ hosts: Array<{ id: string; state: string }> }>('/api/v1/hosts').catch(() => ({ hosts: [{ id: '', state: 'down' }] }));
    return hosts.every((h) => ids?.includes(h.id) === false || h.state === 'up');
  };
  const base = await launchOverlay(td, init, async (c) => {
    const deploymentFile = join(c.work, 'overlay-priv.yaml');
    writeFileSync(deploymentFile, c.deploymentYaml);
    controllers = await startControllerReplicas(td, {
      names: Array.from({ length: init.replicas }, (_, i) => `r${i + 1}`), endpoints: etcd.endpoints, prefix, leaseTtlS: init.leaseTtlS,
      deploymentFile, tlsDir: c.certs, tokenFile: c.tokenFile, logDir: c.logDir,
    });
    return { controlUrls: controllers.controlUrls, connected: (hubs) => upOnLeader(hubs), allUp: () => upOnLeader(undefined) };
  });
  return { ...base, etcd, controllers: controllers!, prefix };
}
