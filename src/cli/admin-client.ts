import { request } from 'node:http';
import { AdminUnreachableError } from './errors.ts';

/**
 * A client of a daemon's admin interface (src/dataplane/admin-server.ts):
 * `unix:/path` (the owner only, by the socket's mode) or `http://HOST:PORT`
 * with the bearer token from the daemon's admin token file.
 */
export interface AdminTarget {
  /** "unix:/run/vnet/h2/admin.sock" or "http://127.0.0.1:7102". */
  url: string;
  token?: string | undefined;
}

export interface AdminResponse {
  status: number;
  json: unknown;
}

/** One JSON request; rejects with AdminUnreachableError when the interface cannot be reached or answers no JSON. */
export function adminRequest(where: string | AdminTarget, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<AdminResponse> {
  const target = typeof where === 'string' ? { url: where } : where;
  let endpoint: { socketPath: string } | { host: string; port: number };
  if (target.url.startsWith('unix:')) {
    endpoint = { socketPath: target.url.slice(5) };
  } else {
    const u = new URL(target.url);
    endpoint = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
  }
  const text = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = {};
  if (text !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown): void => reject(new AdminUnreachableError(target.url, why, { cause }));
    // No keep-alive pool: a pooled socket to a daemon that has since restarted would fail the next request (EPIPE).
    const req = request({ ...endpoint, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => fail(err.message, err));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, json: raw ? JSON.parse(raw) : undefined });
        } catch (err) {
          fail(`${method} ${path} answered ${res.statusCode ?? 0} with no JSON`, err);
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', (err) => fail(err.message, err));
    req.end(text);
  });
}
