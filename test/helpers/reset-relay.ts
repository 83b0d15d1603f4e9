import { createServer, connect, type Server, type Socket } from 'node:net';
import { resetSocket } from '../../src/common/socket-reset.ts';

/**
 * A loopback TCP relay to a local port that fails abruptly: `cut()` resets
 * both sockets of every connection at once, synchronously — nothing more
 * passes either way, as with a kill -9 of the process at the far end. While
 * `down`, connections are reset as they come (a dead peer). `target` can be
 * re-pointed (a restarted process on another port).
 */
export class ResetRelay {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  target: number;
  /** While down, connections are reset as they come (a dead peer). */
  down = false;
  port = 0;

  constructor(target: number) {
    this.target = target;
    this.#server = createServer((inbound) => {
      if (this.down) { resetSocket(inbound); return; }
      const outbound = connect(this.target, '127.0.0.1');
      const pair: [Socket, Socket] = [inbound, outbound];
      this.#pairs.add(pair);
      const end = (): void => {
        this.#pairs.delete(pair);
        // One whose peer ended may be ending too (pipe): resetSocket closes it plainly then.
        resetSocket(inbound);
        resetSocket(outbound);
      };
      inbound.on('error', end).on('close', end);
      outbound.on('error', end).on('close', end);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.#server.address() as { port: number }).port;
  }

  /** Synchronous: from here nothing more passes either way. */
  cut(): void {
    for (const [a, b] of this.#pairs) {
      a.unpipe();
      b.unpipe();
      resetSocket(a);
      resetSocket(b);
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    this.down = true;
    this.cut();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
