import type { Logger } from '../../../common/logger.ts';
import { EtcdRequestError } from '../../errors.ts';
import type { EtcdFence } from './etcd-backend.ts';
import type { EtcdClient, Watch } from './etcd-client.ts';

/**
 * One leader among the controller replicas, by an etcd lease.
 *
 * A candidate holds a lease of `ttlSeconds` (kept alive every fifth of it)
 * and tries to create the election key with that lease, `If` the key does
 * not exist (create revision 0). The one that creates it leads; its term is
 * the key's create revision, the fence every store write is guarded by
 * (etcd-backend.ts). The others watch the key and try again when it goes:
 * deleted at a resignation, or by etcd when the leader's lease ends (its
 * process died, or it was cut off from etcd).
 *
 * A leader steps down *before* etcd could end its lease: the lease runs at
 * most `ttl` from the moment a keep-alive was sent (etcd counts from when it
 * received it, later), so when no keep-alive has been answered by
 * `sent + ttl − margin` the leader stops at once, with a margin of a quarter
 * of the TTL (and four keep-alives to get one through: an etcd leader
 * election, a member's restart). It also stops when a keep-alive finds the lease gone or the key
 * is no longer its own. Either way `lost` resolves with the reason; a new
 * leader can only be elected after the old lease ended, so the two terms
 * never overlap, and the fence refuses a late write of the old one anyway.
 */

export interface LeaderElectionInit {
  client: EtcdClient;
  /** The election key, e.g. `/vnet/leader`. */
  key: string;
  /** This replica's name, stored as the key's value (who leads, for `status`). */
  candidate: string;
  ttlSeconds: number;
  logger?: Logger;
}

export interface Leadership {
  readonly fence: EtcdFence;
  readonly leaseId: string;
  /** Resolves with the reason when this term has ended (for whatever cause). */
  readonly lost: Promise<string>;
  /**
   * Whether the term still holds, as far as this replica knows, checked
   * synchronously before each store write and flush (etcd-backend.ts).
   * On the election thread (election-thread.ts) it reads shared memory,
   * so it turns false the moment the thread ends the term.
   */
  holds(): boolean;
  /** End the term now: the key is deleted so another replica takes over at once. */
  resign(): Promise<void>;
}

/** Refuses a lease TTL under 1 s (etcd's own floor is higher still). */
export function checkLeaseTtl(ttlSeconds: number): void {
  if (!(ttlSeconds >= 1)) throw new EtcdRequestError(`lease TTL must be at least 1 s (got ${ttlSeconds})`);
}

/** The current leader's name under `key`, if any. */
export async function currentLeader(client: EtcdClient, key: string): Promise<string | undefined> {
  const r = await client.range(key);
  return r.kvs[0]?.value;
}

export class LeaderElection {
  readonly #c: LeaderElectionInit;
  readonly #log: Logger | undefined;

  constructor(init: LeaderElectionInit) {
    checkLeaseTtl(init.ttlSeconds);
    this.#c = init;
    this.#log = init.logger;
  }

