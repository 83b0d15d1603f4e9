import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { EtcdClient } from './etcd-client.ts';
import {
  SLOT_BEAT, SLOT_STATE, STATE_ENDED, STATE_IDLE, STATE_LEADING, TERM_OFFSET,
  type FromLeaseWorker, type LeaseWorkerData, type ToLeaseWorker,
} from './election-thread.ts';
import { LeaderElection, type Leadership } from './leader-election.ts';

/**
 * The election thread (election-thread.ts says why): campaigns when asked,
 * keeps the lease alive, watches the election key, and marks the end of a
 * term in shared memory before anything else. Its own etcd client, its own
 * event loop: nothing the controller does delays a keep-alive.
 */

const data = workerData as LeaseWorkerData;
const port = parentPort!;
const post = (m: FromLeaseWorker): void => port.postMessage(m);
const slots = new Int32Array(data.shared, 0, 4);
const term = new BigInt64Array(data.shared, TERM_OFFSET, 1);
const logger = pino({ level: data.logLevel, base: null, timestamp: false }, { write: (line: string) => post({ type: 'log', line }) });
const client = new EtcdClient({ endpoints: data.endpoints, tls: data.tls });
const election = new LeaderElection({ client, key: data.key, candidate: data.candidate, ttlSeconds: data.ttlSeconds, logger });

let campaigning: AbortController | undefined;
let leadership: Leadership | undefined;
/** Why the current term was resigned by this thread (a stall), if it was. */
let stalled: string | undefined;

port.on('message', (m: ToLeaseWorker) => {
  if (m.type === 'campaign') void campaign();
  else if (m.type === 'abort') campaigning?.abort(new Error('campaign aborted'));
  else if (m.type === 'resign') resign(leadership);
});

async function campaign(): Promise<void> {
  if (campaigning !== undefined || leadership !== undefined) return;
  const abort = new AbortController();
  campaigning = abort;
  let won: Leadership;
  try {
    won = await election.campaign(abort.signal);
  } catch {
    return; // aborted
  } finally {
    campaigning = undefined;
  }
  leadership = won;
  const revision = won.fence.createRevision;
  Atomics.store(term, 0, BigInt(revision));
  Atomics.store(slots, SLOT_STATE, STATE_LEADING);
  const stall = watchStall(won);
  void won.lost.then((reason) => {
    // Marked first: the main thread checks this before any write, even with this message still queued.
    Atomics.store(slots, SLOT_STATE, STATE_ENDED);
    clearInterval(stall);
    leadership = undefined;
    const why = stalled ?? reason;
    stalled = undefined;
    post(why === 'resigned' ? { type: 'resigned', term: revision } : { type: 'lost', term: revision, reason: why });
  });
  post({ type: 'elected', fence: won.fence, leaseId: won.leaseId });
}

/** End the term here first (shared memory), then in etcd: the key deleted, so another replica takes over at once. */
function resign(l: Leadership | undefined): void {
  if (l === undefined) return;
  Atomics.store(slots, SLOT_STATE, STATE_ENDED);
  void l.resign();
}

/** Resign when the main thread's heartbeat has not moved for `stallLimitMs`: a hung controller must not hold the lease. */
function watchStall(l: Leadership): NodeJS.Timeout {
  let seen = Atomics.load(slots, SLOT_BEAT);
  let since = performance.now();
  return setInterval(() => {
    const beat = Atomics.load(slots, SLOT_BEAT);
    if (beat !== seen) {
      seen = beat;
      since = performance.now();
      return;
    }
    const stalledMs = Math.round(performance.now() - since);
    if (stalledMs >= data.stallLimitMs && stalled === undefined) {
      stalled = `the controller's event loop did not run for ${stalledMs} ms (stall limit ${data.stallLimitMs} ms)`;
      logger.error({ stalledMs }, 'the controller thread has not run for the stall limit: resigning the leadership');
      resign(l);
    }
  }, Math.min(1000, data.stallLimitMs / 4));
}

Atomics.store(slots, SLOT_STATE, STATE_IDLE);
