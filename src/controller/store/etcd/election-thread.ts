import { Worker } from 'node:worker_threads';
import type { Logger } from '../../../common/logger.ts';
import { EtcdRequestError } from '../../errors.ts';
import type { EtcdClient, EtcdTls } from './etcd-client.ts';
import type { EtcdFence } from './etcd-backend.ts';
import { checkLeaseTtl, currentLeader, type Leadership } from './leader-election.ts';

/**
 * The election (leader-election.ts) on a thread of its own
 * (`worker_threads`, lease-worker.ts) with its own etcd client, so that the
 * lease's keep-alives, its step-down deadline and the watch on the election
 * key never wait for the controller's event loop: a leader busy with 500
 * daemons connecting (a loop busy for seconds) keeps its lease; one cut off
 * from etcd still steps down at `sent + TTL − TTL/4`, timed by the thread.
 *
 *   main thread                         election thread
 *   campaign ───────── campaign ──────▶ grant, create the key If absent
 *            ◀──────── elected ───────  keep-alives, deadline, key watch
 *   write: holds()? ── shared memory ── term ended: state ← ENDED, at once
 *            ◀──────── lost ──────────  (then the message, when the loop is free)
 *   heartbeat ──────── shared memory ─▶ no beat for stallLimitMs: resign
 *
 * The thread marks the term ended in shared memory the moment it ends,
 * before it tells the main thread by message; the store checks that mark
 * synchronously before every write and every flush (`holds`), so a main
 * thread that wakes up after a long stall refuses its own writes at once,
 * whatever messages are still queued. The fence is unchanged: every flush is
 * still refused by etcd unless the election key is the term's.
 *
 * A busy loop must not be taken for a dead leader, but a loop that never
 * comes back (a hang) must not keep the lease for ever: the main thread
 * beats in shared memory every 250 ms, and the thread resigns the term when
 * no beat came for `stallLimitMs` (default 120 s), so another replica takes over.
 */

export interface ElectionThreadInit {
  /** For `leader()`, read on the main thread. */
  client: EtcdClient;
  endpoints: readonly string[];
  tls?: EtcdTls | undefined;
  key: string;
  candidate: string;
  ttlSeconds: number;
  /** A leader whose event loop has not turned for this long resigns (default 120 s). */
  stallLimitMs?: number | undefined;
  logger?: Logger;
}

/** Shared memory: Int32 slots, then the term (create revision) as a BigInt64 at byte 16. */
export const SLOT_STATE = 0;
export const SLOT_BEAT = 1;
export const STATE_IDLE = 0;
export const STATE_LEADING = 1;
export const STATE_ENDED = 2;
export const SHARED_BYTES = 24;
export const TERM_OFFSET = 16;

export interface LeaseWorkerData {
  endpoints: string[];
  tls?: EtcdTls | undefined;
  key: string;
  candidate: string;
  ttlSeconds: number;
  stallLimitMs: number;
  logLevel: string;
  shared: SharedArrayBuffer;
}

export type ToLeaseWorker = { type: 'campaign' } | { type: 'abort' } | { type: 'resign' };
export type FromLeaseWorker =
  | { type: 'elected'; fence: EtcdFence; leaseId: string }
  | { type: 'lost'; term: number; reason: string }
  | { type: 'resigned'; term: number }
  | { type: 'log'; line: string };

const BEAT_MS = 250;
export const DEFAULT_STALL_LIMIT_MS = 120_000;

export class ElectionThread {
  readonly #c: ElectionThreadInit;
  readonly #log: Logger | undefined;
  readonly #shared = new SharedArrayBuffer(SHARED_BYTES);
  readonly #slots = new Int32Array(this.#shared, 0, 4);
  readonly #term = new BigInt64Array(this.#shared, TERM_OFFSET, 1);
  #worker: Worker | undefined;
  readonly #listeners = new Set<(m: FromLeaseWorker) => void>();
  /** Campaigns waiting, told when the thread dies. */
  readonly #exitWaiters = new Set<(reason: string) => void>();
  #beat: NodeJS.Timeout | undefined;

  constructor(init: ElectionThreadInit) {
    checkLeaseTtl(init.ttlSeconds);
    this.#c = init;
    this.#log = init.logger;
  }

