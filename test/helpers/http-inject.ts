import http from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';

/**
 * Requests to a real HTTP server, in process: the server a `start…` function
 * creates is captured (http.createServer wrapped for the call), and each
 * request is a connection injected into it — an in-memory Duplex, which
 * Node's HTTP server accepts like a socket ('connection' event) — so the
 * whole stack runs (llhttp parser, limits, router, handlers, error mapping)
 * with no socket and no port. The client half-closes after its bytes; with
 * `halfOpen` (default) the server answers every request it parsed, then ends
 * the connection; without it, it aborts what is in flight, as it does when a
 * real client goes away.
 */

/** The HTTP servers created while `start` runs, with what it returned. */
export async function captureServers<T>(start: () => Promise<T>, opts: { halfOpen?: boolean } = {}): Promise<{ value: T; servers: http.Server[] }> {
  const original = http.createServer;
  const servers: http.Server[] = [];
  const wrapped = ((...args: Parameters<typeof http.createServer>) => {
    const s = original(...args);
    servers.push(s);
    return s;
  }) as typeof http.createServer;
  http.createServer = wrapped;
  syncBuiltinESMExports();
  try {
    const value = await start();
    // Answer every parsed request even though the client has half-closed (Node's server option for this).
    if (opts.halfOpen !== false) for (const s of servers) (s as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    return { value, servers };
  } finally {
    http.createServer = original;
    syncBuiltinESMExports();
  }
}

export interface Exchange {
  /** Status of every response, in order. */
  readonly statuses: number[];
  /** The server was still waiting for the rest of a request when `stallMs` passed; the connection was dropped, as a real client's timeout would. */
  readonly stalled: boolean;
}

/**
 * Send `raw` on a fresh injected connection; resolves with the responses
 * when the server ends it. A server waiting for bytes the client never sends
 * (a body shorter than its length) is a stalled client, not a server fault:
 * after `stallMs` with no whole request in a handler, the connection is
 * dropped. A whole request still in its handler after `hangMs` is a hang.
 */
export function inject(server: http.Server, raw: Buffer, opts: { stallMs?: number; hangMs?: number } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    // Requests in a handler whose body has all arrived: one still there at hangMs is a hang.
    const inHandler = new Map<http.ServerResponse, http.IncomingMessage>();
    let done = false;
    let stalled = false;
    const settle = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(stallTimer);
      clearTimeout(hangTimer);
      server.off('request', onRequest);
      if (err !== undefined) {
        socket.destroy();
        reject(err);
        return;
      }
      const text = Buffer.concat(out).toString('latin1');
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses, stalled });
    };
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
      final(callback) {
        callback();
        settle();
      },
    });
    Object.assign(socket, { remoteAddress: '127.0.0.1', remotePort: 40000, setTimeout: () => socket, setNoDelay: () => socket, setKeepAlive: () => socket });
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (req.socket !== socket) return;
      inHandler.set(res, req);
      res.on('close', () => inHandler.delete(res));
    };
    server.on('request', onRequest);
    socket.on('close', () => settle());
    socket.on('error', () => {});
    const stallTimer = setTimeout(() => {
      if (done || [...inHandler.values()].some((req) => req.complete)) return;
      stalled = true;
      socket.destroy();
      settle();
    }, opts.stallMs ?? 500);
    const hangTimer = setTimeout(() => settle(new Error(`a request still in its handler after ${opts.hangMs ?? 15_000} ms: a hang`)), opts.hangMs ?? 15_000);
    server.emit('connection', socket);
    socket.push(raw);
    socket.push(null);
  });
}

/** A pino logger that keeps what it logs at `level` and above, and counts the error-level lines (a handler's unexpected failure is logged there). */
export function recordingLogger(level = 'error'): { logger: Logger; errors: () => number; last: () => string; lines: string[] } {
  let errors = 0;
  const lines: string[] = [];
  const logger = pino({ level }, {
    write(line: string) {
      if ((JSON.parse(line) as { level: number }).level >= 50) errors++;
      lines.push(line);
      if (lines.length > 100) lines.shift();
    },
  });
  return { logger, errors: () => errors, last: () => lines.at(-1) ?? '', lines };
}
