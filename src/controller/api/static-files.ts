import { readFile, readdir } from 'node:fs/promises';
import { extname } from 'node:path';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiStaticFileError, WebPageMissingError } from './errors.ts';

/**
 * The web page shell: a few static files from `src/controller/web`, plus
 * cytoscape's browser build from node_modules (the machine has no internet,
 * and the page must not depend on a CDN). Read once at start, served from
 * memory, no authentication (the page holds no data; it reads the token from
 * its URL fragment and asks the API).
 */

interface StaticFile {
  type: string;
  body: Buffer;
  etag: string;
}

function staticFile(type: string, body: Buffer): StaticFile {
  return { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

const WEB_DIR = new URL('../web/', import.meta.url);

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export class StaticFiles {
  readonly #files: Map<string, StaticFile>;

  private constructor(files: Map<string, StaticFile>) {
    this.#files = files;
  }

  static async load(): Promise<StaticFiles> {
    const files = new Map<string, StaticFile>();
    // Every page file (by extension) in the web directory, at /NAME; the page itself also at /.
    for (const name of (await readdir(WEB_DIR)).sort()) {
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      files.set(`/${name}`, staticFile(type, await readFile(new URL(name, WEB_DIR))));
    }
    const index = files.get('/index.html');
    if (index === undefined) throw new WebPageMissingError(`the web page is missing: no index.html in ${WEB_DIR.pathname}`);
    files.set('/', index);
    const require = createRequire(import.meta.url);
    const cytoscape = require.resolve('cytoscape/dist/cytoscape.min.js');
    files.set('/vendor/cytoscape.min.js', staticFile('text/javascript; charset=utf-8', await readFile(cytoscape)));
    return new StaticFiles(files);
  }

  has(path: string): boolean {
    return this.#files.has(path);
  }

  /** Serve `path` (which `has`); HEAD gets the headers only; a matching If-None-Match gets 304. Returns the status. */
  serve(path: string, req: IncomingMessage, res: ServerResponse, head: boolean): number {
    const f = this.#files.get(path);
    if (f === undefined) throw new ApiStaticFileError(path);
    const headers = {
      'content-type': f.type,
      'cache-control': 'no-cache',
      etag: f.etag,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    };
    if (req.headers['if-none-match'] === f.etag) {
      res.writeHead(304, headers);
      res.end();
      return 304;
    }
    res.writeHead(200, { ...headers, 'content-length': f.body.length });
    res.end(head ? undefined : f.body);
    return 200;
  }
}
