import { afterReads } from '../../../common/after-reads.ts';
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { EtcdUnavailableError, EtcdRequestError } from '../../errors.ts';

/**
 * A small client of etcd v3's JSON gateway (`POST /v3/...`, the gRPC API as
 * JSON over HTTP/1.1, served by every etcd ≥ 3.4 on its client URL): range,
 * transactions, leases and watches — what the store and the election use,
 * nothing more (docs/ha.md says why this rather than the `etcd3` package).
 *
 * Keys and values are base64 on the wire and strings here; revisions and
 * lease ids are int64 decimal strings on the wire, numbers (revisions) and
 * strings (lease ids) here. Several endpoints: a request that cannot reach
 * one (refused, reset, timed out) is tried on the next, each at most once;
 * an answer with an error status is not retried.
 */

export interface EtcdClientInit {
  /** Client URLs, e.g. `http://127.0.0.1:2379`, or `https://` with `tls`. */
  endpoints: readonly string[];
  /** Per-request deadline (default 5 s). */
  requestTimeoutMs?: number;
  /** For `https://` endpoints: the CA that signed etcd's certificates, and this client's certificate and key (etcd's --client-cert-auth). */
  tls?: EtcdTls | undefined;
}

export interface EtcdTls {
  ca: string | Buffer;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  lease: string;
}

export type Compare =
  | { key: string; target: 'CREATE'; createRevision: number }
  | { key: string; target: 'VALUE'; value: string };

export type TxnOp =
  | { put: { key: string; value: string; lease?: string } }
  | { delete: { key: string; rangeEnd?: string } };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
}

export interface Watch {
  close(): void;
}

