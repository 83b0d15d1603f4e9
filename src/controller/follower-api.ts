import { Registry } from 'prom-client';
import { componentLogger, type Logger } from '../common/logger.ts';
import { AccessService } from './access-service.ts';
import { startApiServer } from './api/api-server.ts';
import { LEADER_ONLY_READS } from './api/leader-reads.ts';
import type { Deployment } from './deployment-file.ts';
import { ControllerEventLog } from './event-log.ts';
import type { LeaderRecord } from './leader-record.ts';
import { ControllerService } from './service.ts';
import { SqliteTokenStore } from './sqlite-token-store.ts';
import type { ControllerStore } from './store/store.ts';
import type { ReplicaStatusView } from './replica-status.ts';
import { TopologyTracker, vttifParamsFromPolicy } from './topology-tracker.ts';
import { topologyView } from './views.ts';
import { ImageCatalog } from './image-catalog.ts';

/**
 * The operator API of a replica that does not lead (docs/ha.md), on the
 * same address as the leader's would be. Reads are served from the
 * replica's store, which follows etcd: hosts, VMs, links, rules, the
 * matrix and topology of the last update period the leader stored,
 * migrations from their stored steps, events and decisions — and the event
 * stream, fed with the leader's events as they are replicated here (checked
 * every `replicatedEventsMs`). What only the leader holds in memory — link
 * rates, the smoothed traffic matrix, placement proposals — is asked of the
 * leader's API: those reads are forwarded (api/leader-reads.ts). The same
 * API tokens authenticate (they are in the store). A change is answered 307
 * to the leader's API, or 503 naming it (api-server.ts `follower`); `vnet
 * ctl` follows the redirect.
 */

export interface FollowerApiComponents {
  logger: Logger;
  store: ControllerStore;
  leader: () => Promise<LeaderRecord | undefined>;
  status: () => Promise<ReplicaStatusView>;
}

export interface FollowerApiInit {
  deployment: Readonly<Deployment>;
  host: string;
  port: number;
  /** This replica's name, for the answer to a change. */
  replica: string;
  /** How often the events replicated from the leader are delivered to the event stream (default 250 ms). */
  replicatedEventsMs?: number;
}

export interface FollowerApi {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startFollowerApi(components: FollowerApiComponents, init: FollowerApiInit): Promise<FollowerApi> {
  const { store, leader, status } = components;
  const logger = componentLogger(components.logger, 'follower-api');
  const events = new ControllerEventLog({ store, logger });
  const topology = new TopologyTracker(vttifParamsFromPolicy(init.deployment.policy));
  topology.restore(topologyView(store.latestTopology()));
  const model = new ControllerService({ store, events, topology, wallClock: Date.now }, { placementThreshold: init.deployment.policy.placementThreshold });
  // Who is connected is the leader's to know; its record of it is in the store. Disconnecting is a change: refused before it gets here.
  const sessions = {
    connectedHosts: () => store.listHosts().filter((h) => h.connected).map((h) => h.id),
    disconnectHost: () => false,
  };
  const access = new AccessService({ store, events, sessions, wallClock: Date.now });
  const server = await startApiServer(
    { logger, model, tokens: new SqliteTokenStore(store), access, images: new ImageCatalog({ store, wallClock: Date.now }), registry: new Registry(), follower: { replica: init.replica, leader, forwardReads: LEADER_ONLY_READS }, status },
    { host: init.host, port: init.port },
  );
  const replicated = setInterval(() => {
    try {
      events.deliverReplicated();
      topology.restore(topologyView(store.latestTopology()));
    } catch (err) {
      logger.warn({ err }, 'replicated events not delivered');
    }
  }, init.replicatedEventsMs ?? 250);
  logger.info({ url: server.url }, 'not leading: serving the API\'s reads from the replicated store, redirecting changes to the leader');
  return {
    url: server.url,
    port: server.port,
    async close() {
      clearInterval(replicated);
      await server.close();
    },
  };
}
