import type { Logger } from '../common/logger.ts';
import { EtcdClient, type EtcdTls } from './store/etcd/etcd-client.ts';
import { openEtcdStore } from './store/etcd/etcd-backend.ts';
import { LeaderElection } from './store/etcd/leader-election.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * One controller replica over etcd (docs/ha.md). It loads the store and
 * follows it, campaigns, and while it leads runs the controller (`start`)
 * on the store, its writes fenced by the term. When the term ends — lease
 * not renewed in time, the key gone, a write refused by the fence — it
 * stops writing at once (the store refuses writes before anything else
 * happens), closes the controller, reloads the store from etcd and
 * campaigns again. Only the leader runs the update period, the reconcile
 * loop, the migration coordinator, the control channel and the API.
 */

export interface ReplicaInit {
  endpoints: readonly string[];
  /** Key prefix of the deployment's state (default `/vnet`). */
  prefix: string;
  /** This replica's name (the election key's value while it leads). */
  name: string;
  ttlSeconds: number;
  /** For https:// endpoints. */
  tls?: EtcdTls | undefined;
}

export interface Running {
  close(): Promise<void>;
}

export interface Replica {
  readonly store: ControllerStore;
  /** Terms led so far by this replica. */
  readonly terms: number;
  /** Whether it leads now (its controller running). */
  readonly leading: boolean;
  /** Stop: resign if leading (another replica takes over at once), close the store. */
  close(): Promise<void>;
}

export async function startReplica(
  components: { logger: Logger },
  init: ReplicaInit,
  start: (store: ControllerStore) => Promise<Running>,
): Promise<Replica> {
  const logger = components.logger.child({ component: 'replica', replica: init.name });
  const client = new EtcdClient({ endpoints: init.endpoints, tls: init.tls });
  const { store, backend } = await openEtcdStore({ client, prefix: init.prefix, logger });
  const election = new LeaderElection({ client, key: `${init.prefix}/leader`, candidate: init.name, ttlSeconds: init.ttlSeconds, logger });
  const abort = new AbortController();
  let terms = 0;
  let leading = false;
  let resign: (() => Promise<void>) | undefined;

  const run = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      const leadership = await election.campaign(abort.signal);
      let ended!: (reason: string) => void;
      const end = new Promise<string>((resolve) => { ended = resolve; });
      // The moment the term ends, writes stop: before the controller is even told.
      const stepDown = (reason: string): void => { void backend.stepDown(); ended(reason); };
      void leadership.lost.then(stepDown);
      const unsubscribe = backend.onWriteRefused((err) => stepDown(err.message));
      try {
        await backend.lead(leadership.fence);
      } catch (err) {
        logger.warn({ err }, 'leadership lost before the store could be led');
        unsubscribe();
        await leadership.resign().catch(() => undefined);
        continue;
      }
      terms++;
      leading = true;
      resign = () => leadership.resign();
      logger.info({ term: leadership.fence.createRevision, revision: backend.revision }, 'leading: controller starting');
      let running: Running | undefined;
      try {
        running = await start(store);
      } catch (err) {
        logger.error({ err }, 'controller failed to start: resigning');
      }
      const reason = running === undefined ? 'controller failed to start' : await end;
      leading = false;
      resign = undefined;
      logger.warn({ reason }, 'no longer leading: controller stopping');
      await running?.close().catch((err: unknown) => logger.warn({ err }, 'controller close after the term'));
      unsubscribe();
      await leadership.resign().catch(() => undefined);
      await backend.stepDown();
    }
  };
  const loop = run().catch((err: unknown) => {
    if (!abort.signal.aborted) logger.error({ err }, 'replica stopped');
  });

  return {
    store,
    get terms() { return terms; },
    get leading() { return leading; },
    async close() {
      abort.abort();
      await resign?.().catch(() => undefined);
      const closing = store.close(); // stops a reload that waits for etcd
      await loop;
      await closing;
      client.close();
    },
  };
}