export interface WatchHandlers {
  /** Events of one revision batch, in order. */
  onEvents(events: WatchEvent[], revision: number): void;
  /** The watch cannot go on from where it was (history compacted): reload and watch again. */
  onCompacted(compactRevision: number): void;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => (s === undefined ? '' : Buffer.from(s, 'base64').toString('utf8'));

/** The end of the range of every key beginning with `prefix`. */
export function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i] = buf[i]! + 1;
      return buf.subarray(0, i + 1).toString('latin1');
    }
  }
  return '\0';
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  readonly #timeoutMs: number;
  readonly #agent: Agent;
  readonly #tls: EtcdTls | undefined;
  #current = 0;
  #closed = false;

  constructor(init: EtcdClientInit) {
    if (init.endpoints.length === 0) throw new EtcdRequestError('no etcd endpoints given');
    const https = init.endpoints.filter((e) => e.startsWith('https://')).length;
    if (https !== 0 && https !== init.endpoints.length) throw new EtcdRequestError('etcd endpoints mix http:// and https://');
    if (https > 0 && init.tls === undefined) throw new EtcdRequestError('https:// etcd endpoints need a CA (tls.ca)');
    this.endpoints = [...init.endpoints];
    this.#timeoutMs = init.requestTimeoutMs ?? 5000;
    this.#tls = https > 0 ? init.tls : undefined;
    this.#agent = this.#tls === undefined ? new Agent({ keepAlive: true }) : new HttpsAgent({ keepAlive: true, ...this.#tls });
  }

  /** A request to one endpoint, over TLS (verifying etcd's certificate, presenting ours) for https:// ones. */
  #request(url: string, options: RequestOptions, onResponse: (res: IncomingMessage) => void): ClientRequest {
    return this.#tls === undefined ? httpRequest(url, options, onResponse) : httpsRequest(url, { ...options, ...this.#tls }, onResponse);
  }

  async range(key: string, rangeEnd?: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const body: Record<string, unknown> = { key: b64(key) };
    if (rangeEnd !== undefined) body.range_end = rangeEnd === '\0' ? 'AA==' : Buffer.from(rangeEnd, 'latin1').toString('base64');
    const r = await this.#call('/v3/kv/range', body) as { header: Header; kvs?: RawKv[] };
    return { kvs: (r.kvs ?? []).map(kvFromRaw), revision: Number(r.header.revision) };
  }

  async txn(compare: readonly Compare[], success: readonly TxnOp[], failure: readonly TxnOp[] = []): Promise<TxnResult> {
    const r = await this.#call('/v3/kv/txn', {
      compare: compare.map((c) => c.target === 'CREATE'
        ? { key: b64(c.key), target: 'CREATE', result: 'EQUAL', create_revision: String(c.createRevision) }
        : { key: b64(c.key), target: 'VALUE', result: 'EQUAL', value: b64(c.value) }),
      success: success.map(opToRaw),
      failure: failure.map(opToRaw),
    }) as { header: Header; succeeded?: boolean };
    return { succeeded: r.succeeded === true, revision: Number(r.header.revision) };
  }

  async leaseGrant(ttlSeconds: number): Promise<string> {
    const r = await this.#call('/v3/lease/grant', { TTL: String(ttlSeconds) }) as { ID: string };
    return r.ID;
  }

  /** One keep-alive; returns the lease's remaining TTL in seconds (0: the lease is gone). */
  async leaseKeepAlive(id: string, timeoutMs?: number): Promise<number> {
    const r = await this.#call('/v3/lease/keepalive', { ID: id }, timeoutMs) as { result?: { TTL?: string } };
    return Number(r.result?.TTL ?? 0);
  }

  /** A lease's remaining TTL in seconds (-1: the lease is gone), without renewing it. */
  async leaseTimeToLive(id: string): Promise<number> {
    const r = await this.#call('/v3/lease/timetolive', { ID: id }) as { TTL?: string };
    return Number(r.TTL ?? -1);
  }

  /** One member's own status (asked of that endpoint alone): its etcd version and whether it leads the etcd cluster. */
  async memberStatus(endpoint: string, timeoutMs = 2000): Promise<{ version: string; raftLeader: boolean }> {
    const r = await this.#post(endpoint, '/v3/maintenance/status', '{}', timeoutMs) as { header?: { member_id?: string }; version?: string; leader?: string };
    return { version: String(r.version ?? ''), raftLeader: r.leader !== undefined && r.leader === r.header?.member_id };
  }

  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.#call('/v3/lease/revoke', { ID: id });
    } catch (err) {
      if (!(err instanceof EtcdRequestError)) throw err; // lease already gone: nothing to revoke
    }
  }

  /**
   * Watch `key` (to `rangeEnd`) from `startRevision` on. A broken stream is
   * opened again (on the next endpoint) from the revision after the last one
   * seen, so no event is lost or repeated.
   */
  watch(key: string, rangeEnd: string | undefined, startRevision: number, handlers: WatchHandlers): Watch {
    let next = startRevision;
    let closed = false;
    let res: IncomingMessage | undefined;
    let abort: (() => void) | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let generation = 0;
    const open = (): void => {
      if (closed || this.#closed) return;
      const mine = ++generation;
      const broken = (): void => { if (generation === mine) retry(); };
      const create: Record<string, unknown> = { key: b64(key), start_revision: String(next) };
      if (rangeEnd !== undefined) create.range_end = Buffer.from(rangeEnd, 'latin1').toString('base64');
      const endpoint = this.endpoints[this.#current]!;
      const req = this.#request(`${endpoint}/v3/watch`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (r) => {
        res = r;
        let buffered = '';
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => {
          buffered += chunk;
          for (let nl = buffered.indexOf('\n'); nl >= 0 && generation === mine && !retrying && !closed; nl = buffered.indexOf('\n')) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (line !== '') handleLine(line);
          }
        });
        r.on('end', broken);
        r.on('error', broken);
      });
      abort = () => req.destroy();
      req.on('error', broken);
      req.end(JSON.stringify({ create_request: create }));
    };
    const handleLine = (line: string): void => {
      let msg: { result?: { header?: Header; events?: RawEvent[]; compact_revision?: string; canceled?: boolean } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        retry(); // not etcd's JSON: open the stream again from the next revision
        return;
      }
      const result = msg.result;
      if (result === undefined) return;
      if (result.compact_revision !== undefined && Number(result.compact_revision) > 0) {
        closed = true;
        abort?.();
        handlers.onCompacted(Number(result.compact_revision));
        return;
      }
      if (result.canceled === true) {
        retry();
        return;
      }
      const events = (result.events ?? []).map((e): WatchEvent => ({ type: e.type === 'DELETE' ? 'DELETE' : 'PUT', kv: kvFromRaw(e.kv) }));
      if (events.length === 0) return;
      const revision = events[events.length - 1]!.kv.modRevision;
      next = revision + 1;
      handlers.onEvents(events, revision);
    };
    let retrying = false;
    const retry = (): void => {
      if (closed || retrying) return;
      retrying = true;
      res?.destroy();
      this.#current = (this.#current + 1) % this.endpoints.length;
      retryTimer = setTimeout(() => { retrying = false; open(); }, 100);
    };
    open();
    return {
      close: () => {
        closed = true;
        if (retryTimer !== undefined) clearTimeout(retryTimer);
        abort?.();
        res?.destroy();
      },
    };
  }

  close(): void {
    this.#closed = true;
    this.#agent.destroy();
  }

  async #call(path: string, body: unknown, timeoutMs = this.#timeoutMs): Promise<unknown> {
    const payload = JSON.stringify(body);
    const deadline = performance.now() + timeoutMs;
    let lastError: unknown;
    let transient = false;
    // Every endpoint once; after a member's transient trouble (leader changing), round again until the deadline.
    for (let tried = 0; tried < this.endpoints.length || (transient && performance.now() < deadline); tried++) {
      const endpoint = this.endpoints[this.#current]!;
      try {
        return await this.#post(endpoint, path, payload, Math.max(50, deadline - performance.now()));
      } catch (err) {
        if (err instanceof EtcdRequestError) throw err;
        lastError = err;
        this.#current = (this.#current + 1) % this.endpoints.length;
        if (err instanceof TransientError) {
          transient = true;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
    throw new EtcdUnavailableError(this.endpoints, lastError);
  }

  #post(endpoint: string, path: string, payload: string, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = this.#request(`${endpoint}${path}`, {
        method: 'POST', agent: this.#agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { text += d; });
        res.on('error', reject);
        res.on('end', () => {
          answered = true;
          clearTimeout(timer);
          // A streaming endpoint (keepalive) answers one JSON object per line: the first is the answer.
          const first = text.split('\n', 1)[0] ?? '';
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(first) as Record<string, unknown>;
          } catch (err) {
            reject(new EtcdRequestError(`etcd ${endpoint}${path} answered ${res.statusCode ?? 0} with no JSON`, { cause: err }));
            return;
          }
          const status = res.statusCode ?? 500;
          const detail = errorOf(parsed) ?? (status >= 400 ? `status ${status}` : undefined);
          if (detail === undefined) resolve(parsed);
          // A member's trouble (no leader, leader changing, overloaded), not the request's: ask again.
          else if (TRANSIENT.test(detail) || (status >= 500 && errorOf(parsed) === undefined)) reject(new TransientError(detail));
          else reject(new EtcdRequestError(`etcd ${path}: ${detail}`));
        });
      });
      // Judged after the turn's reads: after a busy spell of the controller's loop the timer runs before
      // the socket holding etcd's answer is read, and a request answered in time would be sent again.
      let answered = false;
      const timer = setTimeout(() => afterReads(() => {
        if (!answered) req.destroy(new Error(`no answer within ${timeoutMs} ms`));
      }), timeoutMs);
      req.on('error', (err) => { clearTimeout(timer); reject(err); });
      req.end(payload);
    });
  }
}

