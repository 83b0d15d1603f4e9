import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { startApiServer } from '../../../src/controller/api/api-server.ts';
import { MemoryTokenStore, createApiToken } from '../../../src/controller/api/token-store.ts';
import { MemoryControllerModel } from '../../../src/controller/memory-controller-model.ts';
import type { StreamMessage } from '../../../src/controller/api/event-stream.ts';
import { startFixtureServer } from './api-fixture.ts';
import type { FixtureServer } from './api-fixture.ts';

/** A stream client that records every message, with a bounded wait for a condition. */
class StreamClient {
  readonly messages: StreamMessage[] = [];
  readonly ws: WebSocket;
  closeCode: number | undefined;
  #waiters = new Set<() => void>();

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    this.ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as StreamMessage);
      this.#wake();
    });
    this.ws.on('close', (code) => {
      this.closeCode = code;
      this.#wake();
    });
    this.ws.on('error', () => this.#wake());
  }

  events(): Array<Extract<StreamMessage, { kind: 'event' }>['event']> {
    return this.messages.flatMap((m) => (m.kind === 'event' ? [m.event] : []));
  }

  hello(): Extract<StreamMessage, { kind: 'hello' }> | undefined {
    const m = this.messages[0];
    return m?.kind === 'hello' ? m : undefined;
  }

  async until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.add(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  #wake(): void {
    const w = [...this.#waiters];
    this.#waiters.clear();
    for (const f of w) f();
  }
}

/** The HTTP status of a refused upgrade. */
function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    ws.on('open', () => {
      ws.close();
      reject(new Error('upgrade was accepted'));
    });
    ws.on('error', () => {});
  });
}

describe('operator API event stream (WebSocket)', () => {
  let f: FixtureServer;
  let wsUrl: string;
  const clients: StreamClient[] = [];
  const open = (query: string, headers: Record<string, string> = {}): StreamClient => {
    const c = new StreamClient(`${wsUrl}/api/v1/events${query}`, headers);
    clients.push(c);
    return c;
  };

  before(async () => {
    f = await startFixtureServer();
    wsUrl = f.server.url.replace(/^http/, 'ws');
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await f.server.close();
  });

  it('authenticates by bearer header, says hello with the latest seq, then streams live events', async () => {
    const c = open('', { authorization: `Bearer ${f.token}` });
    await c.until('hello', () => c.hello() !== undefined);
    const hello = c.hello()!;
    assert.equal(hello.latestSeq, f.model.latestSeq());
    assert.equal(hello.since, hello.latestSeq);
    assert.equal(hello.gap, false);
    assert.equal(c.events().length, 0, 'no replay without since');
    await f.model.addFastPathLink('aws-2', 'gcp-2', 'ws test', 'operator:test');
    await c.until('link-changed', () => c.events().some((e) => e.type === 'link-changed'));
    const ev = c.events().find((e) => e.type === 'link-changed')!;
    assert.equal(ev.type === 'link-changed' && ev.payload.link.b, 'gcp-2');
    await f.model.removeFastPathLink('aws-2', 'gcp-2', 'operator:test');
  });

  it('authenticates by ?token= and replays every event after ?since= in order, then live ones', async () => {
    const since = 3;
    const c = open(`?since=${since}&token=${encodeURIComponent(f.token)}`);
    const latest = f.model.latestSeq();
    await c.until('replay', () => c.events().length >= latest - since);
    assert.deepEqual(
      c.events().map((e) => e.seq),
      Array.from({ length: latest - since }, (_, i) => since + 1 + i),
    );
    f.model.putVm({ mac: '02:00:00:00:00:09', ip: null, host: 'hub', state: 'running', name: 'vm9' });
    await c.until('live event', () => c.events().some((e) => e.seq === latest + 1));
    assert.equal(c.events().at(-1)!.type, 'vm-changed');
  });

  it('refuses the upgrade with 401 for a missing or wrong token, 400 for a bad since, 404 for another path', async () => {
    const none = await refusedStatus(`${wsUrl}/api/v1/events`);
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.body).error.code, 'VNET_ERR_API_UNAUTHORIZED');
    assert.equal((await refusedStatus(`${wsUrl}/api/v1/events?token=vnet_wrong`)).status, 401);
    assert.equal((await refusedStatus(`${wsUrl}/api/v1/events`, { authorization: 'Bearer vnet_wrong' })).status, 401);
    assert.equal((await refusedStatus(`${wsUrl}/api/v1/events?since=abc&token=${f.token}`)).status, 400);
    assert.equal((await refusedStatus(`${wsUrl}/api/v1/other?token=${f.token}`)).status, 404);
  });

  it('counts stream clients and sent events in /metrics', async () => {
    const res = await fetch(`${f.server.url}/metrics`);
    const text = await res.text();
    assert.match(text, /vnet_api_ws_clients [1-9]/);
    assert.match(text, /vnet_api_ws_events_sent_total [1-9]/);
    assert.match(text, /vnet_api_auth_failures_total\{transport="ws"\} [1-9]/);
  });
});

