import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { encodeFrame, FrameDecoder } from '../../src/dataplane/frame-codec.ts';
import { encodeEcho, encodeGoodbye, encodeKeepalive } from '../../src/dataplane/wire-messages.ts';
import type { Frame } from '../../src/common/frame.ts';
import { openLink } from '../../src/dataplane/link.ts';
import type { Link, OpenLinkInit } from '../../src/dataplane/link-interface.ts';
import { certificateNames } from '../../src/dataplane/link-handshake.ts';
import { MemoryDuplex } from '../../src/dataplane/memory-transport.ts';
import { numberedFrame, RawPeer, frameSeq, withDeadline } from './raw-peer.ts';
import { waitFor } from '../helpers/wait.ts';
import { capturingLogger } from '../helpers/log-capture.ts';

const logger = silentLogger();

/** Two links joined by an in-memory pair: a dials b. */
async function linkedPair(extra: Partial<OpenLinkInit> = {}): Promise<[Link, Link]> {
  const [sa, sb] = MemoryDuplex.pair();
  return Promise.all([
    openLink({ socket: sa, localHost: 'a', kind: 'backbone', logger, ...extra }),
    openLink({ socket: sb, localHost: 'b', role: 'listener', logger, ...extra }),
  ]);
}

/** A link (listener side) whose peer is a RawPeer that has completed the handshake. */
async function linkWithRawDialer(extra: Partial<OpenLinkInit> = {}): Promise<{ link: Link; raw: RawPeer }> {
  const [sa, sb] = MemoryDuplex.pair();
  const raw = new RawPeer(sa);
  raw.sendHello('raw');
  const link = await openLink({ socket: sb, localHost: 'b', role: 'listener', logger, ...extra });
  await waitFor(() => raw.hello() !== undefined, "the link's hello");
  return { link, raw };
}

function closeErr(link: Link): Promise<Error | undefined> {
  return withDeadline(new Promise((resolve) => link.onClose(resolve)), 10_000, `link ${link.id} to close`);
}