/** A member could not serve the request now (no leader, leader changed): worth asking again. */
class TransientError extends Error {}

const TRANSIENT = /no leader|leader changed|timed out|unavailable|too many requests/i;

/** The gateway's error: `{error: "..."}` (unary, and a lease grant's own field), `{error: {message}}` (streams), `{message}`. */
function errorOf(body: Record<string, unknown>): string | undefined {
  const e = body.error;
  if (typeof e === 'string' && e !== '') return e;
  if (typeof e === 'object' && e !== null) return String((e as { message?: unknown }).message ?? JSON.stringify(e));
  return undefined;
}

interface Header { revision: string }
interface RawKv { key: string; value?: string; create_revision?: string; mod_revision?: string; lease?: string }
interface RawEvent { type?: string; kv: RawKv }

function kvFromRaw(r: RawKv): KeyValue {
  return {
    key: unb64(r.key), value: unb64(r.value), createRevision: Number(r.create_revision ?? 0),
    modRevision: Number(r.mod_revision ?? 0), lease: r.lease ?? '0',
  };
}

function opToRaw(op: TxnOp): Record<string, unknown> {
  if ('put' in op) {
    const p: Record<string, unknown> = { key: b64(op.put.key), value: b64(op.put.value) };
    if (op.put.lease !== undefined) p.lease = op.put.lease;
    return { request_put: p };
  }
  const d: Record<string, unknown> = { key: b64(op.delete.key) };
  if (op.delete.rangeEnd !== undefined) d.range_end = Buffer.from(op.delete.rangeEnd, 'latin1').toString('base64');
  return { request_delete_range: d };
}
