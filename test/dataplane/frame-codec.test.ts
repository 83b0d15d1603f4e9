import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Frame } from '../../src/common/frame.ts';
import { MAX_FRAME_BYTES } from '../../src/common/frame.ts';
import type { FrameDecodeError } from '../../src/dataplane/errors.ts';
import { FrameDecoder, FrameEncoder, encodeFrame, type DecoderSink } from '../../src/dataplane/frame-codec.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  AUTH_METHODS,
  GOODBYE_CODES,
  MAX_AUTH_BYTES,
  encodeAuth,
  encodeGoodbye,
  encodeHello,
  encodeEcho,
  encodeKeepalive,
  type ControlMessage,
} from '../../src/dataplane/wire-messages.ts';

/** mulberry32: a small seeded PRNG, so every random case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Event = string; // normalised: "frame:<offload hex>:<data hex>", "control:<json>", "error:<code>"

class Recorder implements DecoderSink {
  events: Event[] = [];
  batches: Frame[][] = [];
  errors: FrameDecodeError[] = [];
  onFrames(frames: Frame[]): void {
    this.batches.push(frames);
    for (const f of frames) this.events.push(`frame:${f.offload?.toString('hex') ?? '-'}:${f.data.toString('hex')}`);
  }
  onControl(message: ControlMessage): void {
    this.events.push(`control:${JSON.stringify(message, hexBuffers)}`);
  }
  onDecodeError(err: FrameDecodeError): void {
    this.errors.push(err);
    this.events.push(`error:${err.code}`);
  }
}

/** JSON.stringify replacer: Buffers (a hello's nonce, an auth's certificate and proof) as hex. */
function hexBuffers(_key: string, v: unknown): unknown {
  const b = v as { type?: unknown; data?: unknown } | null;
  return b !== null && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString('hex') : v;
}

const NONCE = Buffer.alloc(32, 0xaa);
const NONCE_HEX = NONCE.toString('hex');

function decodeChunks(chunks: readonly Buffer[], maxMessageBytes?: number): Recorder {
  const rec = new Recorder();
  const dec = new FrameDecoder(rec, maxMessageBytes === undefined ? {} : { maxMessageBytes });
  for (const c of chunks) dec.push(c);
  return rec;
}

