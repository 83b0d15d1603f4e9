import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import type { Frame } from '../../src/common/frame.ts';
import { MAX_FRAME_BYTES } from '../../src/common/frame.ts';
import { encodeFrame } from '../../src/dataplane/frame-codec.ts';
import type { Link } from '../../src/dataplane/link-interface.ts';
import type { LinkSettings, Transport, TransportListener } from '../../src/dataplane/transport.ts';
import { frameSeq, numberedFrame, RawPeer, withDeadline } from './raw-peer.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * One suite for every Transport (memory, TCP, TLS): what a daemon relies on
 * from any of them. Each implementation supplies a harness that makes
 * transports for named hosts and raw byte streams to a listener (for TLS,
 * already authenticated as the named host) so the suite can misbehave as a
 * peer.
 */
export interface TransportHarness {
  setup?(): Promise<void>;
  make(host: string, settings?: Partial<LinkSettings>): Transport;
  raw(port: number, as: string): Promise<Duplex>;
  /** A port on which nothing listens. */
  deadPort(): Promise<number>;
}

const HOST = '127.0.0.1';
const WAIT_MS = 10_000;

function collect(link: Link): Frame[] {
  const got: Frame[] = [];
  link.onFrames((fs) => {
    for (const f of fs) got.push({ data: Buffer.from(f.data), offload: f.offload === undefined ? undefined : Buffer.from(f.offload) });
  });
  return got;
}

function closeErr(link: Link): Promise<Error | undefined> {
  return withDeadline(new Promise((resolve) => link.onClose(resolve)), 10_000, `link ${link.id} to close`);
}

/** Listen as `b`, connect as `a`; return both ends. */
async function connectPair(h: TransportHarness, settings: Partial<LinkSettings> = {}): Promise<{ a: Link; b: Link; listener: TransportListener }> {
  const inbound: Link[] = [];
  const listener = await h.make('b', settings).listen({ host: HOST, port: 0 }, (l) => inbound.push(l));
  const a = await h.make('a', settings).connect({ host: HOST, port: listener.port, expectedPeer: 'b', kind: 'backbone' });
  await waitFor(() => inbound.length === 1, 'inbound link', WAIT_MS);
  return { a, b: inbound[0]!, listener };
}

