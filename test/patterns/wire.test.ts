import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeAbort,
  encodeHeader,
  encodeHello,
  HEADER_BYTES,
  MSG_ARRIVE,
  MSG_DATA,
  MSG_RELEASE,
  PatternsDecoder,
  referencePayload,
  type Hello,
  type PatternsMessage,
} from '../../src/patterns/wire.ts';

const hello: Hello = { index: 3, workers: 8, messageBytes: 1000, rounds: 50, pattern: 'ring', k: 2 };

function stream(ref: Buffer): Buffer {
  return Buffer.concat([
    encodeHello(hello),
    encodeHeader(MSG_ARRIVE, 0, 0),
    encodeHeader(MSG_RELEASE, 0, 0),
    encodeHeader(MSG_DATA, 1, ref.length),
    ref,
    encodeHeader(MSG_DATA, 2, ref.length),
    ref,
    encodeAbort(2, 5, 'worker 6 (10.0.0.6:7000): closed its connection'),
  ]);
}

const expected: PatternsMessage[] = [
  { type: 'hello', hello },
  { type: 'arrive', round: 0 },
  { type: 'release', round: 0 },
  { type: 'data', round: 1 },
  { type: 'data', round: 2 },
  { type: 'abort', origin: 5, reason: 'worker 6 (10.0.0.6:7000): closed its connection' },
];

function decodeIn(bytes: Buffer, ref: Buffer, cuts: number[]): { messages: PatternsMessage[]; error: string | undefined } {
  const d = new PatternsDecoder({ reference: ref });
  const messages: PatternsMessage[] = [];
  let error: string | undefined;
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    const r = d.push(bytes.subarray(prev, c));
    messages.push(...r.messages);
    error ??= r.error;
    prev = c;
  }
  return { messages, error };
}

describe('Patterns wire decoder', () => {
  const ref = referencePayload(1000);

  it('decodes every message type whole, byte by byte, and at random cuts', () => {
    const bytes = stream(ref);
    assert.deepEqual(decodeIn(bytes, ref, []), { messages: expected, error: undefined });
    assert.deepEqual(decodeIn(bytes, ref, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)), { messages: expected, error: undefined });
    let seed = 7;
    for (let t = 0; t < 50; t++) {
      const cuts = new Set<number>();
      for (let i = 0; i < 6; i++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        cuts.add(seed % bytes.length);
      }
      assert.deepEqual(decodeIn(bytes, ref, [...cuts].sort((a, b) => a - b)), { messages: expected, error: undefined });
    }
  });

  it('rejects a bad magic, version, type and lengths with a reason', () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.from('GET / HTTP/1.1\r\n\r\n'), /bad magic 0x4745/],
      [Buffer.from('5650020200000001000003e8', 'hex'), /unsupported version 2/],
      [Buffer.from('5650010900000001000003e8', 'hex'), /unknown message type 9/],
      [encodeHeader(MSG_DATA, 1, 999), /data message of 999 bytes in round 1 \(the run's size is 1000\)/],
      [encodeHeader(MSG_ARRIVE, 1, 4), /arrive with a 4-byte payload/],
      [encodeHeader(5, 1, 2), /abort with a 2-byte payload/],
      [encodeHeader(1, 0, 19), /hello of 19 bytes/],
    ];
    for (const [bytes, re] of cases) {
      const r = new PatternsDecoder({ reference: ref }).push(bytes);
      assert.deepEqual(r.messages, []);
      assert.match(r.error ?? '', re);
    }
  });

  it('rejects a data payload that differs from the reference, naming the bytes, and stays failed', () => {
    const bad = Buffer.from(ref);
    bad[700] = bad[700]! ^ 0xff;
    const d = new PatternsDecoder({ reference: ref });
    const r = d.push(Buffer.concat([encodeHeader(MSG_DATA, 1, ref.length), bad.subarray(0, 500)]));
    assert.equal(r.error, undefined);
    const r2 = d.push(bad.subarray(500));
    assert.match(r2.error ?? '', /round 1 differs from the reference at bytes 500\.\.999/);
    assert.ok(d.failed);
    assert.deepEqual(d.push(encodeHeader(MSG_ARRIVE, 0, 0)).messages, []);
  });

  it('rejects a hello naming an unknown pattern', () => {
    const h = encodeHello(hello);
    h[HEADER_BYTES + 16] = 99;
    assert.match(new PatternsDecoder({ reference: ref }).push(h).error ?? '', /unknown pattern code 99/);
  });

  it('never throws on random bytes, with or without a valid magic and version', () => {
    let x = 12345;
    for (let t = 0; t < 300; t++) {
      const len = 1 + (t * 37) % 200;
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
      if (t % 3 === 0 && len >= 3) {
        b.writeUInt16BE(0x5650, 0);
        b[2] = 1;
      }
      const d = new PatternsDecoder({ reference: ref });
      assert.doesNotThrow(() => d.push(b));
    }
  });

  it('truncates an abort reason to 1024 bytes', () => {
    const long = 'x'.repeat(5000);
    const r = new PatternsDecoder({ reference: ref }).push(encodeAbort(1, 2, long));
    assert.equal(r.error, undefined);
    assert.deepEqual(r.messages, [{ type: 'abort', origin: 2, reason: 'x'.repeat(1024) }]);
  });
});
