/**
 * A worker's listening socket. Opened before the run (so that an in-process
 * launcher can learn every worker's port first), it holds the connections
 * that arrive before the worker takes them.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

import type { HostPort } from '../common/host-port.ts';
import { PatternsConfigError } from './errors.ts';

export type PeerAddress = HostPort;


export class PatternsListener {
  readonly #server: Server;
  #handler: ((s: Socket) => void) | undefined;
  #queued: Socket[] = [];
  #closed = false;

  private constructor(server: Server) {
    this.#server = server;
    server.on('connection', (s) => {
      if (this.#closed) s.destroy();
      else if (this.#handler !== undefined) this.#handler(s);
      else this.#queued.push(s);
    });
  }

  /** Listen on `address` (port 0 picks a free port). */
  static async open(address: PeerAddress): Promise<PatternsListener> {
    const server = createServer();
    const l = new PatternsListener(server);
    server.listen({ host: address.host, port: address.port, exclusive: true });
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => {
        throw err;
      }),
    ]);
    return l;
  }

  get address(): PeerAddress {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') throw new PatternsConfigError('the listener has no TCP address (closed, or bound to a Unix socket)');
    return { host: a.address, port: a.port };
  }

  get port(): number {
    return this.address.port;
  }

  /** Hand accepted connections (queued ones first) to `handler`. */
  onConnection(handler: (s: Socket) => void): void {
    this.#handler = handler;
    const q = this.#queued;
    this.#queued = [];
    for (const s of q) handler(s);
  }

  /** Stop accepting; connections already handed over stay open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#queued) s.destroy();
    this.#queued = [];
    this.#server.close();
  }
}
