import { request } from 'node:http';

/** A tiny client for a daemon's admin interface on a Unix socket or loopback URL. */
export function adminRequest(where: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const target = where.startsWith('unix:') ? { socketPath: where.slice(5) } : (() => {
    const u = new URL(where);
    return { host: u.hostname, port: Number(u.port) };
  })();
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, headers: text ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, json: raw ? JSON.parse(raw) : undefined });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`admin request ${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(text);
  });
}
