import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { ControllerClient } from '../../src/cli/ctl-client.ts';
import type { EventView } from '../../src/controller/api-events.ts';

/** A stand-in controller event stream: scripted per connection, recording the URLs asked for. */
async function scriptedStream(script: Array<(send: (m: unknown) => void, close: () => void) => void>) {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  const urls: string[] = [];
  wss.on('connection', (ws, req) => {
    urls.push(req.url ?? '');
    const step = script[urls.length - 1];
    if (step === undefined) return;
    step((m) => ws.send(JSON.stringify(m)), () => ws.close(1001, 'bye'));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    urls,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

const ev = (seq: number): EventView => ({ seq, time: 0, type: 'rules-changed', payload: { host: 'h', version: seq } });

describe('ControllerClient.followEvents', () => {
  it('reconnects when the stream drops, resuming after the last seq it saw', async () => {
    const s = await scriptedStream([
      (send, close) => {
        send({ kind: 'hello', since: 5, latestSeq: 7, oldestSeq: 1, gap: false });
        send({ kind: 'event', event: ev(6) });
        send({ kind: 'event', event: ev(7) });
        close();
      },
      (send) => {
        send({ kind: 'hello', since: 7, latestSeq: 8, oldestSeq: 1, gap: false });
        send({ kind: 'event', event: ev(8) });
      },
    ]);
    const ac = new AbortController();
    const seen: number[] = [];
    const notices: string[] = [];
    try {
      await new ControllerClient({ baseUrl: s.url, token: 't' }).followEvents(
        5,
        (e) => {
          seen.push(e.seq);
          if (e.seq === 8) ac.abort();
        },
        { signal: ac.signal, onNotice: (t) => notices.push(t), maxReconnectDelayMs: 50 },
      );
    } finally {
      await s.close();
    }
    assert.deepEqual(seen, [6, 7, 8]);
    assert.deepEqual(s.urls, ['/api/v1/events?since=5', '/api/v1/events?since=7']);
    assert.match(notices[0]!, /reconnecting from seq 7/);
  });

  it('continues from the controller numbering when its history restarted', async () => {
    const s = await scriptedStream([
      (send, close) => {
        send({ kind: 'hello', since: 500, latestSeq: 3, oldestSeq: 1, gap: true });
        close();
      },
      (send) => {
        send({ kind: 'hello', since: 3, latestSeq: 4, oldestSeq: 1, gap: false });
        send({ kind: 'event', event: ev(4) });
      },
    ]);
    const ac = new AbortController();
    const notices: string[] = [];
    try {
      await new ControllerClient({ baseUrl: s.url, token: 't' }).followEvents(500, () => ac.abort(), {
        signal: ac.signal,
        onNotice: (t) => notices.push(t),
        maxReconnectDelayMs: 50,
      });
    } finally {
      await s.close();
    }
    assert.deepEqual(s.urls, ['/api/v1/events?since=500', '/api/v1/events?since=3']);
    assert.match(notices[0]!, /history restarted/);
  });
});
