import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDelayRelay, type DelayRelay, type DelayRelayInit } from '../../src/common/delay-relay.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

interface Cleanup {
  after(fn: () => Promise<void> | void): void;
}

async function listen(t: Cleanup, onSocket: (s: Socket) => void): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => shut(server, sockets));
  const a = server.address();
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0, sockets };
}

async function shut(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  if (server.listening) await new Promise<void>((r) => server.close(() => r()));
}

async function relayTo(t: Cleanup, port: number, init: Partial<DelayRelayInit>): Promise<DelayRelay> {
  const relay = await startDelayRelay({ logger }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port }, delayMs: 0, ...init });
  t.after(() => relay.close());
  return relay;
}

async function dial(t: Cleanup, port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  t.after(() => void s.destroy());
  s.setNoDelay(true);
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/** Read until the socket ends; resolves with the SHA-256 and byte count of what arrived. */
function drain(s: Socket): Promise<{ hash: string; bytes: number; firstAt: number; lastAt: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  let firstAt = 0;
  let lastAt = 0;
  s.on('data', (c: Buffer) => {
    if (bytes === 0) firstAt = performance.now();
    lastAt = performance.now();
    bytes += c.length;
    h.update(c);
  });
  return once(s, 'end').then(() => ({ hash: h.digest('hex'), bytes, firstAt, lastAt }));
}

/** Resolves when the socket closes, whatever the reason (events.once would reject on 'error'). */
const closeOf = (s: Socket): Promise<void> => new Promise((resolve) => s.once('close', () => resolve()));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('delay relay', () => {
  it('adds the delay each way: no round trip shorter than 2 × delay, the best within 15 ms of it, for 10 ms and 2 ms', async (t) => {
    const echo = await listen(t, (s) => s.pipe(s));
    for (const delayMs of [10, 2]) {
      const relay = await relayTo(t, echo.port, { delayMs });
      const c = await dial(t, relay.port);
      const rtts: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        c.write(Buffer.from(`ping ${i}\n`));
        await once(c, 'data');
        rtts.push(performance.now() - t0);
      }
      c.destroy();
      await relay.close();
      assert.ok(Math.min(...rtts) >= 2 * delayMs, `delay ${delayMs}: a round trip of ${Math.min(...rtts).toFixed(2)} ms is shorter than 2 × delay`);
      // Load on the machine can only lengthen a round trip; the best of 15 shows what the relay itself adds.
      assert.ok(Math.min(...rtts) < 2 * delayMs + 15, `delay ${delayMs}: best round trip ${Math.min(...rtts).toFixed(2)} ms (median ${median(rtts).toFixed(2)})`);
    }
    await shut(echo.server, echo.sockets);
  });

  it('carries 8 MiB both ways whole and in order (SHA-256), with the half-close passed on', async (t) => {
    const echo = await listen(t, (s) => s.pipe(s));
    const relay = await relayTo(t, echo.port, { delayMs: 5 });
    const c = await dial(t, relay.port);
    const data = randomBytes(8 * 1024 * 1024);
    const got = drain(c);
    for (let off = 0; off < data.length; off += 100_000) c.write(data.subarray(off, off + 100_000));
    c.end();
    const r = await got;
    assert.equal(r.bytes, data.length);
    assert.equal(r.hash, sha(data));
    assert.equal(relay.stats.bytesUp, data.length);
    assert.equal(relay.stats.bytesDown, data.length);
    await relay.close();
    await shut(echo.server, echo.sockets);
  });

  it('keeps to the bandwidth cap (never above it, at least 85 % of it)', async (t) => {
    let result: Promise<{ bytes: number; firstAt: number; lastAt: number; hash: string }> | undefined;
    const sink = await listen(t, (s) => {
      result = drain(s);
    });
    const mbit = 40;
    const relay = await relayTo(t, sink.port, { delayMs: 2, bandwidthMbit: mbit });
    const c = await dial(t, relay.port);
    const data = randomBytes(4 * 1024 * 1024);
    const t0 = performance.now();
    c.end(data);
    await waitFor(() => result, 'the sink connection');
    const r = await result!;
    assert.equal(r.hash, sha(data));
    // From the first byte sent to the last received: the relay cannot beat the cap (but for the first read, ≤ 64 KiB,
    // which passes at once: at most 1.6 % on 4 MiB); a loaded machine can only make it slower.
    const rate = (r.bytes * 8) / ((r.lastAt - t0) / 1000) / 1e6;
    assert.ok(rate <= mbit * 1.02 && rate >= mbit * 0.85, `measured ${rate.toFixed(2)} Mbit/s under a ${mbit} Mbit/s cap`);
    c.destroy();
    await relay.close();
    await shut(sink.server, sink.sockets);
  });

  it('bounds its queue: a fast sender to a stalled receiver is paused, the queue never exceeds the bound, nothing is lost', async (t) => {
    let target: Socket | undefined;
    const sink = await listen(t, (s) => {
      s.pause();
      target = s;
    });
    const bound = 256 * 1024;
    const relay = await relayTo(t, sink.port, { delayMs: 20, maxQueuedBytes: bound });
    const c = await dial(t, relay.port);
    const data = randomBytes(24 * 1024 * 1024);
    c.end(data);
    await waitFor(() => relay.stats.pauses > 0, 'the relay pausing its source', 20_000);
    // The sender's bytes wait in its own buffers (TCP pushes back), not in the relay.
    assert.ok(c.writableLength > 0, 'the sender is not held back');
    assert.ok(relay.stats.maxQueuedBytes <= bound, `queue reached ${relay.stats.maxQueuedBytes} bytes`);
    const got = drain(target!);
    target!.resume();
    const r = await got;
    assert.equal(r.hash, sha(data));
    assert.ok(relay.stats.maxQueuedBytes <= bound, `queue reached ${relay.stats.maxQueuedBytes} bytes`);
    c.destroy();
    await relay.close();
    await shut(sink.server, sink.sockets);
  });

  it('passes a reset on at once and closes the other side', async (t) => {
    const targets: Socket[] = [];
    const sink = await listen(t, (s) => targets.push(s));
    // A delay far longer than the wait below: a reset that queued behind it would never arrive in time.
    const relay = await relayTo(t, sink.port, { delayMs: 60_000 });
    const c = await dial(t, relay.port);
    await waitFor(() => targets[0], 'the target connection');
    const closed = closeOf(targets[0]!);
    let targetError: NodeJS.ErrnoException | undefined;
    targets[0]!.on('error', (e) => {
      targetError = e;
    });
    c.resetAndDestroy();
    let isClosed = false;
    void closed.then(() => { isClosed = true; });
    await waitFor(() => isClosed, 'the reset to reach the target (it must not wait for the 60 s delay)', 15_000);
    assert.equal(targetError?.code, 'ECONNRESET');
    await waitFor(() => relay.stats.active === 0, 'the relay to forget the connection');
    await relay.close();
    await shut(sink.server, sink.sockets);
  });

  it('closes the client when the target cannot be reached', async (t) => {
    const spare = await listen(t, () => {});
    const port = spare.port;
    await shut(spare.server, spare.sockets);
    const relay = await relayTo(t, port, { delayMs: 1 });
    const c = connect({ host: '127.0.0.1', port: relay.port });
    let err: NodeJS.ErrnoException | undefined;
    c.on('error', (e) => {
      err = e;
    });
    await closeOf(c);
    assert.equal(err?.code, 'ECONNRESET');
    assert.equal(relay.stats.connectFailures, 1);
    await relay.close();
  });

  it('tears every connection down on close, and accepts no more', async (t) => {
    const targets: Socket[] = [];
    const sink = await listen(t, (s) => targets.push(s));
    const relay = await relayTo(t, sink.port, { delayMs: 5 });
    const clients = await Promise.all([dial(t, relay.port), dial(t, relay.port), dial(t, relay.port)]);
    await waitFor(() => targets.length === 3, 'three target connections');
    const closes = [...clients, ...targets].map(closeOf);
    await relay.close();
    await Promise.all(closes);
    assert.equal(relay.stats.active, 0);
    const refused = connect({ host: '127.0.0.1', port: relay.port });
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    await shut(sink.server, sink.sockets);
  });

  it('closes when its signal aborts, and refuses bad parameters', async (t) => {
    const ac = new AbortController();
    const relay = await startDelayRelay({ logger }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: 9 }, delayMs: 1, signal: ac.signal });
    ac.abort();
    await waitFor(async () => {
      const s = connect({ host: '127.0.0.1', port: relay.port });
      const r = await Promise.race([once(s, 'error').then(() => true), once(s, 'connect').then(() => false)]);
      s.destroy();
      return r;
    }, 'the relay to stop listening');
    const base = { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: 9 } };
    await assert.rejects(startDelayRelay({ logger }, { ...base, delayMs: -1 }), { code: 'VNET_ERR_CONFIG' });
    await assert.rejects(startDelayRelay({ logger }, { ...base, delayMs: 1, bandwidthMbit: 0 }), { code: 'VNET_ERR_CONFIG' });
    await assert.rejects(startDelayRelay({ logger }, { ...base, delayMs: 1, maxQueuedBytes: 1000 }), { code: 'VNET_ERR_CONFIG' });
  });

  it('runs as `vnet relay` until SIGTERM, then reports what it carried', async (t) => {
    const echo = await listen(t, (s) => s.pipe(s));
    const child = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));
    const p = spawn(process.execPath, [child, 'relay', '--listen', '127.0.0.1:0', '--target', `127.0.0.1:${echo.port}`, '--delay', '5ms'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, VNET_LOG_LEVEL: 'silent' },
    });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
    try {
      const port = Number((await waitFor(() => /vnet relay: 127\.0\.0\.1:(\d+) → /.exec(stderr), 'the relay to listen', 20_000))[1]);
      const c = await dial(t, port);
      const t0 = performance.now();
      c.write('ping');
      await once(c, 'data');
      assert.ok(performance.now() - t0 >= 10, 'round trip under 2 × 5 ms');
      c.destroy();
      p.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /vnet relay: 1 connections, 4 bytes up, 4 bytes down, 0 target failures/);
    } finally {
      p.kill('SIGKILL');
      await shut(echo.server, echo.sockets);
    }
  });
});