describe('event stream edge cases', () => {
  async function server(model: MemoryControllerModel, init: { maxBufferedBytes?: number } = {}) {
    const tokens = new MemoryTokenStore();
    const { token } = createApiToken(tokens, 'admin', 0);
    const s = await startApiServer({ logger: silentLogger(), model, tokens, registry: new Registry() }, { host: '127.0.0.1', port: 0, eventStream: init });
    return { s, token, ws: s.url.replace(/^http/, 'ws') };
  }

  it('flags a gap when the events after since are no longer retained', async () => {
    const model = new MemoryControllerModel({ maxEvents: 5 });
    for (let i = 0; i < 20; i++) model.emit('rules-changed', { host: 'h', version: i });
    const { s, token, ws } = await server(model);
    const c = new StreamClient(`${ws}/api/v1/events?since=2&token=${token}`);
    try {
      await c.until('replay', () => c.events().length === 5);
      assert.deepEqual(c.hello(), { kind: 'hello', since: 2, latestSeq: 20, oldestSeq: 16, gap: true });
      assert.deepEqual(c.events().map((e) => e.seq), [16, 17, 18, 19, 20]);
      // A client ahead of the history (the controller's state was reset) is told too.
      const ahead = new StreamClient(`${ws}/api/v1/events?since=500&token=${token}`);
      await ahead.until('hello', () => ahead.hello() !== undefined);
      assert.equal(ahead.hello()!.gap, true);
      ahead.ws.terminate();
    } finally {
      c.ws.terminate();
      await s.close();
    }
  });

  it('closes a client that does not read (1013) instead of buffering without bound', async () => {
    const model = new MemoryControllerModel({ maxEvents: 10 });
    const { s, token, ws } = await server(model, { maxBufferedBytes: 64 * 1024 });
    const c = new StreamClient(`${ws}/api/v1/events?token=${token}`);
    try {
      await c.until('hello', () => c.hello() !== undefined);
      // Stop reading: the kernel buffers fill, then the server's queue.
      (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
      const big = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 2000; i++) model.emit('operator-action', { actor: 't', action: 'fill', detail: { big } });
      (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await c.until('close', () => c.closeCode !== undefined, 10_000);
      assert.equal(c.closeCode, 1013);
      assert.ok(c.events().length < 2000);
    } finally {
      c.ws.terminate();
      await s.close();
    }
  });

  it('closes open streams with 1001 when the server closes', async () => {
    const { s, token, ws } = await server(new MemoryControllerModel());
    const c = new StreamClient(`${ws}/api/v1/events?token=${token}`);
    await c.until('hello', () => c.hello() !== undefined);
    await s.close();
    await c.until('close', () => c.closeCode !== undefined);
    assert.equal(c.closeCode, 1001);
  });
});
