/**
 * A userspace WAN emulator for TCP: a relay that listens on one address,
 * connects every accepted connection on to a target, and carries the bytes
 * both ways after a one-way delay, optionally under a bandwidth cap. It
 * stands in for netem, which this project's kernels may lack.
 *
 *   read      a chunk arrives from one side at time t
 *   shape     the direction's token bucket (GCRA: rate, burst) gives it a
 *             departure time d ≥ t; without a cap d = t
 *   queue     it waits in that connection direction's queue until d + delay;
 *             order is kept (due times never decrease)
 *   deliver   one timer per direction, set for the head's due time, writes
 *             every due chunk to the other side; a full socket stops delivery
 *             until it drains
 *   backpressure  when the queue holds more than `maxQueuedBytes` minus one
 *             read, the source is paused until the queue is half empty, so
 *             the queue never exceeds `maxQueuedBytes` and TCP pushes back
 *             on a fast sender
 *
 * A half-close (FIN) travels in order behind the data; a reset or error on
 * either side resets the other at once, and closing the relay resets every
 * connection (a side that already sent its FIN is closed plainly:
 * socket-reset.ts). The bandwidth cap is one link per
 * direction, shared by every connection through the relay. Connection set-up
 * itself is not delayed (the relay accepts at once and dials the target).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { realClock, type Clock, type TimerHandle } from './clock.ts';
import { ConfigError } from './errors.ts';
import { componentLogger, type Logger } from './logger.ts';
import { resetSocket } from './socket-reset.ts';

export interface RelayEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface DelayRelayInit {
  readonly listen: RelayEndpoint;
  readonly target: RelayEndpoint;
  /** One-way delay added in each direction, in ms. */
  readonly delayMs: number;
  /** Cap per direction (shared by all connections), in Mbit/s; none when undefined. */
  readonly bandwidthMbit?: number;
  /** Bytes the cap lets through at line rate after an idle period (default 0: pure pacing). */
  readonly burstBytes?: number;
  /** Bound of each connection direction's queue (default 4 MiB, at least 128 KiB). */
  readonly maxQueuedBytes?: number;
  readonly signal?: AbortSignal;
}

export interface DelayRelayStats {
  accepted: number;
  active: number;
  connectFailures: number;
  /** Bytes delivered client → target and target → client. */
  bytesUp: number;
  bytesDown: number;
  /** Largest queue any connection direction has held. */
  maxQueuedBytes: number;
  /** Times a source was paused because its queue was full. */
  pauses: number;
}

export interface DelayRelay {
  readonly port: number;
  readonly stats: DelayRelayStats;
  /** Stop accepting and destroy every connection. */
  close(): Promise<void>;
}

/** Largest chunk one socket read delivers (libuv's read buffer). */
const MAX_READ_BYTES = 64 * 1024;
const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;
const MIN_MAX_QUEUED = 2 * MAX_READ_BYTES;

/** A token bucket as GCRA: the departure time of `bytes` offered at `now`. */
class Shaper {
  #tat = Number.NEGATIVE_INFINITY;
  readonly #msPerByte: number;
  readonly #toleranceMs: number;

  constructor(bitsPerSecond: number, burstBytes: number) {
    this.#msPerByte = 8000 / bitsPerSecond;
    this.#toleranceMs = burstBytes * this.#msPerByte;
  }

  depart(now: number, bytes: number): number {
    const d = Math.max(now, this.#tat - this.#toleranceMs);
    this.#tat = Math.max(d, this.#tat) + bytes * this.#msPerByte;
    return d;
  }
}

interface Queued {
  readonly chunk: Buffer | undefined; // undefined: the source's FIN
  readonly due: number;
}

/** One direction of one connection. */
class DelayPipe {
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #clock: Clock;
  readonly #delayMs: number;
  readonly #shaper: Shaper | undefined;
  readonly #limit: number;
  readonly #stats: DelayRelayStats;
  readonly #dir: 'bytesUp' | 'bytesDown';
  #queue: Queued[] = [];
  #head = 0;
  #queued = 0;
  #lastDue = Number.NEGATIVE_INFINITY;
  #timer: TimerHandle | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #blocked = false;
  #paused = false;
  #stopped = false;

