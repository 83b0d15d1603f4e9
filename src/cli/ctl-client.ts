import { WebSocket } from 'ws';
import type { EventView } from '../controller/api-events.ts';
import type { StreamMessage } from '../controller/api/event-stream.ts';
import { operatorPageUrl } from '../controller/api/page-url.ts';
import { ControllerAuthRefusedError, ControllerRequestError, ControllerUnreachableError } from './errors.ts';

/**
 * The operator API as seen from `vnet ctl`: JSON over HTTP with the bearer
 * token, and the event stream over a WebSocket. Network failures and refusals
 * become the typed errors of ctl-errors.ts, with the controller's URL named.
 *
 * A controller replica that does not lead (docs/ha.md) answers a change 307
 * with the leader's API in `location`: the client sends the same request
 * there, once, with its token (fetch would drop the token on a redirect to
 * another origin, so it is followed here, and only to http(s)).
 */

export interface ControllerClientInit {
  /** e.g. "http://127.0.0.1:7070" */
  baseUrl: string;
  token: string;
  timeoutMs?: number;
}

export class ControllerClient {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(init: ControllerClientInit) {
    this.baseUrl = init.baseUrl.replace(/\/+$/, '');
    this.#token = init.token;
    this.#timeoutMs = init.timeoutMs ?? 10_000;
  }

  get<T>(path: string): Promise<T> {
    return this.#request<T>('GET', path, undefined);
  }

  post<T>(path: string, body: unknown, timeoutMs?: number): Promise<T> {
    return this.#request<T>('POST', path, body, timeoutMs);
  }

  /** A raw body (application/octet-stream): an image chunk. */
  putBytes<T>(path: string, bytes: Uint8Array, timeoutMs = 120_000): Promise<T> {
    return this.#request<T>('PUT', path, bytes, timeoutMs);
  }

  delete<T>(path: string): Promise<T> {
    return this.#request<T>('DELETE', path, undefined);
  }

  /** The web page's address with this client's token in the fragment (`vnet ctl web-url`). */
  webPageUrl(): string {
    return operatorPageUrl(this.baseUrl, this.#token);
  }

  async #request<T>(method: string, path: string, body: unknown, timeoutMs = this.#timeoutMs): Promise<T> {
    let res = await this.#send(method, `${this.baseUrl}${path}`, body, timeoutMs);
    const location = res.headers.get('location');
    if (res.status === 307 && location !== null && /^https?:\/\//.test(location)) {
      await res.body?.cancel().catch(() => undefined);
      res = await this.#send(method, location, body, timeoutMs);
    }
    const text = await res.text().catch(() => '');
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.ok) return json as T;
    const error = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const message = typeof error?.message === 'string' ? error.message : text.slice(0, 200) || res.statusText;
    if (res.status === 401) throw new ControllerAuthRefusedError(message);
    throw new ControllerRequestError(res.status, typeof error?.code === 'string' ? error.code : `HTTP_${res.status}`, message);
  }

  async #send(method: string, url: string, body: unknown, timeoutMs: number): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    const raw = body instanceof Uint8Array;
    if (body !== undefined) headers['content-type'] = raw ? 'application/octet-stream' : 'application/json';
    try {
      return await fetch(url, {
        method,
        headers,
        redirect: 'manual',
        ...(body !== undefined ? { body: raw ? body : JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new ControllerUnreachableError(new URL(url).origin, networkReason(err), { cause: err });
    }
  }

  /**
   * Follow the event stream from `since` (exclusive) until `signal` aborts.
   * Reconnects (resuming after the last seq seen) when the connection drops;
   * rejects on a refused token, or if the controller cannot be reached at all.
   */
  async followEvents(
    since: number,
    onEvent: (event: EventView) => void,
    init: { signal?: AbortSignal; onNotice?: (text: string) => void; maxReconnectDelayMs?: number } = {},
  ): Promise<void> {
    let last = since;
    let delay = 250;
    let everConnected = false;
    while (init.signal?.aborted !== true) {
      const outcome = await this.#streamOnce(
        last,
        (e) => {
          last = Math.max(last, e.seq);
          onEvent(e);
        },
        init.signal,
        (text) => init.onNotice?.(text),
        // The controller's history restarted below what we had seen: continue from its numbering.
        (latestSeq) => {
          last = latestSeq;
        },
      );
      if (outcome.kind === 'aborted') return;
      if (outcome.kind === 'refused') throw outcome.error;
      if (outcome.kind === 'opened') {
        everConnected = true;
        delay = 250;
      } else if (!everConnected) {
        throw outcome.error;
      }
      init.onNotice?.(`event stream closed; reconnecting from seq ${last}`);
      await abortableDelay(delay, init.signal);
      delay = Math.min(delay * 2, init.maxReconnectDelayMs ?? 5000);
    }
  }

  #streamOnce(
    since: number,
    onEvent: (event: EventView) => void,
    signal: AbortSignal | undefined,
    onNotice: (text: string) => void,
    onRestart: (latestSeq: number) => void,
  ): Promise<{ kind: 'aborted' } | { kind: 'opened' } | { kind: 'refused'; error: Error } | { kind: 'failed'; error: Error }> {
    const url = `${this.baseUrl.replace(/^http/, 'ws')}/api/v1/events?since=${since}`;
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.#token}` }, handshakeTimeout: this.#timeoutMs });
      let opened = false;
      let settled = false;
      const finish = (r: Parameters<typeof resolve>[0]): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const onAbort = (): void => {
        ws.terminate();
        finish({ kind: 'aborted' });
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('open', () => {
        opened = true;
      });
      ws.on('message', (data) => {
        let m: StreamMessage;
        try {
          m = JSON.parse(String(data)) as StreamMessage;
        } catch {
          return;
        }
        if (m.kind === 'hello' && m.gap) {
          if (m.since > m.latestSeq) onRestart(m.latestSeq);
          onNotice(
            m.since > m.latestSeq
              ? `the controller's event history restarted (its latest seq is ${m.latestSeq}, we had seen ${m.since})`
              : `events ${m.since + 1}..${m.oldestSeq - 1} are no longer kept by the controller`,
          );
        }
        if (m.kind === 'event') onEvent(m.event);
      });
      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let message = `HTTP ${res.statusCode}`;
          try {
            message = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: { message: string } }).error.message;
          } catch {
            // keep the status line
          }
          ws.terminate();
          const status = res.statusCode ?? 0;
          finish({ kind: 'refused', error: status === 401 ? new ControllerAuthRefusedError(message) : new ControllerRequestError(status, `HTTP_${status}`, message) });
        });
      });
      ws.on('error', (err) => {
        if (!opened) finish({ kind: 'failed', error: new ControllerUnreachableError(this.baseUrl, networkReason(err), { cause: err }) });
      });
      ws.on('close', () => {
        if (opened) finish({ kind: 'opened' });
        else finish({ kind: 'failed', error: new ControllerUnreachableError(this.baseUrl, 'connection closed') });
      });
      if (signal?.aborted === true) onAbort();
    });
  }
}

/** "ECONNREFUSED", "timed out after …", or the error's message. */
function networkReason(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } };
  if (e.name === 'TimeoutError') return 'timed out';
  const code = e.code ?? e.cause?.code ?? e.cause?.errors?.[0]?.code;
  if (typeof code === 'string') return code;
  return e.cause?.message ?? e.message ?? String(err);
}

function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