  /** The current leader's name, if any (read on this thread). */
  leader(): Promise<string | undefined> {
    return currentLeader(this.#c.client, this.#c.key);
  }

  /** Campaign (on the thread) until this replica leads, or `signal` aborts. */
  async campaign(signal?: AbortSignal): Promise<Leadership> {
    signal?.throwIfAborted();
    const worker = this.#start();
    return new Promise<Leadership>((resolve, reject) => {
      const onAbort = (): void => { worker.postMessage({ type: 'abort' } satisfies ToLeaseWorker); done(); reject(signal!.reason); };
      const onMessage = (m: FromLeaseWorker): void => {
        if (m.type !== 'elected') return;
        done();
        resolve(this.#leadership(m.fence, m.leaseId));
      };
      const onExit = (reason: string): void => { done(); reject(new EtcdRequestError(`election thread stopped while campaigning: ${reason}`)); };
      const done = (): void => {
        this.#listeners.delete(onMessage);
        this.#exitWaiters.delete(onExit);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#listeners.add(onMessage);
      this.#exitWaiters.add(onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ type: 'campaign' } satisfies ToLeaseWorker);
    });
  }

  /** Stop the thread (a leadership still held ends: its lease is revoked by etcd's TTL or the resign before). */
  async close(): Promise<void> {
    clearInterval(this.#beat);
    this.#beat = undefined;
    const w = this.#worker;
    this.#worker = undefined;
    if (w !== undefined) await w.terminate();
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const { endpoints, tls, key, candidate, ttlSeconds } = this.#c;
    const workerData: LeaseWorkerData = {
      endpoints: [...endpoints], tls, key, candidate, ttlSeconds,
      stallLimitMs: this.#c.stallLimitMs ?? DEFAULT_STALL_LIMIT_MS,
      logLevel: this.#log?.level ?? 'silent',
      shared: this.#shared,
    };
    const worker = moduleWorker(new URL(`./lease-worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url), workerData);
    worker.unref();
    worker.on('message', (m: FromLeaseWorker) => {
      if (m.type === 'log') this.#relayLog(m.line);
      else for (const l of [...this.#listeners]) l(m);
    });
    const exited = (reason: string): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      // A thread that died cannot renew the lease: whatever term it held is over.
      Atomics.store(this.#slots, SLOT_STATE, STATE_ENDED);
      for (const l of [...this.#listeners]) l({ type: 'lost', term: Number(this.#term[0]), reason });
      for (const w of [...this.#exitWaiters]) w(reason);
    };
    worker.on('error', (err) => { this.#log?.error({ err }, 'election thread failed'); exited(`election thread failed: ${err.message}`); });
    worker.on('exit', (code) => exited(`election thread exited (${code})`));
    this.#worker = worker;
    if (this.#beat === undefined) {
      this.#beat = setInterval(() => Atomics.add(this.#slots, SLOT_BEAT, 1), BEAT_MS);
      this.#beat.unref();
    }
    return worker;
  }

  #leadership(fence: EtcdFence, leaseId: string): Leadership {
    const term = BigInt(fence.createRevision);
    const holds = (): boolean => Atomics.load(this.#slots, SLOT_STATE) === STATE_LEADING && Atomics.load(this.#term, 0) === term;
    let ended = false;
    const lost = new Promise<string>((resolve) => {
      const onMessage = (m: FromLeaseWorker): void => {
        if ((m.type === 'lost' || m.type === 'resigned') && m.term === fence.createRevision) {
          this.#listeners.delete(onMessage);
          ended = true;
          resolve(m.type === 'lost' ? m.reason : 'resigned');
        }
      };
      this.#listeners.add(onMessage);
    });
    return {
      fence, leaseId, lost, holds,
      resign: async () => {
        if (ended || this.#worker === undefined) return;
        this.#worker.postMessage({ type: 'resign' } satisfies ToLeaseWorker);
        await lost;
      },
    };
  }

  /** A log line of the thread's (pino JSON) written through this thread's logger. */
  #relayLog(line: string): void {
    if (this.#log === undefined) return;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const { level, msg, ...fields } = record;
    const label = typeof level === 'number' ? (this.#log.levels.labels[level] ?? 'info') : 'info';
    const write = (this.#log as unknown as Record<string, ((o: object, m: string) => void) | undefined>)[label];
    write?.call(this.#log, { ...fields, thread: 'election' }, String(msg ?? ''));
  }
}

/**
 * A worker running the module at `url`: the compiled `.js` as it is, the
 * TypeScript source (a checkout run through tsx) with tsx registered in the
 * worker first — hooks registered on the main thread do not reach workers.
 */
function moduleWorker(url: URL, workerData: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