describe('link: handshake', () => {
  it('opens both ends: each knows its peer, the listener adopts the dialer\'s kind', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const [a, b] = await Promise.all([
      openLink({ socket: sa, localHost: 'a', kind: 'fast-path', expectedPeer: 'b', logger }),
      openLink({ socket: sb, localHost: 'b', role: 'listener', logger }),
    ]);
    assert.equal(a.peerHost, 'b');
    assert.equal(b.peerHost, 'a');
    assert.equal(a.kind, 'fast-path');
    assert.equal(b.kind, 'fast-path');
    assert.equal(a.role, 'dialer');
    assert.equal(b.role, 'listener');
    assert.notEqual(a.id, b.id);
    assert.match(a.id, /^fast-path:b#\d+$/);
    await a.close();
  });

  it('refuses a peer that is not the expected host, and tells it why', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sa);
    raw.sendHello('mallory');
    await assert.rejects(openLink({ socket: sb, localHost: 'b', role: 'listener', expectedPeer: 'a', logger }), {
      code: 'VNET_ERR_HANDSHAKE',
      message: /expected host a, peer says it is mallory/,
    });
    await waitFor(() => raw.goodbye() !== undefined, 'goodbye');
    assert.deepEqual(raw.goodbye(), { type: 'goodbye', code: 'refused', reason: 'expected host a, peer says it is mallory' });
    assert.equal(raw.hello(), undefined, 'a refused dialer never learns who the listener is');
  });

  it('refuses a dialer speaking another protocol version with ProtocolVersionError and a goodbye naming it', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sa);
    raw.sendHello('a', 'backbone', 'dialer', 3);
    await assert.rejects(openLink({ socket: sb, localHost: 'b', role: 'listener', logger }), { code: 'VNET_ERR_PROTOCOL_VERSION', version: 3 });
    await waitFor(() => raw.goodbye() !== undefined, 'goodbye');
    assert.deepEqual(raw.goodbye(), { type: 'goodbye', code: 'version', reason: 'this host speaks protocol version 2, not 3' });
  });

  it('refuses a listener answering with another protocol version', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sb);
    const opening = openLink({ socket: sa, localHost: 'a', kind: 'backbone', logger });
    raw.sendHello('b', 'backbone', 'listener', 7);
    await assert.rejects(opening, { code: 'VNET_ERR_PROTOCOL_VERSION', version: 7 });
  });

  it('reports a refusal from the peer as a HandshakeError carrying its goodbye', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sb);
    const opening = openLink({ socket: sa, localHost: 'a', kind: 'backbone', logger });
    raw.write(encodeGoodbye('refused', 'not today'));
    await assert.rejects(opening, (err: Error & { code: string; cause: { code: string; reason: string } }) => {
      assert.equal(err.code, 'VNET_ERR_HANDSHAKE');
      assert.equal(err.cause.code, 'VNET_ERR_PEER_GOODBYE');
      assert.equal(err.cause.reason, 'not today');
      return true;
    });
  });

  it('refuses bytes that are not vnet (no magic) during the handshake', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sa);
    raw.write(Buffer.from('0100000a48545450010101026831', 'hex'));
    await assert.rejects(openLink({ socket: sb, localHost: 'b', role: 'listener', logger }), (err: Error & { code: string; cause: { code: string } }) => {
      assert.equal(err.code, 'VNET_ERR_HANDSHAKE');
      assert.equal(err.cause.code, 'VNET_ERR_BAD_MAGIC');
      return true;
    });
  });

  it('refuses a peer that sends frames or keepalives before its hello', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sa);
    raw.write(encodeKeepalive());
    await assert.rejects(openLink({ socket: sb, localHost: 'b', role: 'listener', logger }), { code: 'VNET_ERR_HANDSHAKE', message: /expected a hello/ });
  });

  it('gives up when no hello arrives within the handshake timeout', async () => {
    const clock = new ManualClock();
    const [, sb] = MemoryDuplex.pair();
    const opening = openLink({ socket: sb, localHost: 'b', role: 'listener', logger, clock, handshakeTimeoutMs: 300 });
    clock.advance(299);
    clock.advance(1);
    await assert.rejects(opening, { code: 'VNET_ERR_HANDSHAKE', message: /within 300 ms/ });
  });

  it('refuses to start with a local host id that is not one', async () => {
    const [sa] = MemoryDuplex.pair();
    await assert.rejects(openLink({ socket: sa, localHost: 'no spaces', kind: 'backbone', logger }), { code: 'VNET_ERR_HANDSHAKE', message: /local host id/ });
  });

  it('stops the handshake when its AbortSignal fires', async () => {
    const [sa] = MemoryDuplex.pair();
    const abort = new AbortController();
    const opening = openLink({ socket: sa, localHost: 'a', kind: 'backbone', logger, signal: abort.signal });
    abort.abort();
    await assert.rejects(opening, { code: 'VNET_ERR_ABORTED' });
    assert.equal(sa.destroyed, true);
  });
});

