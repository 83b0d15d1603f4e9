import type { Logger } from '../common/logger.ts';
import { EtcdClient, type EtcdTls } from './store/etcd/etcd-client.ts';
import { openEtcdStore } from './store/etcd/etcd-backend.ts';
import { ElectionThread } from './store/etcd/election-thread.ts';
import type { ControllerStore } from './store/store.ts';
import { etcdReplicaStatus, type ReplicaStatusView } from './replica-status.ts';
import { encodeLeaderRecord, parseLeaderRecord, type LeaderRecord } from './leader-record.ts';

/**
 * One controller replica over etcd (docs/ha.md). It loads the store and
 * follows it, campaigns, and while it leads runs the controller (`start`)
 * on the store, its writes fenced by the term. When the term ends — lease
 * not renewed in time, the key gone, a write refused by the fence — it
 * stops writing at once (the store refuses writes before anything else
 * happens), closes the controller, reloads the store from etcd and
 * campaigns again. Only the leader runs the update period, the reconcile
 * loop, the migration coordinator, the control channel and the API.
 *
 * While it does not lead it runs `follow` (if given): what a follower serves
 * (follower.ts: the control channel's not-the-leader refusal, the API's reads) —
 * stopped before the controller starts on the same addresses, and started
 * again when the term ends. The election key names the leader and its
 * addresses (`advertise`, leader-record.ts); `leader()` reads it.
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
  /** Where daemons and operators reach this replica, written in the election key while it leads. */
  advertise?: { control?: string | undefined; api?: string | undefined } | undefined;
  /** A leader whose event loop has not turned for this long resigns (election-thread.ts; default 120 s). */
  stallLimitMs?: number | undefined;
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
  /** The leading replica as the election key names it (read from etcd; briefly cached). */
  leader(): Promise<LeaderRecord | undefined>;
  /** This replica, the leader, the store's health (`GET /api/v1/status`). */
  status(): Promise<ReplicaStatusView>;
  /** Stop: resign if leading (another replica takes over at once), close the store. */
  close(): Promise<void>;
}

export async function startReplica(
  components: { logger: Logger },
  init: ReplicaInit,
  start: (store: ControllerStore, status: () => Promise<ReplicaStatusView>) => Promise<Running>,
  follow?: (follower: { store: ControllerStore; leader: () => Promise<LeaderRecord | undefined>; status: () => Promise<ReplicaStatusView> }) => Promise<Running>,
): Promise<Replica> {
  const logger = components.logger.child({ component: 'replica', replica: init.name });
  const client = new EtcdClient({ endpoints: init.endpoints, tls: init.tls });
  const { store, backend } = await openEtcdStore({ client, prefix: init.prefix, logger });
  const candidate = encodeLeaderRecord({ name: init.name, control: init.advertise?.control, api: init.advertise?.api });
  // The lease lives on a thread of its own: a busy event loop here cannot starve its keep-alives.
  const election = new ElectionThread({
    client, endpoints: init.endpoints, tls: init.tls, key: `${init.prefix}/leader`, candidate, ttlSeconds: init.ttlSeconds,
    stallLimitMs: init.stallLimitMs, logger,
  });
  const abort = new AbortController();
  let terms = 0;
  let leading = false;
  let resign: (() => Promise<void>) | undefined;
  let following: Running | undefined;
  // One read of the election key serves the hellos (and API calls) of the next half second.
  let asked: { at: number; answer: Promise<LeaderRecord | undefined> } | undefined;
  const leader = (): Promise<LeaderRecord | undefined> => {
    const now = performance.now();
    if (asked === undefined || now - asked.at > 500) {
      const answer = election.leader().then((v) => (v === undefined ? undefined : parseLeaderRecord(v)));
      answer.catch(() => { asked = undefined; });
      asked = { at: now, answer };
    }
    return asked.answer;
  };
  const status = (): Promise<ReplicaStatusView> => etcdReplicaStatus(client, { replica: init.name, leading, electionKey: `${init.prefix}/leader`, location: store.path });
  const startFollowing = async (): Promise<void> => {
    if (follow === undefined || following !== undefined || abort.signal.aborted) return;
    try {
      following = await follow({ leader, store, status });
    } catch (err) {
      logger.warn({ err }, 'could not serve as a follower (address in use?); campaigning anyway');
    }
  };
  const stopFollowing = async (): Promise<void> => {
    const f = following;
    following = undefined;
    await f?.close().catch((err: unknown) => logger.warn({ err }, 'follower close'));
  };

  const run = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      await startFollowing();
      const leadership = await election.campaign(abort.signal);
      asked = undefined;
      await stopFollowing();
      let ended!: (reason: string) => void;
      const end = new Promise<string>((resolve) => { ended = resolve; });
      // The moment the term ends, writes stop: before the controller is even told.
      const stepDown = (reason: string): void => { void backend.stepDown(); ended(reason); };
      void leadership.lost.then(stepDown);
      const unsubscribe = backend.onWriteRefused((err) => stepDown(err.message));
      try {
        await backend.lead(leadership.fence, leadership.holds);
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
        running = await start(store, status);
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
  }).then(stopFollowing);

  return {
    store,
    get terms() { return terms; },
    get leading() { return leading; },
    leader,
    status,
    async close() {
      abort.abort();
      await stopFollowing();
      await resign?.().catch(() => undefined);
      const closing = store.close(); // stops a reload that waits for etcd
      await loop;
      await closing;
      await election.close();
      client.close();
    },
  };
}
