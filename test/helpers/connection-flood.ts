import { readdirSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

/** Open file descriptors of this process now. */
export const openFds = (): number => readdirSync('/proc/self/fd').length;

export interface Flood {
  readonly sockets: net.Socket[];
  /** How many of them the listener has closed so far. */
  closed(): number;
  destroy(): void;
}

export interface FloodOptions {
  /** Sources are 127.0.0.`first`, 127.0.0.`first + 1`, … (default 2). */
  first?: number;
  /** Finish a TLS handshake (any certificate) and then say nothing. */
  tls?: boolean;
  /** Bytes to send once connected (say, half an HTTP request). */
  say?: string;
}

/**
 * `count` idle connections to 127.0.0.1:`port`, `perSource` from each
 * loopback source address, opened one after the other, saying nothing (or
 * `say`). For listener-slot tests: only loopback, bounded by `count`.
 */
export async function flood(port: number, count: number, perSource: number, opts: FloodOptions = {}): Promise<Flood> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  for (let i = 0; i < count; i++) {
    const localAddress = `127.0.0.${(opts.first ?? 2) + Math.floor(i / perSource)}`;
    const tcp = net.connect({ host: '127.0.0.1', port, localAddress });
    tcp.on('error', () => undefined);
    // Who the listener is does not matter to a flood.
    const s: net.Socket = opts.tls === true ? tls.connect({ socket: tcp, rejectUnauthorized: false }) : tcp;
    s.on('error', () => undefined);
    s.once('close', () => { closed++; });
    sockets.push(s);
    await new Promise<void>((resolve) => {
      s.once(opts.tls === true ? 'secureConnect' : 'connect', () => {
        if (opts.say !== undefined) s.write(opts.say);
        resolve();
      });
      s.once('close', () => resolve());
    });
  }
  return { sockets, closed: () => closed, destroy: () => { for (const s of sockets) s.destroy(); } };
}
