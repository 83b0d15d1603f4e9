/**
 * A VM's NIC as QEMU's `-netdev stream` over a Unix socket: the daemon
 * listens, QEMU connects (`-netdev stream,id=n0,server=off,addr.type=unix,
 * addr.path=PATH`), and Ethernet frames go both ways with QEMU's framing
 * (stream-frame-codec.ts: a 4-byte big-endian length, then the frame). No
 * privilege is needed, so the unprivileged demo can run a real guest.
 *
 * Data path, in stages:
 *   VM → daemon   socket chunk → StreamFrameDecoder (zero-copy views; runts
 *                 and frames over the MTU skipped whole and counted in
 *                 `errors`) → watchers → the receive handler, one batch per
 *                 chunk. Before `start`, up to `maxPendingFrames` are kept and
 *                 the socket is paused past that (QEMU queues, then stops
 *                 reading its NIC: back-pressure, not loss).
 *   daemon → VM   software offload (segments, checksums; QEMU's stream
 *                 backend takes plain frames) → size check → length header +
 *                 frame, corked per tick; more than `maxQueuedBytes` waiting
 *                 in the socket → a counted drop (txDropped), as a full TAP
 *                 queue is. No QEMU connected → a counted drop.
 *   connections   one at a time; a new connection replaces the old one (a
 *                 QEMU that restarted, or the incoming copy of a migration).
 *                 A length over QEMU's own limit means the stream is out of
 *                 step: StreamFramingError, counted, the connection closed.
 *   failure       the listener fails, or (with `reconnectMs`) QEMU hung up
 *                 and no QEMU connected again within it: one StreamPortError
 *                 to the failure handler.
 *
 * The socket file is made mode 0600 (only the daemon's user may connect) and
 * removed on close; a stale socket left at the path is replaced, anything
 * else there is refused.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Clock, TimerHandle } from '../common/clock.ts';
import { realClock } from '../common/clock.ts';
import type { Frame } from '../common/frame.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { formatMac, type Mac } from '../common/mac.ts';
import { PortAlreadyStartedError, PortClosedError, StreamFramingError, StreamPortError } from './errors.ts';
import { eachPlainFrame } from './offload.ts';
import { emptyPortStats, frameFitsPort, PORT_FRAME_OVERHEAD, PortFailure, type Port, type PortStats, type ReceiveHandler } from './port.ts';
import { QEMU_NET_BUFSIZE, StreamFrameDecoder, streamFrameHeader } from './stream-frame-codec.ts';

export interface StreamPortOptions {
  readonly name: string;
  readonly mac: Mac;
  readonly mtu: number;
  /** The Unix socket QEMU connects to. */
  readonly path: string;
  /** QEMU hung up and did not connect again within this: the port fails (default: wait for ever). */
  readonly reconnectMs?: number | undefined;
  /** Bytes waiting in the socket towards QEMU past which frames to the VM are dropped (default 1 MiB). */
  readonly maxQueuedBytes?: number | undefined;
  /** Frames from the VM kept before `start` (default 1024); past it the socket is paused. */
  readonly maxPendingFrames?: number | undefined;
  readonly logger: Logger;
  readonly clock?: Clock | undefined;
}

/** What the port saw of its QEMU side, beyond the Port counters. */
export interface StreamConnectionStats {
  connections: number;
  /** Connections that replaced a live one. */
  replaced: number;
  /** Connections closed for broken framing. */
  framingErrors: number;
}

export class StreamPort implements Port {
  readonly name: string;
  readonly kind = 'stream' as const;
  readonly mac: Mac;
  readonly mtu: number;
  readonly acceptsOffload = false;
  readonly path: string;
  readonly stats: PortStats = emptyPortStats();
  readonly connection: StreamConnectionStats = { connections: 0, replaced: 0, framingErrors: 0 };