export function transportCompliance(name: string, h: TransportHarness): void {
  describe(`transport compliance: ${name}`, () => {
    const cleanup: (() => Promise<void>)[] = [];
    before(async () => h.setup?.());
    after(async () => {
      for (const c of cleanup.reverse()) await c().catch(() => undefined);
    });
    const pair = async (settings: Partial<LinkSettings> = {}): Promise<{ a: Link; b: Link; listener: TransportListener }> => {
      const p = await connectPair(h, settings);
      cleanup.push(() => p.listener.close(), () => p.a.close(), () => p.b.close());
      return p;
    };

    it('handshakes: each side learns the other, the listener adopts the dialer\'s kind', async () => {
      const inbound: Link[] = [];
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, (l) => inbound.push(l));
      cleanup.push(() => listener.close());
      assert.ok(listener.port > 0);
      const a = await h.make('a').connect({ host: HOST, port: listener.port, expectedPeer: 'b', kind: 'fast-path' });
      cleanup.push(() => a.close());
      await waitFor(() => inbound.length === 1, 'inbound link', WAIT_MS);
      assert.equal(a.peerHost, 'b');
      assert.equal(a.kind, 'fast-path');
      assert.equal(inbound[0]!.peerHost, 'a');
      assert.equal(inbound[0]!.kind, 'fast-path');
      assert.equal(listener.stats.accepted, 1);
    });

    it('carries frames both ways, in order', async () => {
      const { a, b } = await pair();
      const atA = collect(a);
      const atB = collect(b);
      for (let i = 0; i < 200; i++) {
        a.send({ data: numberedFrame(i, 60 + (i % 1400)), offload: undefined });
        b.send({ data: numberedFrame(10_000 + i, 1514), offload: undefined });
      }
      await waitFor(() => atA.length === 200 && atB.length === 200, 'frames both ways', WAIT_MS);
      assert.deepEqual(atB.map(frameSeq), Array.from({ length: 200 }, (_, i) => i));
      assert.deepEqual(atA.map(frameSeq), Array.from({ length: 200 }, (_, i) => 10_000 + i));
      assert.ok(atB.every((f, i) => f.data.length === 60 + (i % 1400)));
    });

    it('delivers a burst of 10,000 small frames complete and in order', async () => {
      const { a, b } = await pair();
      const atB = collect(b);
      for (let i = 0; i < 10_000; i++) a.send({ data: numberedFrame(i, 64), offload: undefined });
      await waitFor(() => atB.length === 10_000, '10k frames', WAIT_MS);
      assert.equal(a.stats.txDropped, 0);
      for (let i = 0; i < 10_000; i++) assert.equal(frameSeq(atB[i]!), i);
      assert.equal(b.stats.rxFrames, 10_000);
      assert.equal(b.stats.rxBytes, 640_000);
    });

    it('keeps the offload header of offload frames, up to a full GSO super-frame', async () => {
      const { a, b } = await pair();
      const atB = collect(b);
      const header = (i: number): Buffer => Buffer.from([1, 4, 0, 54 + (i & 7), 0x05, 0xb4, 0, 34, 0, 16]);
      const sizes = [60, 1514, 9000, 32_000, MAX_FRAME_BYTES];
      sizes.forEach((size, i) => a.send({ data: numberedFrame(i, size), offload: header(i) }));
      a.send({ data: numberedFrame(99, 60), offload: undefined });
      await waitFor(() => atB.length === sizes.length + 1, 'offload frames', WAIT_MS);
      sizes.forEach((size, i) => {
        assert.equal(atB[i]!.data.length, size);
        assert.equal(frameSeq(atB[i]!), i);
        assert.ok(atB[i]!.offload?.equals(header(i)), `offload header of frame ${i}`);
      });
      assert.equal(atB[sizes.length]!.offload, undefined);
    });

    it('refuses a peer speaking another protocol version, with a goodbye that says so', async () => {
      const inbound: Link[] = [];
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, (l) => inbound.push(l));
      cleanup.push(() => listener.close());
      const raw = new RawPeer(await h.raw(listener.port, 'raw'));
      raw.sendHello('raw', 'backbone', 'dialer', 3);
      await waitFor(() => raw.goodbye() !== undefined, 'goodbye', WAIT_MS);
      assert.deepEqual(raw.goodbye(), { type: 'goodbye', code: 'version', reason: 'this host speaks protocol version 2, not 3' });
      await waitFor(() => listener.stats.refused === 1, 'refusal counted', WAIT_MS);
      await waitFor(() => raw.ended, 'connection closed', WAIT_MS);
      assert.equal(inbound.length, 0);
    });

    it('detects a peer that stalls (sends nothing) by the keepalive timeout', async () => {
      const inbound: Link[] = [];
      const listener = await h.make('b', { keepaliveMs: 50, deadMs: 300 }).listen({ host: HOST, port: 0 }, (l) => inbound.push(l));
      cleanup.push(() => listener.close());
      const raw = new RawPeer(await h.raw(listener.port, 'raw'));
      cleanup.push(async () => void raw.socket.destroy());
      const started = Date.now();
      raw.sendHello('raw');
      await waitFor(() => inbound.length === 1, 'inbound link', WAIT_MS);
      const link = inbound[0]!;
      const err = (await closeErr(link)) as Error & { code: string };
      assert.equal(err.code, 'VNET_ERR_LINK_TIMEOUT');
      assert.ok(Date.now() - started >= 250, 'not before deadMs');
      assert.ok(link.stats.keepalivesSent >= 2, `keepalives sent while waiting: ${link.stats.keepalivesSent}`);
    });

    it('ends the link with an error, not a crash, when the peer vanishes mid-stream', async () => {
      const inbound: Link[] = [];
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, (l) => inbound.push(l));
      cleanup.push(() => listener.close());
      const raw = new RawPeer(await h.raw(listener.port, 'raw'));
      raw.sendHello('raw');
      await waitFor(() => inbound.length === 1, 'inbound link', WAIT_MS);
      const link = inbound[0]!;
      const got = collect(link);
      const closed = closeErr(link);
      const half = encodeFrame({ data: numberedFrame(3, 1000), offload: undefined }).subarray(0, 500);
      raw.write(Buffer.concat([encodeFrame({ data: numberedFrame(1), offload: undefined }), encodeFrame({ data: numberedFrame(2), offload: undefined }), half]));
      await waitFor(() => got.length === 2, 'frames before the vanishing', WAIT_MS);
      raw.socket.destroy();
      const err = (await closed) as Error & { code: string };
      assert.equal(err.code, 'VNET_ERR_LINK_LOST');
      assert.deepEqual(got.map(frameSeq), [1, 2]);
      link.send({ data: numberedFrame(4), offload: undefined });
      assert.equal(link.stats.txDropped, 1);
    });

    it('closes only the link that carried malformed bytes; another link on the same listener keeps working', async () => {
      const inbound: Link[] = [];
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, (l) => inbound.push(l));
      cleanup.push(() => listener.close());
      const bad = new RawPeer(await h.raw(listener.port, 'raw'));
      bad.sendHello('raw');
      await waitFor(() => inbound.length === 1, 'first inbound link', WAIT_MS);
      const a = await h.make('a').connect({ host: HOST, port: listener.port, kind: 'backbone' });
      cleanup.push(() => a.close());
      await waitFor(() => inbound.length === 2, 'second inbound link', WAIT_MS);
      const [badLink, goodLink] = inbound[0]!.peerHost === 'raw' ? [inbound[0]!, inbound[1]!] : [inbound[1]!, inbound[0]!];
      const closed = closeErr(badLink);
      bad.write(Buffer.from('ee00000000', 'hex'));
      const err = (await closed) as Error & { code: string };
      assert.equal(err.code, 'VNET_ERR_UNKNOWN_MESSAGE');
      assert.equal(badLink.stats.decodeErrors, 1);
      await waitFor(() => bad.goodbye() !== undefined, 'goodbye to the bad peer', WAIT_MS);
      assert.equal((bad.goodbye() as { code: string }).code, 'protocol');
      const got = collect(goodLink);
      a.send({ data: numberedFrame(7), offload: undefined });
      await waitFor(() => got.length === 1, 'frame on the good link', WAIT_MS);
      assert.equal(goodLink.closed, false);
    });

    it('closes cleanly: the peer learns the reason from the goodbye', async () => {
      const { a, b } = await pair();
      const closed = closeErr(b);
      await a.close('maintenance');
      const err = (await closed) as Error & { code: string; reason: string };
      assert.equal(err.code, 'VNET_ERR_PEER_GOODBYE');
      assert.equal(err.reason, 'maintenance');
    });

    it('fails to connect where nobody listens with a TransportError', async () => {
      const port = await h.deadPort();
      await assert.rejects(h.make('a').connect({ host: HOST, port, kind: 'backbone' }), { code: 'VNET_ERR_TRANSPORT' });
    });

    it('refuses to listen on an address already in use, with a TransportError', async () => {
      const first = await h.make('b').listen({ host: HOST, port: 0 }, () => {});
      cleanup.push(() => first.close());
      await assert.rejects(h.make('a').listen({ host: HOST, port: first.port }, () => {}), { code: 'VNET_ERR_TRANSPORT' });
    });

    it('stops accepting once the listener is closed', async () => {
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, () => {});
      await listener.close();
      await assert.rejects(h.make('a').connect({ host: HOST, port: listener.port, kind: 'backbone' }), (err: Error & { code: string }) => {
        assert.ok(['VNET_ERR_TRANSPORT', 'VNET_ERR_HANDSHAKE'].includes(err.code), err.code);
        return true;
      });
    });

    it('does not dial when the AbortSignal has already fired', async () => {
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, () => {});
      cleanup.push(() => listener.close());
      const abort = new AbortController();
      abort.abort();
      await assert.rejects(h.make('a').connect({ host: HOST, port: listener.port, kind: 'backbone', signal: abort.signal }), { code: 'VNET_ERR_ABORTED' });
      assert.equal(listener.stats.accepted, 0);
    });

    it('refuses a peer that is not the expected host', async () => {
      const listener = await h.make('b').listen({ host: HOST, port: 0 }, () => {});
      cleanup.push(() => listener.close());
      await assert.rejects(h.make('a').connect({ host: HOST, port: listener.port, kind: 'backbone', expectedPeer: 'c' }), {
        code: 'VNET_ERR_HANDSHAKE',
        message: /expected host c, peer says it is b/,
      });
    });
  });
}