  /** The current leader's name, if any. */
  leader(): Promise<string | undefined> {
    return currentLeader(this.#c.client, this.#c.key);
  }

  /** Campaign until this replica leads (or `signal` aborts). etcd unreachable: retried. */
  async campaign(signal?: AbortSignal): Promise<Leadership> {
    const { client, key, candidate, ttlSeconds } = this.#c;
    for (;;) {
      signal?.throwIfAborted();
      let lease: LeaseKeeper | undefined;
      try {
        const asked = performance.now();
        lease = new LeaseKeeper(client, await client.leaseGrant(ttlSeconds), ttlSeconds, asked);
        for (;;) {
          signal?.throwIfAborted();
          const r = await client.txn([{ key, target: 'CREATE', createRevision: 0 }], [{ put: { key, value: candidate, lease: lease.id } }]);
          if (r.succeeded) {
            this.#log?.info({ key, candidate, term: r.revision }, 'elected leader');
            return this.#lead(lease, { key, createRevision: r.revision });
          }
          if (lease.ended) throw new EtcdRequestError('candidate lease lost while waiting');
          await this.#keyGone(lease, signal);
        }
      } catch (err) {
        if (lease !== undefined) {
          lease.stop();
          void client.leaseRevoke(lease.id).catch(() => undefined);
        }
        if (signal?.aborted === true) throw signal.reason;
        this.#log?.warn({ err }, 'election: etcd trouble, campaigning again');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Resolves when the key no longer exists (or the candidate's own lease ended, to be granted anew). */
  async #keyGone(lease: LeaseKeeper, signal: AbortSignal | undefined): Promise<void> {
    const { client, key } = this.#c;
    const r = await client.range(key);
    if (r.kvs.length === 0) return;
    let watch: Watch | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        watch = client.watch(key, undefined, r.revision + 1, {
          onEvents: (events) => { if (events.some((e) => e.type === 'DELETE')) resolve(); },
          onCompacted: () => resolve(),
        });
        void lease.ending.then(() => reject(new EtcdRequestError('candidate lease lost while waiting')));
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    } finally {
      watch?.close();
    }
  }

  #lead(lease: LeaseKeeper, fence: EtcdFence): Leadership {
    const { client, key } = this.#c;
    let end!: (reason: string) => void;
    const lost = new Promise<string>((resolve) => { end = resolve; });
    let ended = false;
    const watch = client.watch(key, undefined, fence.createRevision + 1, {
      onEvents: (events) => {
        if (events.some((e) => e.type === 'DELETE' || e.kv.createRevision !== fence.createRevision)) stop('the election key is no longer ours');
      },
      onCompacted: () => undefined,
    });
    const stop = (reason: string): void => {
      if (ended) return;
      ended = true;
      watch.close();
      lease.stop();
      void client.leaseRevoke(lease.id).catch(() => undefined);
      this.#log?.warn({ key, term: fence.createRevision, reason }, 'leadership ended');
      end(reason);
    };
    void lease.ending.then(stop);
    return {
      fence, leaseId: lease.id, lost,
      holds: () => !ended,
      resign: async () => {
        if (ended) return;
        try {
          await client.txn([{ key, target: 'CREATE', createRevision: fence.createRevision }], [{ delete: { key } }]);
        } finally {
          stop('resigned');
        }
      },
    };
  }
}

/**
 * Keeps one lease alive: a keep-alive every fifth of the TTL, each bounded
 * by the time the lease is sure to be valid. `ending` resolves (once) with
 * the reason the lease can no longer be counted on.
 */
class LeaseKeeper {
  readonly id: string;
  readonly ending: Promise<string>;
  ended = false;
  readonly #client: EtcdClient;
  readonly #ttlMs: number;
  #validUntil: number;
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #end!: (reason: string) => void;

  /** `asked`: when the grant was sent (etcd started the lease later). */
  constructor(client: EtcdClient, id: string, ttlSeconds: number, asked: number) {
    this.#client = client;
    this.id = id;
    this.#ttlMs = ttlSeconds * 1000;
    this.#validUntil = asked + this.#ttlMs - this.#margin;
    this.ending = new Promise((resolve) => { this.#end = resolve; });
    this.#arm();
    this.#schedule();
  }

  get #margin(): number {
    return this.#ttlMs / 4;
  }

  stop(reason = 'stopped'): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
    this.#end(reason);
  }

  #arm(): void {
    clearTimeout(this.#deadline);
    const left = Math.max(0, this.#validUntil - performance.now());
    this.#deadline = setTimeout(() => this.stop('lease not renewed in time (cut off from etcd?)'), left);
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#keepAlive(), this.#ttlMs / 5);
  }

  async #keepAlive(): Promise<void> {
    if (this.ended) return;
    const sent = performance.now();
    try {
      const ttl = await this.#client.leaseKeepAlive(this.id, Math.max(100, this.#validUntil - sent));
      if (this.ended) return;
      if (ttl <= 0) {
        this.stop('lease expired in etcd');
        return;
      }
      this.#validUntil = sent + ttl * 1000 - this.#margin;
      this.#arm();
    } catch (err) {
      if (err instanceof EtcdRequestError) {
        this.stop(`lease refused by etcd (${err.message})`);
        return;
      }
      // Not answered: the deadline timer decides; try again meanwhile.
    }
    if (!this.ended) this.#schedule();
  }
}