  readonly #server: net.Server;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #reconnectMs: number | undefined;
  readonly #maxQueued: number;
  readonly #maxPending: number;
  readonly #failure = new PortFailure();
  readonly #watchers = new Set<(frames: readonly Frame[]) => void>();
  readonly #connectWaiters = new Set<() => void>();
  #socket: net.Socket | undefined;
  #corked = false;
  #handler: ReceiveHandler | undefined;
  #pending: Frame[] = [];
  #reconnectTimer: TimerHandle | undefined;
  #closed = false;
  /** `listen`'s caller, until the socket listens or fails to. */
  #listenWaiter: ((err: StreamPortError | undefined) => void) | undefined;

  private constructor(opts: StreamPortOptions, server: net.Server) {
    this.name = opts.name;
    this.mac = opts.mac;
    this.mtu = opts.mtu;
    this.path = opts.path;
    this.#server = server;
    this.#log = componentLogger(opts.logger, 'stream-port', { port: opts.name });
    this.#clock = opts.clock ?? realClock;
    this.#reconnectMs = opts.reconnectMs;
    this.#maxQueued = opts.maxQueuedBytes ?? 1 << 20;
    this.#maxPending = opts.maxPendingFrames ?? 1024;
    server.on('connection', (s) => this.#onConnection(s));
    server.on('error', (err) => {
      const e = new StreamPortError(`port ${this.name}: the listener on ${this.path} failed: ${err.message}`, { cause: err });
      const waiter = this.#listenWaiter;
      this.#listenWaiter = undefined;
      if (waiter !== undefined) { this.#closed = true; waiter(e); } else this.#fail(e);
    });
  }

  /**
   * Listen on `opts.path` for QEMU; the port is usable at once (frames to the
   * VM are counted drops until QEMU connects). A path taken by something that
   * is not a socket throws StreamPortError; a listen that fails later is the
   * port's failure.
   */
  static open(opts: StreamPortOptions): StreamPort {
    removeStaleSocket(opts.path);
    const server = net.createServer({ allowHalfOpen: false, pauseOnConnect: true });
    const port = new StreamPort(opts, server);
    server.listen(opts.path, () => {
      try {
        chmodSync(opts.path, 0o600);
      } catch (err) {
        const e = new StreamPortError(`port ${opts.name}: cannot restrict ${opts.path} to its owner: ${(err as Error).message}`, { cause: err });
        const waiter = port.#listenWaiter;
        port.#listenWaiter = undefined;
        port.#fail(e);
        waiter?.(e);
        return;
      }
      port.#log.info({ path: opts.path, mac: formatMac(opts.mac), mtu: opts.mtu }, 'stream port listening for QEMU');
      port.#listenWaiter?.(undefined);
      port.#listenWaiter = undefined;
    });
    return port;
  }

  /** `open`, resolved once the socket listens. Throws StreamPortError (path taken, cannot listen). */
  static async listen(opts: StreamPortOptions): Promise<StreamPort> {
    const port = StreamPort.open(opts);
    await new Promise<void>((resolve, reject) => {
      port.#listenWaiter = (err) => (err === undefined ? resolve() : reject(err));
    });
    return port;
  }

  /** Whether a QEMU is connected now. */
  get connected(): boolean {
    return this.#socket !== undefined;
  }

  /** Resolves once a QEMU is connected (at once if one is). */
  whenConnected(): Promise<void> {
    if (this.#socket !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.#connectWaiters.add(resolve));
  }

  /** See every batch from the VM before the daemon does (e.g. its RARP after a migration); returns the function that stops it. */
  watch(fn: (frames: readonly Frame[]) => void): () => void {
    this.#watchers.add(fn);
    return () => { this.#watchers.delete(fn); };
  }

  start(handler: ReceiveHandler): void {
    if (this.#handler !== undefined) throw new PortAlreadyStartedError(this.name);
    if (this.#closed) throw new PortClosedError(this.name);
    this.#handler = handler;
    const pending = this.#pending;
    this.#pending = [];
    if (pending.length > 0) handler(pending);
    this.#socket?.resume();
  }

  send(frame: Frame): void {
    if (this.#closed || this.#socket === undefined) {
      this.stats.txDropped++;
      return;
    }
    if (!eachPlainFrame(frame, this.#write)) {
      this.stats.txDropped++;
      this.stats.errors++;
    }
  }

  onFailure(handler: (err: Error) => void): void {
    this.#failure.onFailure(handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.#reconnectTimer?.cancel();
    this.#socket?.destroy();
    this.#socket = undefined;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    removeStaleSocket(this.path, true);
  }

  readonly #write = (data: Buffer): void => {
    const socket = this.#socket!;
    if (!frameFitsPort(data.length, this.mtu)) {
      this.stats.txDropped++;
      return;
    }
    if (socket.writableLength > this.#maxQueued) {
      this.stats.txDropped++;
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    socket.write(streamFrameHeader(data.length));
    socket.write(data);
    this.stats.txFrames++;
    this.stats.txBytes += data.length;
  };

  #onConnection(socket: net.Socket): void {
    if (this.#closed) { socket.destroy(); return; }
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'QEMU stream socket error'));
    const old = this.#socket;
    if (old !== undefined) {
      this.connection.replaced++;
      this.#log.info('a new QEMU connection replaces the live one');
      old.destroy();
    }
    this.#reconnectTimer?.cancel();
    this.#reconnectTimer = undefined;
    this.#socket = socket;
    this.connection.connections++;
    this.#log.info({ connections: this.connection.connections }, 'QEMU connected');
    const decoder = new StreamFrameDecoder({ maxAcceptBytes: this.mtu + PORT_FRAME_OVERHEAD });
    socket.on('data', (chunk: Buffer) => this.#onData(socket, decoder, chunk));
    socket.once('close', () => this.#onClose(socket));
    for (const w of [...this.#connectWaiters]) w();
    this.#connectWaiters.clear();
    if (this.#handler !== undefined || this.#pending.length < this.#maxPending) socket.resume();
  }

  #onData(socket: net.Socket, decoder: StreamFrameDecoder, chunk: Buffer): void {
    if (this.#closed || socket !== this.#socket) return;
    const r = decoder.push(chunk);
    this.stats.errors += r.skipped;
    if (r.frames.length > 0) {
      const batch: Frame[] = r.frames.map((data) => ({ data, offload: undefined }));
      this.stats.rxFrames += batch.length;
      for (const f of batch) this.stats.rxBytes += f.data.length;
      for (const w of this.#watchers) w(batch);
      if (this.#handler !== undefined) {
        this.#handler(batch);
      } else {
        // Kept until start; the frames may be views into this chunk, which nothing reuses.
        this.#pending.push(...batch);
        if (this.#pending.length >= this.#maxPending) socket.pause();
      }
    }
    if (r.tooLong !== undefined) {
      const err = new StreamFramingError(this.name, r.tooLong, QEMU_NET_BUFSIZE);
      this.stats.errors++;
      this.connection.framingErrors++;
      this.#log.warn({ code: err.code, detail: err.message }, 'QEMU stream out of step; connection closed');
      socket.destroy();
    }
  }

  #onClose(socket: net.Socket): void {
    if (socket !== this.#socket || this.#closed) return;
    this.#socket = undefined;
    this.#log.info('QEMU hung up; waiting for it to connect again');
    const ms = this.#reconnectMs;
    if (ms === undefined) return;
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#socket === undefined && !this.#closed) this.#fail(new StreamPortError(`port ${this.name}: QEMU hung up and did not connect again within ${ms} ms`));
    }, ms);
  }

  #fail(err: StreamPortError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.stats.errors++;
    this.#pending = [];
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#server.close();
    removeStaleSocket(this.path, true);
    this.#log.warn({ code: err.code, detail: err.message }, 'stream port failed');
    this.#failure.fail(err);
  }
}

/** Remove a socket file left at `path` (by a daemon that died); anything else there is refused. */
function removeStaleSocket(path: string, quiet = false): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) {
    if (quiet) return;
    throw new StreamPortError(`${path} exists and is not a socket; a stream port will not replace it`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if (!quiet) throw new StreamPortError(`cannot remove the stale socket ${path}: ${(err as Error).message}`, { cause: err });
  }
}