  constructor(from: Socket, to: Socket, clock: Clock, delayMs: number, shaper: Shaper | undefined, limit: number, stats: DelayRelayStats, dir: 'bytesUp' | 'bytesDown') {
    this.#from = from;
    this.#to = to;
    this.#clock = clock;
    this.#delayMs = delayMs;
    this.#shaper = shaper;
    this.#limit = limit;
    this.#stats = stats;
    this.#dir = dir;
    from.on('data', (chunk: Buffer) => this.#push(chunk));
    from.on('end', () => this.#push(undefined));
    to.on('drain', () => {
      this.#blocked = false;
      this.#pump();
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#queue = [];
    this.#head = 0;
    this.#queued = 0;
  }

  #push(chunk: Buffer | undefined): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    const depart = chunk === undefined || this.#shaper === undefined ? now : this.#shaper.depart(now, chunk.length);
    const due = Math.max(this.#lastDue, depart + this.#delayMs);
    this.#lastDue = due;
    this.#queue.push({ chunk, due });
    if (chunk !== undefined) {
      this.#queued += chunk.length;
      if (this.#queued > this.#stats.maxQueuedBytes) this.#stats.maxQueuedBytes = this.#queued;
      if (!this.#paused && this.#queued > this.#limit - MAX_READ_BYTES) {
        this.#paused = true;
        this.#stats.pauses++;
        this.#from.pause();
      }
    }
    if (this.#queue.length - this.#head === 1) this.#arm(due);
  }

  #arm(due: number): void {
    if (this.#timer !== undefined && this.#timerAt <= due) return;
    this.#timer?.cancel();
    this.#timerAt = due;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      this.#pump();
    }, Math.max(0, Math.ceil(due - this.#clock.now())));
  }

  /** Deliver every due chunk the destination takes; re-arm for the next. */
  #pump(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    while (this.#head < this.#queue.length && !this.#blocked) {
      const q = this.#queue[this.#head]!;
      if (q.due > now) break;
      this.#head++;
      if (q.chunk === undefined) {
        if (!this.#to.destroyed) this.#to.end();
        continue;
      }
      this.#queued -= q.chunk.length;
      this.#stats[this.#dir] += q.chunk.length;
      if (!this.#to.destroyed && !this.#to.write(q.chunk)) this.#blocked = true;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#paused && this.#queued <= this.#limit / 2) {
      this.#paused = false;
      this.#from.resume();
    }
    const next = this.#queue[this.#head];
    if (next !== undefined && !this.#blocked) this.#arm(next.due);
  }
}


function checkInit(init: DelayRelayInit): number {
  const where = { file: 'delay relay' };
  if (!(Number.isFinite(init.delayMs) && init.delayMs >= 0 && init.delayMs <= 60_000)) throw new ConfigError(`delay ${init.delayMs} ms is not in 0..60000`, { ...where, key: 'delayMs' });
  if (init.bandwidthMbit !== undefined && !(Number.isFinite(init.bandwidthMbit) && init.bandwidthMbit > 0)) {
    throw new ConfigError(`bandwidth ${init.bandwidthMbit} Mbit/s is not positive`, { ...where, key: 'bandwidthMbit' });
  }
  if (init.burstBytes !== undefined && !(Number.isSafeInteger(init.burstBytes) && init.burstBytes >= 0)) throw new ConfigError(`burst ${init.burstBytes} is not a byte count`, { ...where, key: 'burstBytes' });
  const limit = init.maxQueuedBytes ?? DEFAULT_MAX_QUEUED;
  if (!Number.isSafeInteger(limit) || limit < MIN_MAX_QUEUED) throw new ConfigError(`queue bound ${limit} is below ${MIN_MAX_QUEUED} bytes`, { ...where, key: 'maxQueuedBytes' });
  return limit;
}

/** Start a relay; resolves once it listens (`port` is the bound port, useful with port 0). */
export async function startDelayRelay(components: { logger: Logger; clock?: Clock }, init: DelayRelayInit): Promise<DelayRelay> {
  const limit = checkInit(init);
  const logger = componentLogger(components.logger, 'delay-relay');
  const clock = components.clock ?? realClock;
  const stats: DelayRelayStats = { accepted: 0, active: 0, connectFailures: 0, bytesUp: 0, bytesDown: 0, maxQueuedBytes: 0, pauses: 0 };
  const bits = init.bandwidthMbit === undefined ? undefined : init.bandwidthMbit * 1e6;
  const up = bits === undefined ? undefined : new Shaper(bits, init.burstBytes ?? 0);
  const down = bits === undefined ? undefined : new Shaper(bits, init.burstBytes ?? 0);
  const sockets = new Set<Socket>();
  const pipes = new Set<DelayPipe>();
  let closed = false;

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    if (closed) return client.destroy();
    stats.accepted++;
    stats.active++;
    const target = connect({ host: init.target.host, port: init.target.port, allowHalfOpen: true });
    target.setNoDelay(true);
    client.setNoDelay(true);
    sockets.add(client);
    sockets.add(target);
    const upPipe = new DelayPipe(client, target, clock, init.delayMs, up, limit, stats, 'bytesUp');
    const downPipe = new DelayPipe(target, client, clock, init.delayMs, down, limit, stats, 'bytesDown');
    pipes.add(upPipe);
    pipes.add(downPipe);
    let connected = false;
    target.once('connect', () => {
      connected = true;
    });
    let done = 0;
    const onClose = (which: Socket, other: Socket, hadError: boolean): void => {
      sockets.delete(which);
      // A reset (or error) on one side ends the other at once; a clean close after both FINs is the normal end.
      if (hadError) resetSocket(other);
      if (++done === 2) {
        upPipe.stop();
        downPipe.stop();
        pipes.delete(upPipe);
        pipes.delete(downPipe);
        stats.active--;
      }
    };
    client.on('error', (err) => logger.debug({ err }, 'client connection error'));
    target.on('error', (err) => {
      if (!connected) {
        stats.connectFailures++;
        logger.warn({ err, target: init.target }, 'relay could not reach its target');
      } else logger.debug({ err }, 'target connection error');
    });
    client.on('close', (hadError) => onClose(client, target, hadError || !client.readableEnded));
    target.on('close', (hadError) => onClose(target, client, hadError || !target.readableEnded));
  });
  server.listen({ host: init.listen.host, port: init.listen.port });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw err;
    }),
  ]);
  const addr = server.address();
  const port = addr !== null && typeof addr === 'object' ? addr.port : init.listen.port;
  logger.info({ listen: init.listen, target: init.target, delayMs: init.delayMs, bandwidthMbit: init.bandwidthMbit }, 'delay relay up');

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    init.signal?.removeEventListener('abort', onAbort);
    for (const p of pipes) p.stop();
    const closing = [...sockets].map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once('close', () => resolve()))));
    for (const s of sockets) resetSocket(s);
    await Promise.all([...closing, new Promise<void>((resolve) => server.close(() => resolve()))]);
  };
  const onAbort = (): void => void close();
  if (init.signal?.aborted) await close();
  else init.signal?.addEventListener('abort', onAbort, { once: true });
  return { port, stats, close };
}