describe('link: frames', () => {
  it('carries frames both ways in order, counting frames and bytes', async () => {
    const [a, b] = await linkedPair();
    const atB: number[] = [];
    const atA: number[] = [];
    b.onFrames((fs) => fs.forEach((f) => atB.push(frameSeq(f))));
    a.onFrames((fs) => fs.forEach((f) => atA.push(frameSeq(f))));
    for (let i = 0; i < 100; i++) a.send({ data: numberedFrame(i), offload: undefined });
    for (let i = 0; i < 50; i++) b.send({ data: numberedFrame(1000 + i, 1500), offload: undefined });
    await waitFor(() => atB.length === 100 && atA.length === 50, 'frames');
    assert.deepEqual(atB, Array.from({ length: 100 }, (_, i) => i));
    assert.deepEqual(atA, Array.from({ length: 50 }, (_, i) => 1000 + i));
    assert.equal(a.stats.txFrames, 100);
    assert.equal(a.stats.txBytes, 6400);
    assert.equal(b.stats.rxFrames, 100);
    assert.equal(b.stats.rxBytes, 6400);
    assert.equal(a.stats.rxBytes, 75_000);
    await a.close();
  });

  it('writes a burst sent in one tick as one write (cork, then uncork on the next tick)', async () => {
    // On a manual clock: no keepalive or probe can fall due (a starved process) and add a chunk of its own.
    const { link, raw } = await linkWithRawDialer({ clock: new ManualClock() });
    const before = raw.chunks;
    for (let i = 0; i < 200; i++) link.send({ data: numberedFrame(i), offload: undefined });
    await waitFor(() => raw.frames.length === 200, 'burst');
    assert.equal(raw.chunks - before, 1);
    await link.close();
  });

  it('holds frames that arrive before onFrames is called and delivers them, in order, first', async () => {
    const { link, raw } = await linkWithRawDialer();
    const enc = (seq: number): Buffer => Buffer.concat([Buffer.from([2, 0, 0, 64]), numberedFrame(seq)]);
    raw.write(Buffer.concat([enc(1), enc(2)]));
    raw.write(enc(3));
    await waitFor(() => link.stats.rxFrames >= 2, 'first frames');
    const got: number[] = [];
    link.onFrames((fs) => fs.forEach((f) => got.push(frameSeq(f))));
    await waitFor(() => got.length === 3, 'held frames');
    assert.deepEqual(got, [1, 2, 3]);
    await link.close();
  });

  it('drops and counts frames while the socket backlog is over the high-water mark, never buffering without bound', async () => {
    const [sa, sb] = MemoryDuplex.pair();
    const raw = new RawPeer(sa);
    raw.sendHello('raw');
    const link = await openLink({ socket: sb, localHost: 'b', role: 'listener', logger, highWaterBytes: 1024 * 1024 });
    sa.pause(); // the peer stops reading
    for (let tick = 0; tick < 40; tick++) {
      for (let i = 0; i < 100; i++) link.send({ data: numberedFrame(i, 1500), offload: undefined });
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(link.stats.txDropped > 0, 'some frames dropped');
    assert.equal(link.stats.txFrames + link.stats.txDropped, 4000);
    assert.ok(sb.writableLength < 1024 * 1024 + 100 * 1600, `backlog bounded: ${sb.writableLength}`);
    sa.resume();
    await link.close();
  });

  it('never throws from send: malformed frames and frames after close are counted as dropped', async () => {
    const [a, b] = await linkedPair();
    a.send({ data: Buffer.alloc(5), offload: undefined });
    a.send({ data: Buffer.alloc(70_000), offload: undefined });
    a.send({ data: Buffer.alloc(60), offload: Buffer.alloc(3) });
    await a.close();
    a.send({ data: numberedFrame(1), offload: undefined });
    assert.equal(a.stats.txDropped, 4);
    assert.equal(a.stats.txFrames, 0);
    await waitFor(() => b.closed, 'peer closed');
  });
});

describe('link: liveness and closing', () => {
  it('sends keepalives only while idle, and the peer counts them', async () => {
    const clock = new ManualClock();
    const [a, b] = await linkedPair({ clock, keepaliveMs: 1000, deadMs: 60_000 });
    b.onFrames(() => {});
    for (let t = 0; t < 10; t++) {
      a.send({ data: numberedFrame(t), offload: undefined });
      clock.advance(250);
    }
    assert.equal(a.stats.keepalivesSent, 0, 'busy: no keepalives');
    clock.advance(1600);
    assert.equal(a.stats.keepalivesSent, 1);
    clock.advance(1000);
    assert.equal(a.stats.keepalivesSent, 2);
    await waitFor(() => b.stats.keepalivesReceived === 2, 'keepalives at the peer');
    await a.close();
  });

  it('measures its round trip with an echo request every probeMs, answered by the peer, traffic or not', async () => {
    const clock = new ManualClock();
    const [a, b] = await linkedPair({ clock, keepaliveMs: 1000, deadMs: 60_000, probeMs: 2000 });
    b.onFrames(() => {});
    assert.equal(a.stats.rttMs, undefined, 'nothing measured before the first probe');
    clock.advance(1000);
    assert.equal(a.stats.echoesSent, 0);
    clock.advance(1000);
    assert.equal(a.stats.echoesSent, 1, 'a probe at probeMs');
    await waitFor(() => a.stats.echoesAnswered === 1, 'the peer\'s echo reply');
    assert.equal(a.stats.rttMs, 0, 'the manual clock did not move while the reply was in flight');
    clock.advance(2000);
    await waitFor(() => a.stats.echoesAnswered === 2, 'the second reply');
    assert.equal(b.stats.echoesAnswered, 2, 'both ends probe');
    assert.equal(a.stats.srttMs, 0);
    await a.close();
  });

  it('takes the round trip from the reply to its latest request only: a made-up or stale token is ignored', async () => {
    const clock = new ManualClock();
    const { link, raw } = await linkWithRawDialer({ clock, keepaliveMs: 100_000, deadMs: 600_000, probeMs: 1000 });
    clock.advance(1000);
    const request = await waitFor(() => raw.controls.find((m) => m.type === 'echo-request'), 'the link\'s echo request');
    raw.write(encodeEcho('echo-reply', Buffer.alloc(8, 0xee)));
    clock.advance(7);
    raw.write(encodeEcho('echo-request', Buffer.alloc(8, 1)));
    await waitFor(() => raw.controls.some((m) => m.type === 'echo-reply'), 'the link answers our request');
    assert.deepEqual(raw.controls.find((m) => m.type === 'echo-reply'), { type: 'echo-reply', token: Buffer.alloc(8, 1) });
    assert.equal(link.stats.echoesAnswered, 0, 'a reply with a token it never sent measures nothing');
    raw.write(encodeEcho('echo-reply', (request as { token: Buffer }).token));
    await waitFor(() => link.stats.echoesAnswered === 1, 'the matching reply');
    assert.equal(link.stats.rttMs, 7);
    await link.close();
  });

  it('after this process stalled for deadMs (stopped, or its loop blocked) it closes the link and delivers nothing that waited', async () => {
    // A clock whose interval never runs: the liveness timer stands still, as in a stopped process.
    const manual = new ManualClock();
    let t = 0;
    const stalledClock = { now: () => t, wallNow: () => t, setTimeout: (fn: () => void, ms: number) => manual.setTimeout(fn, ms), setInterval: () => ({ cancel: () => {} }) };
    const { link, raw } = await linkWithRawDialer({ clock: stalledClock, keepaliveMs: 100, deadMs: 1000 });
    const got: number[] = [];
    link.onFrames((frames) => { for (const f of frames) got.push(frameSeq(f)); });
    t = 999;
    raw.write(encodeFrame({ data: numberedFrame(1), offload: undefined }));
    await waitFor(() => got.length === 1, 'a frame read within the dead time is delivered');
    const closed = closeErr(link);
    t = 1000;
    raw.write(encodeFrame({ data: numberedFrame(2), offload: undefined }));
    const err = await closed;
    assert.equal((err as Error & { code: string }).code, 'VNET_ERR_LINK_TIMEOUT');
    assert.deepEqual(got, [1], 'the frame that waited through the stall was not delivered');
    await waitFor(() => raw.goodbye() !== undefined, 'goodbye');
  });

  it('ends the link with LinkTimeoutError when the peer stays silent for deadMs', async () => {
    const clock = new ManualClock();
    const { link, raw } = await linkWithRawDialer({ clock, keepaliveMs: 100, deadMs: 1000 });
    const closed = closeErr(link);
    clock.advance(900);
    assert.equal(link.closed, false);
    clock.advance(400);
    const err = await closed;
    assert.equal((err as Error & { code: string }).code, 'VNET_ERR_LINK_TIMEOUT');
    await waitFor(() => raw.goodbye() !== undefined, 'goodbye');
    assert.equal((raw.goodbye() as { code: string }).code, 'timeout');
  });

  it('keeps a link whose peer sends only keepalives', async () => {
    const clock = new ManualClock();
    const { link, raw } = await linkWithRawDialer({ clock, keepaliveMs: 100, deadMs: 1000 });
    for (let i = 0; i < 20; i++) {
      raw.write(encodeKeepalive());
      await waitFor(() => link.stats.keepalivesReceived === i + 1, 'keepalive');
      clock.advance(500);
    }
    assert.equal(link.closed, false);
    await link.close();
  });

  it('closes on malformed bytes: typed error, one warning, a counter, a goodbye to the peer', async () => {
    const { logger: lg, records } = capturingLogger();
    const { link, raw } = await linkWithRawDialer({ logger: lg });
    const closed = closeErr(link);
    raw.write(Buffer.from('0200000501020304050200000501020304', 'hex'));
    const err = await closed;
    assert.equal((err as Error & { code: string }).code, 'VNET_ERR_FRAME_TOO_SHORT');
    assert.equal(link.stats.decodeErrors, 1);
    assert.equal(records.filter((r) => r.level === 40).length, 1);
    await waitFor(() => raw.goodbye() !== undefined, 'goodbye');
    assert.equal((raw.goodbye() as { code: string }).code, 'protocol');
  });

  it('closes on a well-formed message out of place (a second hello) with VNET_ERR_PROTOCOL', async () => {
    const { link, raw } = await linkWithRawDialer();
    const closed = closeErr(link);
    raw.sendHello('raw');
    assert.equal((await closed as Error & { code: string }).code, 'VNET_ERR_PROTOCOL');
    assert.equal(link.stats.decodeErrors, 1);
  });

  it('ends with PeerGoodbyeError carrying the reason when the peer says goodbye', async () => {
    const [a, b] = await linkedPair();
    const closed = closeErr(b);
    const aClosed = closeErr(a);
    await a.close('maintenance');
    const err = (await closed) as Error & { code: string; reason: string };
    assert.equal(err.code, 'VNET_ERR_PEER_GOODBYE');
    assert.equal(err.reason, 'maintenance');
    assert.equal(await aClosed, undefined, 'a local close reports no error');
  });

  it('ends with LinkLostError, not a crash, when the peer vanishes', async () => {
    const { link, raw } = await linkWithRawDialer();
    const closed = closeErr(link);
    raw.socket.destroy();
    const err = (await closed) as Error & { code: string };
    assert.equal(err.code, 'VNET_ERR_LINK_LOST');
    link.send({ data: numberedFrame(1), offload: undefined });
    assert.equal(link.stats.txDropped, 1);
  });

  it('calls onClose exactly once, even when registered after the link ended', async () => {
    const [a, b] = await linkedPair();
    let calls = 0;
    a.onClose(() => calls++);
    await a.close();
    await a.close();
    await waitFor(() => b.closed, 'b closed');
    let late = 0;
    b.onClose(() => late++);
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 1);
    assert.equal(late, 1);
  });

  it('closes the link with the error when the frame handler throws', async () => {
    const [a, b] = await linkedPair();
    b.onFrames(() => {
      throw new Error('forwarding bug');
    });
    const closed = closeErr(b);
    a.send({ data: numberedFrame(1), offload: undefined });
    assert.equal((await closed)?.message, 'forwarding bug');
  });
});

describe('link: helpers', () => {
  it('reads CN and DNS names from a peer certificate', () => {
    assert.deepEqual(certificateNames({ subject: { CN: 'hub' }, subjectaltname: 'DNS:hub, IP Address:10.0.0.1, DNS:hub.example' }), ['hub', 'hub', 'hub.example']);
    assert.deepEqual(certificateNames({}), []);
  });

  it('decodes what a link writes with the plain decoder (wire compatibility)', async () => {
    const { link, raw } = await linkWithRawDialer();
    const off = Buffer.from('01000000000000000000', 'hex');
    link.send({ data: numberedFrame(9, 100), offload: off });
    await waitFor(() => raw.frames.length === 1, 'frame');
    const f = raw.frames[0] as Frame;
    assert.ok(f.offload?.equals(off));
    assert.equal(frameSeq(f), 9);
    assert.ok(new FrameDecoder({ onFrames() {}, onControl() {}, onDecodeError() {} }).push(Buffer.from('04000000', 'hex')));
    await link.close();
  });
});
