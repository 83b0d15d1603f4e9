/**
 * QEMU's stream framing (src/dataplane/stream-frame-codec.ts): frames out
 * whole at every split of the input, byte by byte, and in seeded random
 * chunkings; runts and frames over the port's limit skipped without losing
 * step; a length over QEMU's own limit ends the stream, never a throw.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QEMU_NET_BUFSIZE, StreamFrameDecoder, streamFrameHeader } from '../../src/dataplane/stream-frame-codec.ts';

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

const framed = (body: Buffer): Buffer => Buffer.concat([streamFrameHeader(body.length), body]);
const body = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

function decodeAll(d: StreamFrameDecoder, chunks: Buffer[]): { frames: string[]; skipped: number; tooLong: number | undefined } {
  const frames: string[] = [];
  let skipped = 0;
  let tooLong: number | undefined;
  for (const c of chunks) {
    const r = d.push(c);
    for (const f of r.frames) frames.push(f.toString('hex'));
    skipped += r.skipped;
    tooLong ??= r.tooLong;
  }
  return { frames, skipped, tooLong };
}

describe('QEMU stream framing', () => {
  const bodies = [body(60, 1), body(14, 2), body(1514, 3), body(64, 4)];
  const stream = Buffer.concat(bodies.map(framed));
  const want = bodies.map((b) => b.toString('hex'));

  it('decodes a stream in one chunk, with the frames as views into it (zero copy)', () => {
    const d = new StreamFrameDecoder({ maxAcceptBytes: 1518 });
    const r = d.push(stream);
    assert.deepEqual(r.frames.map((f) => f.toString('hex')), want);
    assert.ok(r.frames.every((f) => f.buffer === stream.buffer), 'views, not copies');
    assert.equal(d.buffered, 0);
  });

  it('decodes the same frames at every split point and byte by byte', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const got = decodeAll(new StreamFrameDecoder({ maxAcceptBytes: 1518 }), [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(got.frames, want, `split at ${cut}`);
    }
    const bytes = [...stream].map((b) => Buffer.from([b]));
    assert.deepEqual(decodeAll(new StreamFrameDecoder({ maxAcceptBytes: 1518 }), bytes).frames, want);
  });

  it('skips runts and frames over the port\'s limit whole and stays in step', () => {
    const mixed = Buffer.concat([framed(body(60, 1)), framed(body(0, 0)), framed(body(13, 9)), framed(body(2000, 7)), framed(body(70, 5))]);
    for (let cut = 0; cut <= mixed.length; cut += 7) {
      const got = decodeAll(new StreamFrameDecoder({ maxAcceptBytes: 1518 }), [mixed.subarray(0, cut), mixed.subarray(cut)]);
      assert.deepEqual(got.frames, [body(60, 1).toString('hex'), body(70, 5).toString('hex')], `split at ${cut}`);
      assert.equal(got.skipped, 3);
      assert.equal(got.tooLong, undefined);
    }
  });

  it('a length over QEMU\'s own limit ends the stream once: frames before it are kept, nothing after it is taken', () => {
    const bad = Buffer.concat([framed(body(60, 1)), streamFrameHeader(QEMU_NET_BUFSIZE + 1), framed(body(60, 2))]);
    const d = new StreamFrameDecoder({ maxAcceptBytes: 1518 });
    const r = d.push(bad);
    assert.deepEqual(r.frames.map((f) => f.toString('hex')), [body(60, 1).toString('hex')]);
    assert.equal(r.tooLong, QEMU_NET_BUFSIZE + 1);
    assert.ok(d.dead);
    assert.deepEqual(d.push(framed(body(60, 3))).frames, []);
  });

  it('never throws on seeded random and mutated streams, and random chunkings give the same frames', () => {
    const rnd = prng(7);
    for (let round = 0; round < 500; round++) {
      const frames = Array.from({ length: 1 + Math.floor(rnd() * 8) }, (_, i) => body(14 + Math.floor(rnd() * 1600), i + 1));
      const s = Buffer.concat(frames.map(framed));
      const chunks: Buffer[] = [];
      for (let off = 0; off < s.length;) {
        const n = 1 + Math.floor(rnd() * 300);
        chunks.push(s.subarray(off, off + n));
        off += n;
      }
      const expected = frames.filter((f) => f.length <= 1518).map((f) => f.toString('hex'));
      assert.deepEqual(decodeAll(new StreamFrameDecoder({ maxAcceptBytes: 1518 }), chunks).frames, expected);
      const mutated = Buffer.from(s);
      for (let k = 0; k < 4; k++) mutated[Math.floor(rnd() * mutated.length)] = Math.floor(rnd() * 256);
      assert.doesNotThrow(() => decodeAll(new StreamFrameDecoder({ maxAcceptBytes: 1518 }), [mutated]));
    }
  });
});