function ethernet(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

const OFFLOAD = Buffer.from('01002200b205220010000', 'hex').subarray(0, 10);

/** A stream holding one of every message type. */
function sampleStream(): { bytes: Buffer; events: Event[] } {
  const frames: Frame[] = [
    { data: ethernet(14, 1), offload: undefined },
    { data: ethernet(60, 2), offload: undefined },
    { data: ethernet(1514, 3), offload: OFFLOAD },
    { data: ethernet(300, 4), offload: undefined },
  ];
  const parts = [
    encodeHello({ kind: 'backbone', role: 'dialer', hostId: 'host-a', auth: 'certificate', nonce: NONCE }),
    encodeAuth({ certificate: Buffer.from('3082', 'hex'), proof: Buffer.from('0102', 'hex') }),
    encodeFrame(frames[0]!),
    encodeFrame(frames[1]!),
    encodeKeepalive(),
    encodeFrame(frames[2]!),
    encodeFrame(frames[3]!),
    encodeGoodbye('normal', 'shutting down — bye'),
  ];
  const bytes = Buffer.concat(parts);
  return { bytes, events: decodeChunks([bytes]).events };
}

describe('frame codec: encoding and hex fixtures', () => {
  it('encodes a plain frame as type 0x02, a 24-bit length, then the frame', () => {
    const data = Buffer.from('ffffffffffff0200000000010806', 'hex');
    assert.equal(encodeFrame({ data, offload: undefined }).toString('hex'), '0200000e' + 'ffffffffffff0200000000010806');
  });

  it('encodes an offload frame as type 0x03 with the 10-byte virtio header before the frame', () => {
    const data = Buffer.from('ffffffffffff0200000000010806', 'hex');
    const off = Buffer.from('01000000000000000000', 'hex');
    assert.equal(encodeFrame({ data, offload: off }).toString('hex'), '03000018' + '01000000000000000000' + 'ffffffffffff0200000000010806');
  });

  it('encodes hello, auth, keepalive, echo and goodbye byte for byte, and decodes echoes', () => {
    assert.equal(
      encodeHello({ kind: 'fast-path', role: 'listener', hostId: 'hub', auth: 'link-key', nonce: NONCE }).toString('hex'),
      '0100002c' + '564e4554' + '02' + '02' + '02' + '01' + NONCE_HEX + '03' + Buffer.from('hub').toString('hex'),
    );
    assert.equal(encodeAuth({ certificate: Buffer.alloc(0), proof: Buffer.from('beef', 'hex') }).toString('hex'), '06000004' + '0000' + 'beef');
    assert.equal(encodeAuth({ certificate: Buffer.from('3082', 'hex'), proof: Buffer.from('01', 'hex') }).toString('hex'), '06000005' + '0002' + '3082' + '01');
    assert.equal(encodeKeepalive().toString('hex'), '04000000');
    assert.equal(encodeEcho('echo-request', Buffer.from('0102030405060708', 'hex')).toString('hex'), '07000008' + '0102030405060708');
    assert.equal(encodeEcho('echo-reply', Buffer.from('0102030405060708', 'hex')).toString('hex'), '08000008' + '0102030405060708');
    const echoes = decodeChunks([Buffer.from('07000008' + '0102030405060708' + '08000008' + 'a1a2a3a4a5a6a7a8', 'hex')]);
    assert.deepEqual(echoes.events, ['control:{"type":"echo-request","token":"0102030405060708"}', 'control:{"type":"echo-reply","token":"a1a2a3a4a5a6a7a8"}']);
    assert.equal(encodeGoodbye('timeout', 'x').toString('hex'), '05000002' + '04' + '78');
  });

  it('decodes a hex fixture into the messages it holds', () => {
    const rec = decodeChunks([Buffer.from('0100002b564e4554020101' + '00' + NONCE_HEX + '02' + '6831' + '04000000' + '0200000e' + 'ffffffffffff0200000000010806', 'hex')]);
    assert.deepEqual(rec.events, [
      `control:{"type":"hello","version":2,"kind":"backbone","role":"dialer","hostId":"h1","auth":"none","nonce":"${NONCE_HEX}"}`,
      'control:{"type":"keepalive"}',
      'frame:-:ffffffffffff0200000000010806',
    ]);
  });

  it('writes small frames whole (header and a copy of the payload) into the slab', () => {
    const enc = new FrameEncoder();
    const data = ethernet(60, 5);
    const whole = enc.wholeFrame({ data, offload: OFFLOAD });
    assert.ok(whole.equals(encodeFrame({ data, offload: OFFLOAD })));
    data.fill(0);
    assert.ok(whole.subarray(14).equals(ethernet(60, 5)), 'a copy, not a view of the payload');
    assert.deepEqual(decodeChunks([whole, enc.wholeFrame({ data: ethernet(14, 1), offload: undefined })]).events.length, 2);
  });

  it('streams frames as slab runs: small frames copied whole, large ones as header then payload, in order across slabs', () => {
    const enc = new FrameEncoder();
    const out: Buffer[] = [];
    const frames: Frame[] = [];
    for (let i = 0; i < 5000; i++) {
      const big = i % 97 === 0;
      const frame: Frame = { data: ethernet(big ? 3000 : 20 + (i % 200), i), offload: i % 5 === 0 ? OFFLOAD : undefined };
      frames.push(frame);
      if (!enc.append(frame)) {
        for (let r = enc.takeRun(); r !== undefined; r = enc.takeRun()) out.push(r);
        out.push(frame.data);
      }
    }
    for (let r = enc.takeRun(); r !== undefined; r = enc.takeRun()) out.push(r);
    assert.ok(out.length < 200, `a few large buffers, not one per frame: ${out.length}`);
    const expected = frames.map((f) => `frame:${f.offload?.toString('hex') ?? '-'}:${f.data.toString('hex')}`);
    assert.deepEqual(decodeChunks(out).events, expected);
    assert.equal(enc.takeRun(), undefined);
  });

  it('takes frame headers from a slab: distinct regions of one shared buffer, rolled over when full', () => {
    const enc = new FrameEncoder();
    const f: Frame = { data: ethernet(64, 1), offload: undefined };
    const a = enc.frameHeader(f);
    const b = enc.frameHeader(f);
    assert.equal(a.buffer, b.buffer);
    assert.equal(b.byteOffset, a.byteOffset + 4);
    const seen = new Set<ArrayBufferLike>();
    for (let i = 0; i < 10_000; i++) seen.add(enc.frameHeader({ data: f.data, offload: OFFLOAD }).buffer);
    assert.ok(seen.size > 1 && seen.size < 10, `slabs used: ${seen.size}`);
    assert.equal(a.toString('hex'), '02000040', 'old headers are never overwritten');
  });
});

describe('frame codec: round trips', () => {
  it('round-trips every message type', () => {
    const { events } = sampleStream();
    assert.deepEqual(events, [
      `control:{"type":"hello","version":2,"kind":"backbone","role":"dialer","hostId":"host-a","auth":"certificate","nonce":"${NONCE_HEX}"}`,
      'control:{"type":"auth","certificate":"3082","proof":"0102"}',
      `frame:-:${ethernet(14, 1).toString('hex')}`,
      `frame:-:${ethernet(60, 2).toString('hex')}`,
      'control:{"type":"keepalive"}',
      `frame:${OFFLOAD.toString('hex')}:${ethernet(1514, 3).toString('hex')}`,
      `frame:-:${ethernet(300, 4).toString('hex')}`,
      'control:{"type":"goodbye","code":"normal","reason":"shutting down — bye"}',
    ]);
  });

  it('round-trips every goodbye code and both link kinds and roles', () => {
    for (const code of GOODBYE_CODES) {
      assert.deepEqual(decodeChunks([encodeGoodbye(code, `because ${code}`)]).events, [`control:${JSON.stringify({ type: 'goodbye', code, reason: `because ${code}` })}`]);
    }
    for (const kind of ['backbone', 'fast-path'] as const) {
      for (const role of ['dialer', 'listener'] as const) {
        for (const auth of AUTH_METHODS) {
          const ev = decodeChunks([encodeHello({ kind, role, hostId: 'a.b_c-9', auth, nonce: NONCE })]).events;
          assert.deepEqual(ev, [`control:${JSON.stringify({ type: 'hello', version: 2, kind, role, hostId: 'a.b_c-9', auth, nonce: NONCE_HEX })}`]);
        }
      }
    }
  });

  it('reports a hello of another version as a foreign hello, not an error', () => {
    const rec = decodeChunks([encodeHello({ kind: 'backbone', role: 'dialer', hostId: 'h', version: 1 })]);
    assert.deepEqual(rec.events, ['control:{"type":"foreign-hello","version":1}']);
  });

  it('round-trips a GSO super-frame of MAX_FRAME_BYTES with its offload header', () => {
    const data = ethernet(MAX_FRAME_BYTES, 9);
    const rec = decodeChunks([encodeFrame({ data, offload: OFFLOAD })]);
    assert.equal(rec.errors.length, 0);
    assert.ok(rec.batches[0]![0]!.data.equals(data));
    assert.ok(rec.batches[0]![0]!.offload!.equals(OFFLOAD));
  });

  it('truncates a goodbye reason to 512 bytes', () => {
    const rec = decodeChunks([encodeGoodbye('refused', 'x'.repeat(2000))]);
    assert.deepEqual(rec.events, [`control:${JSON.stringify({ type: 'goodbye', code: 'refused', reason: 'x'.repeat(512) })}`]);
  });
});

describe('frame codec: chunking', () => {
  it('decodes the same messages for a split into two parts at every offset', () => {
    const { bytes, events } = sampleStream();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const rec = decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepEqual(rec.events, events, `split at ${cut}`);
    }
  });

  it('decodes the same messages fed one byte at a time', () => {
    const { bytes, events } = sampleStream();
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
    assert.deepEqual(decodeChunks(chunks).events, events);
  });

  it('decodes the same messages for 2000 random chunkings (seeded)', () => {
    const { bytes, events } = sampleStream();
    const rand = prng(0xc0ffee);
    for (let round = 0; round < 2000; round++) {
      const chunks: Buffer[] = [];
      const maxChunk = 1 + Math.floor(rand() * (round % 2 === 0 ? 16 : 2000));
      for (let off = 0; off < bytes.length; ) {
        const n = 1 + Math.floor(rand() * maxChunk);
        chunks.push(bytes.subarray(off, off + n));
        off += n;
      }
      assert.deepEqual(decodeChunks(chunks).events, events, `round ${round}`);
    }
  });

  it('hands out views into the chunk when a message lies inside it, and copies when it spans chunks', () => {
    const a = encodeFrame({ data: ethernet(100, 1), offload: undefined });
    const b = encodeFrame({ data: ethernet(100, 2), offload: OFFLOAD });
    const whole = Buffer.concat([a, b]);
    const rec = decodeChunks([whole]);
    const [f1, f2] = rec.batches[0]!;
    assert.ok(f1!.data.buffer === whole.buffer && f1!.data.byteOffset === whole.byteOffset + 4);
    assert.ok(f2!.data.buffer === whole.buffer && f2!.offload!.buffer === whole.buffer);
    const first = whole.subarray(0, 50);
    const rest = whole.subarray(50);
    const split = decodeChunks([first, rest]);
    const g1 = split.batches[0]![0]!;
    assert.ok(g1.data.equals(ethernet(100, 1)));
    whole.fill(0); // a copy does not change with the chunk it came from; a view would
    assert.ok(g1.data.equals(ethernet(100, 1)));
    assert.ok(f1!.data.equals(Buffer.alloc(100)));
  });

  it('delivers all frames of a chunk as one batch, flushing before a control message to keep order', () => {
    const f = (n: number): Buffer => encodeFrame({ data: ethernet(20, n), offload: undefined });
    const rec = decodeChunks([Buffer.concat([f(1), f(2), f(3), encodeKeepalive(), f(4), f(5)])]);
    assert.deepEqual(rec.batches.map((b) => b.length), [3, 2]);
    assert.equal(rec.events[3], 'control:{"type":"keepalive"}');
  });
});

