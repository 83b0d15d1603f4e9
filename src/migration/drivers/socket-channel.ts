/**
 * Migration channels over TCP or TLS. The listener accepts the channels of
 * one migration (one or two connections, in the order the sender opens
 * them); the connector opens them one after another. TLS takes plain node
 * `tls` options, so the deployment's mutual-TLS credentials
 * (src/dataplane/certs.ts `loadHostCredentials`: { ca, cert, key }) plug in
 * as `{ ca, cert, key, requestCert: true, rejectUnauthorized: true }`.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { MigrationAbortedError } from '../errors.ts';

const guarded = new WeakSet<Duplex>();

/**
 * Gives a channel an error listener for the rest of its life. While a
 * migration runs, its own listeners turn a socket error into a
 * MigrationAbortedError; the socket may still report one later (the EPIPE or
 * ECONNRESET of a write the kernel refuses once the peer is gone, after the
 * migration has ended and taken its listeners off), and an error event with
 * no listener would be an uncaught exception. Idempotent.
 */
export function guardChannel(ch: Duplex): void {
  if (guarded.has(ch)) return;
  guarded.add(ch);
  ch.on('error', () => { /* reported through the migration's result while it runs; nothing to do after */ });
}

/** Whether a write may still be handed to the channel (not ended, destroyed or failed). */
export function canWrite(ch: Duplex): boolean {
  return ch.writable && !ch.destroyed;
}

export interface MigrationListenOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** TLS server options; plain TCP when undefined. */
  readonly tls?: tls.TlsOptions;
}

export interface MigrationListener {
  readonly port: number;
  readonly address: string;
  /** The next `channels` connections, as the channels of one migration. */
  accept(channels: number, signal?: AbortSignal): Promise<Duplex[]>;
  close(): Promise<void>;
}

export async function listenMigration(opts: MigrationListenOptions = {}): Promise<MigrationListener> {
  const queue: Duplex[] = [];
  let waiter: (() => void) | undefined;
  const onConn = (s: Duplex): void => {
    guardChannel(s); // a queued connection may be reset before it is handed out
    if (s instanceof net.Socket) s.setNoDelay(true);
    queue.push(s);
    waiter?.();
  };
  const server = opts.tls !== undefined ? tls.createServer(opts.tls, onConn) : net.createServer(onConn);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const address = typeof addr === 'object' && addr !== null ? addr.address : '';
  return {
    port,
    address,
    async accept(channels: number, signal?: AbortSignal): Promise<Duplex[]> {
      const out: Duplex[] = [];
      while (out.length < channels) {
        const s = queue.shift();
        if (s !== undefined) { out.push(s); continue; }
        if (signal?.aborted === true) throw new MigrationAbortedError('cancelled', 'stopped waiting for channels');
        await new Promise<void>((resolve) => {
          waiter = resolve;
          signal?.addEventListener('abort', () => resolve(), { once: true });
        });
        waiter = undefined;
      }
      return out;
    },
    close(): Promise<void> {
      for (const s of queue) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export interface MigrationConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly channels?: number;
  /** TLS client options; plain TCP when undefined. */
  readonly tls?: tls.ConnectionOptions;
  readonly timeoutMs?: number;
}

/** Opens the channels of one migration, one after the other (so the listener sees them in order). */
export async function connectMigration(opts: MigrationConnectOptions): Promise<Duplex[]> {
  const out: Duplex[] = [];
  try {
    for (let i = 0; i < (opts.channels ?? 1); i++) out.push(await connectOne(opts));
  } catch (err) {
    for (const s of out) s.destroy();
    throw err;
  }
  return out;
}

function connectOne(opts: MigrationConnectOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = opts.tls !== undefined
      ? tls.connect({ ...opts.tls, host: opts.host, port: opts.port })
      : net.connect({ host: opts.host, port: opts.port });
    const timer = setTimeout(() => { s.destroy(); reject(new MigrationAbortedError('timeout', `connect to ${opts.host}:${opts.port} timed out`)); }, opts.timeoutMs ?? 10_000);
    const ready = opts.tls !== undefined ? 'secureConnect' : 'connect';
    s.once(ready, () => { clearTimeout(timer); s.off('error', onError); guardChannel(s); s.setNoDelay(true); resolve(s); });
    const onError = (err: Error): void => { clearTimeout(timer); reject(new MigrationAbortedError('link', `connect to ${opts.host}:${opts.port}: ${err.message}`, { cause: err })); };
    s.once('error', onError);
  });
}
