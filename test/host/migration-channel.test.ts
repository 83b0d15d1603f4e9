/**
 * The migration channel on loopback (port 0) with the test PKI: who may
 * connect for which migration, the hello line in any chunking, and the
 * bounds (handshake deadline, pending connections).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { encodeChannelHello, LineReader, parseChannelHello, parseChannelReply } from '../../src/host/channel-hello.ts';
import { ChannelHelloError } from '../../src/host/errors.ts';
import { DEFAULT_MAX_PENDING, dialMigrationChannels, MigrationChannelListener, type MigrationChannelInit } from '../../src/host/migration-channel.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';
import { flood, openFds } from '../helpers/connection-flood.ts';

const logger = silentLogger();
const clock = realClock;

async function listener(t: { after(fn: () => Promise<void>): void }, extra: Partial<MigrationChannelInit> = {}): Promise<MigrationChannelListener> {
  const pki = testPki();
  const l = await MigrationChannelListener.listen({ logger, clock }, { ...pki.host('hB'), ca: pki.ca, host: '127.0.0.1', port: 0, ...extra });
  t.after(() => l.close());
  return l;
}

function dial(l: MigrationChannelListener, from: string, id: string, opts: { count?: number; to?: string; rogue?: boolean } = {}): ReturnType<typeof dialMigrationChannels> {
  const pki = testPki();
  const creds = opts.rogue === true ? { ...pki.rogueHost(from), ca: pki.ca } : { ...pki.host(from), ca: pki.ca };
  return dialMigrationChannels({ ...creds, host: l.address.host, port: l.address.port, id, to: opts.to ?? 'hB', count: opts.count ?? 1, clock, timeoutMs: 5000 });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((r) => { if (s.destroyed) r(); else s.once('close', () => r()); });
}

function readAll(s: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let n = 0;
    s.on('data', (c: Buffer) => { parts.push(c); n += c.length; if (n >= bytes) resolve(Buffer.concat(parts)); });
    s.resume();
  });
}

test('the hello line: any chunking, limits, typed errors', () => {
  const bytes = Buffer.concat([encodeChannelHello({ id: 'mig-1', index: 1, count: 2 }), Buffer.from([0xde, 0xad])]);
  for (let split = 1; split < bytes.length; split++) {
    const r = new LineReader();
    let out = r.push(bytes.subarray(0, split));
    if (out.state === 'more') out = r.push(bytes.subarray(split));
    assert.equal(out.state, 'line', `split at ${split}`);
    if (out.state !== 'line') continue;
    assert.deepEqual(parseChannelHello(out.line), { id: 'mig-1', index: 1, count: 2 });
    // What followed the line: the rest of the chunk that ended it, then any chunk not yet pushed.
    const lineEnd = bytes.length - 2;
    const after = Buffer.concat([out.rest, split >= lineEnd ? bytes.subarray(split) : Buffer.alloc(0)]);
    assert.deepEqual([...after], [0xde, 0xad]);
  }
  const byByte = new LineReader();
  let last;
  for (const b of encodeChannelHello({ id: 'x', index: 0, count: 1 })) last = byByte.push(Buffer.from([b]));
  assert.equal(last?.state, 'line');
  const long = new LineReader({ maxBytes: 16 }).push(Buffer.alloc(17, 0x41));
  assert.ok(long.state === 'error' && long.error instanceof ChannelHelloError);
  const binary = new LineReader().push(Buffer.from([0x41, 0x00, 0x0a]));
  assert.ok(binary.state === 'error' && binary.error.code === 'VNET_ERR_HOST_CHANNEL_HELLO');
  for (const bad of ['', 'vnet-migrate/1', 'vnet-migrate/1 id 0', 'vnet-migrate/2 id 0 1', 'vnet-migrate/1 id 1 1', 'vnet-migrate/1 id 0 3', 'vnet-migrate/1 -id 0 1', 'vnet-migrate/1 id 0 1 x']) {
    assert.ok(parseChannelHello(bad) instanceof ChannelHelloError, bad);
  }
  assert.deepEqual(parseChannelReply('ok'), { ok: true });
  assert.deepEqual(parseChannelReply('no VNET_ERR_HOST_CHANNEL_UNKNOWN_ID'), { ok: false, code: 'VNET_ERR_HOST_CHANNEL_UNKNOWN_ID' });
  assert.ok(parseChannelReply('no way') instanceof ChannelHelloError);
});

test('the host prepare named is accepted; its sockets carry bytes both ways', async (t) => {
  const l = await listener(t);
  const e = l.expect('m1', 'hA');
  const r = await dial(l, 'hA', 'm1');
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const got = await e.result;
  assert.ok(got.ok);
  assert.equal(got.sockets.length, 1);
  const [src] = r.sockets;
  const [dst] = got.sockets;
  const there = readAll(dst!, 5);
  src!.write('hello');
  assert.equal((await there).toString(), 'hello');
  const back = readAll(src!, 3);
  dst!.write('ack');
  assert.equal((await back).toString(), 'ack');
  assert.equal(l.stats.accepted, 1);
  assert.equal(l.expecting, 0, 'the id is no longer expected once its channels are in');
  for (const s of [...r.sockets, ...got.sockets]) s.destroy();
});

test('on IPv6: a listener on ::1 advertises ::1 (or its advertise address); channels dialled there carry bytes', async (t) => {
  const l = await listener(t, { host: '::1' });
  assert.equal(l.address.host, '::1');
  const e = l.expect('m6', 'hA');
  const r = await dial(l, 'hA', 'm6', { count: 2 });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const got = await e.result;
  assert.ok(got.ok && got.sockets.length === 2);
  const there = readAll(got.sockets[1]!, 2);
  r.sockets[1]!.write('v6');
  assert.equal((await there).toString(), 'v6');
  for (const s of [...r.sockets, ...got.sockets]) s.destroy();
  const advertised = await listener(t, { host: '::', advertise: 'fd00:9::2' });
  assert.deepEqual(advertised.address, { host: 'fd00:9::2', port: advertised.address.port });
});

test('two channels (time-bound) are routed to their migration in index order', async (t) => {
  const l = await listener(t);
  const e = l.expect('m2', 'hA');
  const r = await dial(l, 'hA', 'm2', { count: 2 });
  assert.ok(r.ok);
  const got = await e.result;
  assert.ok(got.ok);
  assert.equal(got.sockets.length, 2);
  const firsts = [readAll(got.sockets[0]!, 1), readAll(got.sockets[1]!, 1)];
  r.sockets[0]!.write('0');
  r.sockets[1]!.write('1');
  assert.deepEqual((await Promise.all(firsts)).map(String), ['0', '1']);
  for (const s of [...r.sockets, ...got.sockets]) s.destroy();
});

test('another host of the deployment is refused for a migration prepared for hA', async (t) => {
  const l = await listener(t);
  const e = l.expect('m3', 'hA');
  const r = await dial(l, 'hC', 'm3');
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'VNET_ERR_HOST_CHANNEL_REFUSED');
  assert.match(r.error.message, /VNET_ERR_HOST_CHANNEL_IDENTITY/);
  assert.equal(l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_IDENTITY'], 1);
  // The right host still gets in afterwards.
  const ok = await dial(l, 'hA', 'm3');
  assert.ok(ok.ok);
  assert.ok((await e.result).ok);
  for (const s of ok.sockets) s.destroy();
});

test('a certificate from another CA fails the TLS handshake', async (t) => {
  const l = await listener(t);
  l.expect('m4', 'hA');
  const r = await dial(l, 'hA', 'm4', { rogue: true });
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'VNET_ERR_HOST_CHANNEL_CONNECT');
  await waitFor(() => l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_TLS'] === 1, 'the TLS refusal counted');
});

test('an id nobody prepared is refused', async (t) => {
  const l = await listener(t);
  const r = await dial(l, 'hA', 'never-prepared');
  assert.ok(!r.ok);
  assert.match(r.error.message, /VNET_ERR_HOST_CHANNEL_UNKNOWN_ID/);
  assert.equal(l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_UNKNOWN_ID'], 1);
});

test('the source refuses a destination whose certificate is not the host it migrates to', async (t) => {
  const l = await listener(t);
  l.expect('m5', 'hA');
  const r = await dial(l, 'hA', 'm5', { to: 'hZ' });
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'VNET_ERR_HOST_CHANNEL_IDENTITY');
});

test('a bad hello is answered with its code and closed; the listener lives on', async (t) => {
  const pki = testPki();
  const l = await listener(t);
  const s = tls.connect({ host: '127.0.0.1', port: l.address.port, ...pki.host('hA'), ca: pki.ca, checkServerIdentity: () => undefined });
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('secureConnect', () => r()));
  const reply = readAll(s, 3);
  s.write('GET / HTTP/1.1\r\n\r\n');
  assert.match((await reply).toString(), /^no VNET_ERR_HOST_CHANNEL_HELLO\n/);
  await closed(s);
  const long = tls.connect({ host: '127.0.0.1', port: l.address.port, ...pki.host('hA'), ca: pki.ca, checkServerIdentity: () => undefined });
  long.on('error', () => undefined);
  await new Promise<void>((r) => long.once('secureConnect', () => r()));
  long.resume();
  long.write(Buffer.alloc(4096, 0x41));
  await closed(long);
  assert.equal(l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_HELLO'], 2);
  l.expect('m6', 'hA');
  const ok = await dial(l, 'hA', 'm6');
  assert.ok(ok.ok);
  for (const x of ok.sockets) x.destroy();
});

test('a stalled handshake is cut at the deadline: silent TCP, and TLS without a hello', async (t) => {
  const pki = testPki();
  const l = await listener(t, { handshakeTimeoutMs: 200 });
  const raw = net.connect(l.address.port, '127.0.0.1');
  raw.on('error', () => undefined);
  const quiet = tls.connect({ host: '127.0.0.1', port: l.address.port, ...pki.host('hA'), ca: pki.ca, checkServerIdentity: () => undefined });
  quiet.on('error', () => undefined);
  await Promise.all([closed(raw), closed(quiet)]);
  await waitFor(() => l.pending === 0, 'nothing pending');
  assert.equal(l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_TIMEOUT'], 2, JSON.stringify(l.stats));
  assert.equal(l.stats.accepted, 0);
});

test('over the pending caps a newcomer evicts a pending connection (its address\'s oldest, else a random one), counted', async (t) => {
  const l = await listener(t, { maxPending: 2, maxPendingPerSource: 8, handshakeTimeoutMs: 30_000 });
  const first = [net.connect(l.address.port, '127.0.0.1'), net.connect(l.address.port, '127.0.0.1')];
  for (const s of first) s.on('error', () => undefined);
  await waitFor(() => l.pending === 2, 'two pending');
  const third = net.connect(l.address.port, '127.0.0.1');
  third.on('error', () => undefined);
  // One of the first two makes room; the newcomer stays.
  await Promise.race(first.map(closed));
  assert.equal(l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_BUSY'], 1);
  assert.equal(l.pending, 2);
  assert.ok(!third.destroyed);
  for (const s of [...first, third]) s.destroy();
  await waitFor(() => l.pending === 0, 'all gone');
});

test('a thousand idle connections cannot keep a source out: it dials through the flood, the rest are cut at the deadline and the fds return to their baseline', async (t) => {
  const l = await listener(t, { handshakeTimeoutMs: 1000 });
  const baseline = openFds();
  // From the source's own address and from 40 others: far over both caps.
  const same = await flood(l.address.port, 200, 200, { first: 1 });
  const others = await flood(l.address.port, 800, 20, { first: 2 });
  assert.ok(l.pending <= DEFAULT_MAX_PENDING);
  const e = l.expect('m1', 'hA');
  const r = await dial(l, 'hA', 'm1');
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.ok((await e.result).ok);
  await waitFor(() => same.closed() + others.closed() === 1000, 'every idle connection cut', 30_000);
  assert.equal((l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_BUSY'] ?? 0) + (l.stats.refusedByCode['VNET_ERR_HOST_CHANNEL_TIMEOUT'] ?? 0), 1000);
  same.destroy();
  others.destroy();
  for (const s of r.sockets) s.destroy();
  await waitFor(() => openFds() <= baseline, `fds back to the baseline (${baseline})`);
});

test('cancelling an expectation, or closing the listener, settles it with a typed error', async (t) => {
  const l = await listener(t);
  const a = l.expect('m7', 'hA');
  const b = l.expect('m8', 'hA');
  assert.throws(() => l.expect('m7', 'hA'), { code: 'VNET_ERR_HOST_CHANNEL_CONFLICT' });
  a.cancel('aborted');
  const ra = await a.result;
  assert.ok(!ra.ok && ra.error.code === 'VNET_ERR_HOST_CHANNEL_CLOSED');
  const late = await dial(l, 'hA', 'm7');
  assert.ok(!late.ok, 'a cancelled id is unknown');
  await l.close();
  const rb = await b.result;
  assert.ok(!rb.ok && rb.error.code === 'VNET_ERR_HOST_CHANNEL_CLOSED');
});
