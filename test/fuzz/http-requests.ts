import type { Rand } from './fuzz-kit.ts';
import { mutateBytes, mutateJson, randomJson } from './mutate.ts';

/**
 * HTTP requests for the fuzz tier, built from parts so most reach the
 * handlers: method, path from the server's routes with parameters replaced
 * (bad percent-encoding, traversal, huge, unicode), query, headers (auth,
 * content type and length, chunked), a JSON body mutated from a valid one;
 * some are then pipelined or mutated as bytes.
 */

export interface RouteSpec {
  readonly method: string;
  /** Path with :param segments. */
  readonly path: string;
  /** Valid values of each parameter (others are generated). */
  readonly params?: Readonly<Record<string, readonly string[]>>;
  readonly body?: unknown;
  readonly query?: readonly string[];
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'get', 'FOO', 'M-SEARCH', 'PROPFIND'];
const SEGMENTS = [
  '%zz', '%', '%2', '%e0%80', '%c0%af', '%ff', '%00', '%2F', '%2e%2e', '..', '.', '', '%20', 'a%2Fb', '%F0%9F%92%A5', '%ED%A0%80', '~', ';x', '%25',
  'x'.repeat(300), 'h'.repeat(5000), '02:00:00:00:00:01', '02-00-00-00-00-01', 'aws-1', 'nobody', '-1', '0', '99999999999999999999', '__proto__', 'constructor',
];
const QUERIES = ['', '?', '?a=1', '?limit=-1', '?limit=1001', '?limit=abc', '?since=1e3', '?since=99999999999999999999', '?types=nope', '?%zz=1', '?a=%zz', '?limit=1&limit=2', `?x=${'y'.repeat(3000)}`, '?token=x'];

function segment(rand: Rand, valid: readonly string[] | undefined): string {
  if (valid !== undefined && valid.length > 0 && rand.chance(0.5)) return rand.pick(valid);
  if (rand.chance(0.3)) return encodeURIComponent(rand.bytes(rand.range(1, 12)).toString('latin1'));
  return rand.pick(SEGMENTS);
}

function requestPath(rand: Rand, route: RouteSpec): string {
  let path = route.path.replace(/:([A-Za-z]+)/g, (_m, name: string) => segment(rand, route.params?.[name]));
  switch (rand.int(10)) {
    case 0: path = `${path}/`; break;
    case 1: path = path.replace(/\//g, () => (rand.chance(0.2) ? '//' : '/')); break;
    case 2: path = `${path}/${segment(rand, undefined)}`; break;
    case 3: path = path.split('/').slice(0, rand.int(6)).join('/') || '/'; break;
    case 4: path = rand.pick(['*', 'http://localhost/api/v1/hosts', '/..%2f..%2fetc/passwd', '/api/v1/../../x', '//api/v1']); break;
    default:
  }
  const q = route.query !== undefined && route.query.length > 0 && rand.chance(0.5) ? rand.pick(route.query) : rand.chance(0.3) ? rand.pick(QUERIES) : '';
  return `${path}${q}`;
}

function body(rand: Rand, route: RouteSpec): Buffer | undefined {
  const mode = rand.int(10);
  if (mode === 0 || (route.body === undefined && mode < 7)) return undefined;
  if (mode === 1) return Buffer.from(JSON.stringify(randomJson(rand, 3)));
  if (mode === 2) return rand.bytes(rand.size(200));
  if (mode === 3) return Buffer.from(rand.pick(['{', '[1,', '{"a":}', 'null', '""', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '\ufeff{}', ' '.repeat(100), '1'.repeat(100)]));
  if (mode === 4) return Buffer.alloc(rand.pick([70_000, 300_000]), 0x20);
  const valid = route.body ?? { a: 1 };
  return Buffer.from(JSON.stringify(mode === 5 ? valid : mutateJson(rand, valid, { repeats: [2, 50], nests: [10, 100] })));
}

/** One request to one of `routes`, as raw bytes. */
export function randomRequest(rand: Rand, routes: readonly RouteSpec[], auth: readonly string[]): Buffer {
  const route = rand.pick(routes);
  const method = rand.chance(0.8) ? route.method : rand.pick(METHODS);
  const b = body(rand, route);
  const headers: string[] = [];
  if (rand.chance(0.95)) headers.push('Host: localhost');
  if (auth.length > 0 && rand.chance(0.9)) headers.push(`Authorization: ${rand.pick(auth)}`);
  if (b !== undefined && rand.chance(0.9)) headers.push(`Content-Type: ${rand.pick(['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', '', 'application/jsonx'])}`);
  let payload = b ?? Buffer.alloc(0);
  const framing = rand.int(10);
  if (framing === 0 && b !== undefined) {
    headers.push('Transfer-Encoding: chunked');
    const cut = rand.int(payload.length + 1);
    payload = Buffer.concat([Buffer.from(`${cut.toString(16)}\r\n`), payload.subarray(0, cut), Buffer.from(`\r\n${(payload.length - cut).toString(16)}\r\n`), payload.subarray(cut), Buffer.from(rand.chance(0.8) ? '\r\n0\r\n\r\n' : '\r\n')]);
  } else if (framing === 1) headers.push(`Content-Length: ${rand.pick([-1, 0, payload.length + 1, payload.length - 1, 2 ** 53, '1e3', 'abc', `${payload.length}, ${payload.length}`])}`);
  else if (b !== undefined) headers.push(`Content-Length: ${payload.length}`);
  if (rand.chance(0.1)) headers.push(rand.pick(['Connection: close', 'Connection: keep-alive', 'Expect: 100-continue', 'Upgrade: websocket\r\nConnection: Upgrade', `X-Long: ${'v'.repeat(rand.pick([100, 20_000]))}`, 'Bad Header: x', 'X-Ctl: a\x01b', 'Host: other']));
  const head = `${method} ${requestPath(rand, route)} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`;
  let raw: Buffer = Buffer.concat([Buffer.from(head, 'latin1'), payload]);
  // Sometimes two requests on the connection (pipelined), sometimes bytes mutated.
  if (rand.chance(0.05)) raw = Buffer.concat([raw, raw]);
  if (rand.chance(0.15)) raw = mutateBytes(rand, raw);
  return raw;
}