describe('frame codec: bad input', () => {
  const codeOf = (hex: string, max?: number): string[] => decodeChunks([Buffer.from(hex, 'hex')], max).errors.map((e) => e.code);

  it('refuses a message longer than maxMessageBytes as soon as its header arrives', () => {
    const rec = new Recorder();
    const dec = new FrameDecoder(rec, { maxMessageBytes: 1000 });
    assert.equal(dec.push(Buffer.from('020003e9', 'hex')), false);
    assert.deepEqual(rec.errors.map((e) => e.code), ['VNET_ERR_FRAME_TOO_LARGE']);
    assert.equal(dec.bufferedBytes, 0);
    assert.deepEqual(codeOf('02ffffff'), ['VNET_ERR_FRAME_TOO_LARGE']);
    assert.deepEqual(codeOf(`03${(DEFAULT_MAX_MESSAGE_BYTES + 1).toString(16).padStart(6, '0')}`), ['VNET_ERR_FRAME_TOO_LARGE']);
    assert.deepEqual(codeOf('0100ffff'), ['VNET_ERR_FRAME_TOO_LARGE']);
  });

  it('gives each kind of bad bytes its stable code', () => {
    assert.deepEqual(codeOf('0200000d' + '00'.repeat(13)), ['VNET_ERR_FRAME_TOO_SHORT']);
    assert.deepEqual(codeOf('03000010' + '00'.repeat(16)), ['VNET_ERR_FRAME_TOO_SHORT']);
    assert.deepEqual(codeOf('47455420'), ['VNET_ERR_UNKNOWN_MESSAGE']); // "GET "
    assert.deepEqual(codeOf('04000001ff'), ['VNET_ERR_MALFORMED_MESSAGE']);
    assert.deepEqual(codeOf('07000007' + '01020304050607'), ['VNET_ERR_MALFORMED_MESSAGE']); // an echo token is 8 bytes
    assert.deepEqual(codeOf('08000009' + '010203040506070809'), ['VNET_ERR_MALFORMED_MESSAGE']);
    assert.deepEqual(codeOf('0100000a' + '48545450' + '010101026831'), ['VNET_ERR_BAD_MAGIC']);
    const hello = (kind: string, role: string, auth: string, idLen: string, id: string): string => {
      const body = '564e4554' + '02' + kind + role + auth + NONCE_HEX + idLen + id;
      return '01' + (body.length / 2).toString(16).padStart(6, '0') + body;
    };
    assert.deepEqual(codeOf(hello('01', '01', '00', '02', '6831')), [], 'the well-formed version');
    assert.deepEqual(codeOf(hello('03', '01', '00', '02', '6831')), ['VNET_ERR_MALFORMED_MESSAGE']); // kind 3
    assert.deepEqual(codeOf(hello('01', '03', '00', '02', '6831')), ['VNET_ERR_MALFORMED_MESSAGE']); // role 3
    assert.deepEqual(codeOf(hello('01', '01', '03', '02', '6831')), ['VNET_ERR_MALFORMED_MESSAGE']); // auth method 3
    assert.deepEqual(codeOf(hello('01', '01', '00', '03', '6831')), ['VNET_ERR_MALFORMED_MESSAGE']); // id length 3, body has 2
    assert.deepEqual(codeOf(hello('01', '01', '00', '02', '2f2f')), ['VNET_ERR_MALFORMED_MESSAGE']); // id "//"
    assert.deepEqual(codeOf('0100000a' + '564e4554' + '020101006831'), ['VNET_ERR_MALFORMED_MESSAGE']); // no room for the nonce
    assert.deepEqual(codeOf('05000000'), ['VNET_ERR_MALFORMED_MESSAGE']);
    assert.deepEqual(codeOf('06000002' + '0000'), ['VNET_ERR_MALFORMED_MESSAGE']); // auth without a proof
    assert.deepEqual(codeOf('06000005' + '0003' + '010203'), ['VNET_ERR_MALFORMED_MESSAGE']); // certificate fills the body: no proof
    assert.deepEqual(codeOf('06000004' + '0009' + '0102'), ['VNET_ERR_MALFORMED_MESSAGE']); // certificate longer than the body
    assert.deepEqual(codeOf('06' + (MAX_AUTH_BYTES + 1).toString(16).padStart(6, '0')), ['VNET_ERR_FRAME_TOO_LARGE']);
  });

  it('delivers the good frames before the bad message, then refuses all further input', () => {
    const good = encodeFrame({ data: ethernet(20, 1), offload: undefined });
    const rec = new Recorder();
    const dec = new FrameDecoder(rec);
    assert.equal(dec.push(Buffer.concat([good, Buffer.from('ee000000', 'hex'), good])), false);
    assert.equal(rec.events.length, 2);
    assert.match(rec.events[0]!, /^frame:/);
    assert.equal(rec.events[1], 'error:VNET_ERR_UNKNOWN_MESSAGE');
    assert.equal(dec.push(good), false);
    assert.equal(rec.events.length, 2);
    assert.equal(dec.error?.code, 'VNET_ERR_UNKNOWN_MESSAGE');
  });

  it('never throws on 3000 random byte streams, and reports at most one error each (seeded)', () => {
    const rand = prng(42);
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(rand() * 200);
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) bytes[j] = Math.floor(rand() * 256);
      // Bias some cases towards valid-looking headers so bodies get exercised.
      if (len > 4 && i % 3 === 0) {
        bytes[0] = 1 + (i % 6);
        bytes[1] = 0;
        bytes[2] = 0;
      }
      const rec = decodeChunks([bytes.subarray(0, len >> 1), bytes.subarray(len >> 1)], 4096);
      assert.ok(rec.errors.length <= 1, `case ${i}`);
    }
  });

  it('never throws on 3000 mutated valid streams; an error, if any, is the last event (seeded)', () => {
    const { bytes, events } = sampleStream();
    const rand = prng(7);
    for (let i = 0; i < 3000; i++) {
      const m = Buffer.from(bytes);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
      let cut = Math.floor(rand() * m.length);
      if (i % 4 === 0) cut = m.length; // also whole, unsplit
      const rec = decodeChunks([m.subarray(0, cut), m.subarray(cut)]);
      assert.ok(rec.errors.length <= 1, `case ${i}`);
      if (rec.errors.length === 1) assert.equal(rec.events.at(-1), `error:${rec.errors[0]!.code}`);
      if (m.equals(bytes)) assert.deepEqual(rec.events, events);
    }
  });
});
