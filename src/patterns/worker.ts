/**
 * One Patterns worker: the BSP-style synthetic application of the VNET
 * experiments. N workers, one per VM, each listen on their own address and
 * hold one TCP connection per pattern edge. The run:
 *
 *   set-up      dial lower-indexed neighbours, accept higher ones, check hellos
 *   barrier 0   everyone connected; the clock starts at its release
 *   round r     send one message of `messageBytes` to every neighbour, wait for
 *               one from every neighbour (checked byte by byte), then barrier r
 *   barrier r   arrive up a BFS spanning tree of the pattern graph rooted at
 *               worker 0 (a worker arrives once it and its whole subtree have
 *               finished the round); worker 0 releases down the same tree
 *   end         after barrier R each worker half-closes its connections
 *
 * The barrier uses only pattern edges, so the overlay carries exactly the
 * pattern's graph. Round time at a worker is the time between two releases it
 * sees; worker 0's figures are the run's. Any failure (garbage, a peer that
 * closes before it sent what the run expects from it, a round past its
 * timeout) ends the run at that worker, which sends an abort naming the cause
 * to every neighbour, so the failure spreads through the graph at once.
 */
import { once } from 'node:events';
import type { Clock, TimerHandle } from '../common/clock.ts';
import { realClock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { PATTERN_KINDS, patternEdges, type PatternKind } from '../topology/patterns.ts';
import { adjacency, barrierTree } from './barrier-tree.ts';
import {
  PatternsAbortedError,
  PatternsConfigError,
  PatternsPeerAbortError,
  PatternsPeerVanishedError,
  PatternsProtocolError,
  PatternsRoundTimeoutError,
  type PeerRef,
} from './errors.ts';
import type { FramedSocket } from './framed-socket.ts';
import { formatHostPort as formatAddress } from '../common/host-port.ts';
import { PatternsListener, type PeerAddress } from './listener.ts';
import { setUpLinks } from './link-setup.ts';
import type { PatternsReport } from './report.ts';
import { summariseRounds } from './round-stats.ts';
import { MAX_MESSAGE_BYTES, MSG_ARRIVE, MSG_RELEASE, referencePayload, type Hello, type PatternsMessage } from './wire.ts';

export interface PatternsComponents {
  readonly logger: Logger;
  readonly clock?: Clock;
}

export interface PatternsWorkerInit {
  readonly index: number;
  /** Every worker's address, by index; this worker listens on its own unless `listen` or `listener` says otherwise. */
  readonly peers: readonly PeerAddress[];
  readonly pattern: PatternKind;
  /** Width of the neighbour pattern (default 2). */
  readonly k?: number;
  readonly messageBytes: number;
  readonly rounds: number;
  readonly listen?: PeerAddress;
  /** An already open listener (the in-process launcher opens them first to learn the ports). */
  readonly listener?: PatternsListener;
  /** Deadline for all neighbour connections (default 30 s). */
  readonly connectTimeoutMs?: number;
  /** Deadline for each round, exchange plus barrier (default 60 s). */
  readonly roundTimeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Called after each round's barrier, with this worker's time for the round. */
  readonly onRound?: (r: { readonly round: number; readonly ms: number }) => void;
}

interface Peer {
  readonly index: number;
  readonly ref: PeerRef;
  readonly f: FramedSocket;
  readonly isParent: boolean;
  readonly isChild: boolean;
  data: number;
  arrives: number;
  releases: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_ROUND_TIMEOUT_MS = 60_000;
const CLOSE_GRACE_MS = 2_000;

function checkInit(init: PatternsWorkerInit): { n: number; k: number; edges: [number, number][] } {
  const n = init.peers.length;
  const bad = (m: string): never => {
    throw new PatternsConfigError(m);
  };
  if (n < 2 || n > 65_535) bad(`need 2..65535 workers, got ${n}`);
  if (!Number.isSafeInteger(init.index) || init.index < 0 || init.index >= n) bad(`index ${init.index} is not in 0..${n - 1}`);
  if (!PATTERN_KINDS.includes(init.pattern)) bad(`unknown pattern "${String(init.pattern)}" (one of ${PATTERN_KINDS.join(', ')})`);
  if (!Number.isSafeInteger(init.messageBytes) || init.messageBytes < 0 || init.messageBytes > MAX_MESSAGE_BYTES) bad(`message size ${init.messageBytes} is not in 0..${MAX_MESSAGE_BYTES}`);
  if (!Number.isSafeInteger(init.rounds) || init.rounds < 1 || init.rounds > 0x7fff_ffff) bad(`rounds ${init.rounds} is not a positive integer`);
  const k = init.k ?? 2;
  if (!Number.isSafeInteger(k) || k < 1 || k > 255) bad(`neighbour width ${k} is not in 1..255`);
  for (const [i, p] of init.peers.entries()) {
    if (!Number.isSafeInteger(p.port) || p.port < 1 || p.port > 65_535) bad(`peer ${i} has port ${p.port}`);
    if (p.host === '') bad(`peer ${i} has an empty host`);
  }
  for (const t of [init.connectTimeoutMs, init.roundTimeoutMs]) if (t !== undefined && !(t > 0)) bad(`timeout ${t} is not positive`);
  let edges: [number, number][];
  try {
    edges = patternEdges(init.pattern, n, { k }).map(([a, b]) => [a, b]);
  } catch (err) {
    throw new PatternsConfigError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  return { n, k, edges };
}

/** Run one worker to the end of its rounds; rejects with a typed Patterns error naming the peer at fault. */
export async function runWorker(components: PatternsComponents, init: PatternsWorkerInit): Promise<PatternsReport> {
  let shape: ReturnType<typeof checkInit>;
  try {
    shape = checkInit(init);
  } catch (err) {
    init.listener?.close();
    throw err;
  }
  const listener = init.listener ?? (await PatternsListener.open(init.listen ?? init.peers[init.index]!));
  return new WorkerRun(components, init, shape, listener).run();
}

class WorkerRun {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #init: PatternsWorkerInit;
  readonly #n: number;
  readonly #k: number;
  readonly #edges: [number, number][];
  readonly #listener: PatternsListener;
  readonly #reference: Buffer;
  readonly #R: number;
  #peers: Peer[] = [];
  #parent: Peer | undefined;
  #children: Peer[] = [];
  #round = 0;
  #arrived = -1;
  #phase: 'exchange' | 'barrier' = 'barrier';
  #done = false;
  #failure: Error | undefined;
  #waiter: { pred: () => boolean; resolve: () => void; reject: (e: Error) => void } | undefined;
  #roundTimer: TimerHandle | undefined;

  constructor(components: PatternsComponents, init: PatternsWorkerInit, shape: ReturnType<typeof checkInit>, listener: PatternsListener) {
    this.#logger = componentLogger(components.logger, 'patterns', { worker: init.index });
    this.#clock = components.clock ?? realClock;
    this.#init = init;
    this.#n = shape.n;
    this.#k = shape.k;
    this.#edges = shape.edges;
    this.#listener = listener;
    this.#reference = referencePayload(init.messageBytes);
    this.#R = init.rounds;
  }

  async run(): Promise<PatternsReport> {
    const init = this.#init;
    const me = init.index;
    const neighbours = adjacency(this.#n, this.#edges)[me]!;
    const tree = barrierTree(this.#n, this.#edges);
    if (tree === undefined) {
      this.#listener.close();
      throw new PatternsConfigError(`the ${init.pattern} graph on ${this.#n} workers is not connected`);
    }
    const hello: Hello = { index: me, workers: this.#n, messageBytes: init.messageBytes, rounds: this.#R, pattern: init.pattern, k: this.#k };
    const t0 = this.#clock.now();
    const links = await setUpLinks(
      { logger: this.#logger, clock: this.#clock },
      {
        self: hello,
        peers: init.peers,
        dial: neighbours.filter((i) => i < me),
        accept: neighbours.filter((i) => i > me),
        listener: this.#listener,
        reference: this.#reference,
        timeoutMs: init.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        signal: init.signal,
      },
    );
    const setupMs = this.#clock.now() - t0;
    for (const i of neighbours) {
      const f = links.get(i)!;
      const p: Peer = {
        index: i,
        ref: { index: i, address: formatAddress(init.peers[i]!) },
        f,
        isParent: tree.parent[me] === i,
        isChild: tree.children[me]!.includes(i),
        data: 0,
        arrives: 0,
        releases: 0,
      };
      this.#peers.push(p);
      if (p.isParent) this.#parent = p;
      if (p.isChild) this.#children.push(p);
    }
    const onAbort = (): void => this.#fail(new PatternsAbortedError(init.signal?.reason));
    init.signal?.addEventListener('abort', onAbort, { once: true });
    for (const p of this.#peers) {
      p.f.attach({
        message: (m) => this.#onMessage(p, m),
        protocolError: (detail) => this.#fail(new PatternsProtocolError(p.ref, detail)),
        closed: (cause) => this.#onClosed(p, cause),
      });
    }
    if (init.signal?.aborted) onAbort();

    const start: number[] = [];
    const exchanged: number[] = [];
    const released: number[] = [];
    const roundMs: number[] = [];
    try {
      this.#armRoundTimer();
      await this.#barrier(0);
      released.push(this.#clock.now());
      for (let r = 1; r <= this.#R; r++) {
        this.#round = r;
        this.#phase = 'exchange';
        this.#armRoundTimer();
        start.push(this.#clock.now());
        for (const p of this.#peers) p.f.sendData(r, this.#reference);
        await this.#until(() => this.#peers.every((p) => p.data >= r));
        exchanged.push(this.#clock.now());
        this.#phase = 'barrier';
        await this.#barrier(r);
        const t = this.#clock.now();
        roundMs.push(t - released[released.length - 1]!);
        released.push(t);
        init.onRound?.({ round: r, ms: roundMs[roundMs.length - 1]! });
      }
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
      throw this.#failure;
    } finally {
      this.#roundTimer?.cancel();
      init.signal?.removeEventListener('abort', onAbort);
    }
    this.#done = true;
    await this.#closeAll();

    const sentMessages = this.#R * this.#peers.length;
    const sentBytes = this.#peers.reduce((s, p) => s + p.f.sentBytes, 0);
    const receivedBytes = this.#peers.reduce((s, p) => s + p.f.receivedBytes, 0);
    const summary = summariseRounds(roundMs);
    const seconds = summary.totalMs / 1000;
    return {
      index: me,
      workers: this.#n,
      pattern: init.pattern,
      ...(init.pattern === 'neighbour' ? { k: this.#k } : {}),
      messageBytes: init.messageBytes,
      rounds: this.#R,
      neighbours,
      barrier: { parent: tree.parent[me] ?? null, children: [...tree.children[me]!], height: tree.height },
      sentMessages,
      receivedMessages: this.#peers.reduce((s, p) => s + p.data, 0),
      sentBytes,
      receivedBytes,
      setupMs,
      roundMs,
      summary,
      throughput: {
        workerBytesPerSecond: seconds > 0 ? (sentBytes + receivedBytes) / seconds : Number.NaN,
        aggregateBytesPerSecond: seconds > 0 ? (2 * this.#edges.length * init.messageBytes * this.#R) / seconds : Number.NaN,
      },
      timeline: { start, exchanged, released },
    };
  }

  /** Arrive (after every child has), wait for the release, pass it down. */
  async #barrier(r: number): Promise<void> {
    await this.#until(() => this.#children.every((c) => c.arrives >= r + 1));
    this.#arrived = r;
    if (this.#parent !== undefined) {
      const parent = this.#parent;
      parent.f.sendControl(MSG_ARRIVE, r);
      await this.#until(() => parent.releases >= r + 1);
    }
    for (const c of this.#children) c.f.sendControl(MSG_RELEASE, r);
  }

  #until(pred: () => boolean): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiter = { pred, resolve, reject };
    });
  }

  #wake(): void {
    const w = this.#waiter;
    if (w !== undefined && w.pred()) {
      this.#waiter = undefined;
      w.resolve();
    }
  }

  #armRoundTimer(): void {
    this.#roundTimer?.cancel();
    const ms = this.#init.roundTimeoutMs ?? DEFAULT_ROUND_TIMEOUT_MS;
    const round = this.#round;
    this.#roundTimer = this.#clock.setTimeout(() => this.#fail(new PatternsRoundTimeoutError(round, ms, this.#waitingFor())), ms);
  }

  #waitingFor(): string {
    const r = this.#round;
    const name = (p: Peer): string => `worker ${p.index} (${p.ref.address})`;
    const out: string[] = [];
    if (this.#phase === 'exchange') {
      for (const p of this.#peers) if (p.data < r) out.push(`data from ${name(p)}`);
    } else {
      for (const c of this.#children) if (c.arrives < r + 1) out.push(`barrier arrival from ${name(c)}`);
      if (out.length === 0 && this.#parent !== undefined && this.#parent.releases < r + 1) out.push(`barrier release from ${name(this.#parent)}`);
    }
    return out.length > 0 ? out.join(', ') : 'nothing (stalled)';
  }

  #complete(p: Peer): boolean {
    return p.data === this.#R && (!p.isChild || p.arrives === this.#R + 1) && (!p.isParent || p.releases === this.#R + 1);
  }

  #onMessage(p: Peer, m: PatternsMessage): void {
    if (this.#done) return;
    const bad = (detail: string): void => this.#fail(new PatternsProtocolError(p.ref, detail));
    switch (m.type) {
      case 'hello':
        return bad('sent a second hello');
      case 'data':
        if (m.round !== p.data + 1) return bad(`sent data for round ${m.round}, expected round ${p.data + 1}`);
        if (m.round > this.#round + 1 || m.round > this.#R) return bad(`sent data for round ${m.round} while this worker is in round ${this.#round}`);
        p.data++;
        break;
      case 'arrive':
        if (!p.isChild) return bad(`sent a barrier arrival but is not a child of worker ${this.#init.index} in the barrier tree`);
        if (m.round !== p.arrives || m.round > this.#round) return bad(`arrived at barrier ${m.round}, expected barrier ${p.arrives} (this worker is in round ${this.#round})`);
        p.arrives++;
        break;
      case 'release':
        if (!p.isParent) return bad(`sent a barrier release but is not the parent of worker ${this.#init.index} in the barrier tree`);
        if (m.round !== p.releases || m.round > this.#arrived) return bad(`released barrier ${m.round} before worker ${this.#init.index} arrived at it`);
        p.releases++;
        break;
      case 'abort':
        return this.#fail(new PatternsPeerAbortError(p.ref, m.origin, m.reason));
    }
    this.#wake();
  }

  #onClosed(p: Peer, cause: Error | undefined): void {
    if (this.#done || this.#complete(p)) return;
    const how = cause === undefined ? 'closed its connection' : `connection failed (${cause.message})`;
    const phase = this.#phase === 'exchange' ? `the exchange of round ${this.#round}` : `barrier ${this.#round}`;
    this.#fail(new PatternsPeerVanishedError(p.ref, `${how} during ${phase}, after ${p.data} of ${this.#R} data messages`, cause === undefined ? undefined : { cause }));
  }

  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#failure = err;
    this.#roundTimer?.cancel();
    this.#logger.debug({ err }, 'patterns run failed');
    const origin = err instanceof PatternsPeerAbortError ? err.origin : this.#init.index;
    const reason = err instanceof PatternsPeerAbortError ? err.reason : err.message;
    for (const p of this.#peers) if (!p.f.closed) p.f.abortAndClose(this.#round, origin, reason, this.#clock);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(err);
  }

  /** Half-close every connection and wait (bounded) for the peers to close theirs. */
  async #closeAll(): Promise<void> {
    for (const p of this.#peers) p.f.end();
    const open = this.#peers.filter((p) => !p.f.closed);
    if (open.length === 0) return;
    let timer: TimerHandle | undefined;
    await Promise.race([
      Promise.all(open.map((p) => once(p.f.socket, 'close'))),
      new Promise<void>((resolve) => {
        timer = this.#clock.setTimeout(resolve, CLOSE_GRACE_MS);
      }),
    ]);
    timer?.cancel();
    for (const p of open) p.f.destroy();
  }
}
