import { Duplex } from 'node:stream';
import { componentLogger } from '../common/logger.ts';
import { AbortedError, TransportError } from './errors.ts';
import type { Link } from './link-interface.ts';
import { openLink } from './link.ts';
import {
  dialInit,
  type ConnectOptions,
  type LinkSettings,
  type ListenOptions,
  type Transport,
  type TransportComponents,
  type TransportListener,
} from './transport.ts';
import { HandshakeAcceptor } from './handshake-acceptor.ts';

/**
 * In-process links: the twin of the TCP transport for unit tests and the
 * unprivileged demo. A MemoryNetwork is a registry of named listeners
 * ("host:port"); connect makes a duplex pair and hands one end to the
 * listener. The pair behaves like a TCP connection where it matters to a
 * link: bytes are copied (the receiver never sees the sender's buffers), a
 * corked burst arrives as one chunk, backpressure holds writes when the
 * reader does not read, and destroying one end ends the other.
 */

/** What a write to a closed in-memory connection fails with: EPIPE, as a socket's write would. */
function epipe(message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EPIPE: ${message}`), { code: 'EPIPE', syscall: 'write' });
}

/** One end of an in-memory connection. */
export class MemoryDuplex extends Duplex {
  #peer: MemoryDuplex | undefined;
  /** The callback of the other end's write that filled our read buffer; called when we read again. */
  #blocked: ((err?: Error | null) => void) | undefined;

  constructor() {
    super({ allowHalfOpen: false, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 64 * 1024 });
  }

  /** Connect two fresh ends. */
  static pair(): [MemoryDuplex, MemoryDuplex] {
    const a = new MemoryDuplex();
    const b = new MemoryDuplex();
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#deliver(Buffer.from(chunk), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    this.#deliver(Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  #deliver(bytes: Buffer, callback: (err?: Error | null) => void): void {
    const peer = this.#peer;
    if (peer === undefined || peer.destroyed || peer.readableEnded) {
      callback(epipe('the other end of the in-memory connection is closed'));
      return;
    }
    if (peer.push(bytes)) callback();
    else peer.#blocked = callback; // released when the peer reads again
  }

  override _read(): void {
    const blocked = this.#blocked; // a write of the other end, waiting for us to read
    if (blocked !== undefined) {
      this.#blocked = undefined;
      blocked();
    }
  }

  override _final(callback: (err?: Error | null) => void): void {
    const peer = this.#peer;
    if (peer !== undefined && !peer.destroyed) peer.push(null);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const peer = this.#peer;
    this.#peer = undefined;
    const blocked = this.#blocked;
    this.#blocked = undefined;
    blocked?.(epipe('connection destroyed'));
    if (peer !== undefined && !peer.destroyed) {
      if (!peer.readableEnded) peer.push(null); // the other end sees end-of-stream, as after a FIN
      const theirs = peer.#blocked;
      peer.#blocked = undefined;
      theirs?.(epipe('the other end of the in-memory connection is closed'));
    }
    callback(err);
  }
}

/** A registry of in-process listeners, shared by the MemoryTransports that should reach each other. */
export class MemoryNetwork {
  readonly #listeners = new Map<string, (socket: Duplex) => void>();
  #nextPort = 40_000;

  /** @internal */
  bind(host: string, port: number, accept: (socket: Duplex) => void): { port: number; unbind(): void } {
    let p = port;
    if (p === 0) {
      do p = this.#nextPort++;
      while (this.#listeners.has(`${host}:${p}`));
    }
    const key = `${host}:${p}`;
    if (this.#listeners.has(key)) throw new TransportError(`memory transport cannot listen on ${key}: address in use`);
    this.#listeners.set(key, accept);
    return { port: p, unbind: () => this.#listeners.delete(key) };
  }

  /** @internal */
  dial(host: string, port: number): Duplex {
    const accept = this.#listeners.get(`${host}:${port}`);
    if (accept === undefined) throw new TransportError(`cannot connect to ${host}:${port}: connection refused (no in-memory listener)`);
    const [ours, theirs] = MemoryDuplex.pair();
    queueMicrotask(() => accept(theirs));
    return ours;
  }
}

/** The network used when none is given: one per process. */
export const defaultMemoryNetwork = new MemoryNetwork();

export interface MemoryTransportInit extends LinkSettings {
  network?: MemoryNetwork;
}

export class MemoryTransport implements Transport {
  readonly kind = 'memory' as const;
  readonly #components: TransportComponents;
  readonly #settings: LinkSettings;
  readonly #network: MemoryNetwork;

  constructor(components: TransportComponents, init: MemoryTransportInit) {
    this.#components = { ...components, logger: componentLogger(components.logger, 'memory-transport') };
    this.#settings = init;
    this.#network = init.network ?? defaultMemoryNetwork;
  }

  async listen(opts: ListenOptions, onLink: (link: Link) => void): Promise<TransportListener> {
    const acceptor = new HandshakeAcceptor(this.#components, this.#settings, onLink);
    const binding = this.#network.bind(opts.host, opts.port, (socket) => acceptor.accept(socket));
    return {
      host: opts.host,
      port: binding.port,
      stats: acceptor.stats,
      close: async () => {
        binding.unbind();
        acceptor.abortAll();
      },
    };
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    if (opts.signal?.aborted === true) throw new AbortedError(`connect to ${opts.host}:${opts.port}`, { cause: opts.signal.reason });
    const socket = this.#network.dial(opts.host, opts.port);
    return openLink(dialInit(this.#components, this.#settings, opts, socket));
  }
}
