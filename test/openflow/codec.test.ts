import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OpenFlowDecoder, type OpenFlowSink } from '../../src/openflow/decoder.ts';
import { EncodeError, type OpenFlowDecodeError } from '../../src/openflow/errors.ts';
import { decodeMessage, encodeMessage } from '../../src/openflow/message-codec.ts';
import { flowMod, type OfMessage } from '../../src/openflow/messages.ts';
import { FLOW_ADD, SAMPLES } from './samples.ts';

/** mulberry32: a seeded PRNG, so every random case can be replayed. */
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

class Recorder implements OpenFlowSink {
  messages: OfMessage[] = [];
  errors: OpenFlowDecodeError[] = [];
  onMessage(m: OfMessage): void {
    this.messages.push(m);
  }
  onDecodeError(err: OpenFlowDecodeError): void {
    this.errors.push(err);
  }
}

function decodeChunks(chunks: readonly Buffer[]): Recorder {
  const rec = new Recorder();
  const dec = new OpenFlowDecoder(rec);
  for (const c of chunks) dec.push(c);
  return rec;
}

const STREAM = Buffer.concat(SAMPLES.map(encodeMessage));

describe('OpenFlow 1.3 codec: round trips', () => {
  for (const m of SAMPLES) {
    const label = m.type === 'multipart-request' || m.type === 'multipart-reply' ? `${m.type} ${m.body.kind}` : m.type === 'flow-mod' ? `flow-mod ${m.command}` : m.type;
    it(`${label} decodes to what was encoded`, () => {
      const bytes = encodeMessage(m);
      assert.equal(bytes[0], 0x04);
      assert.equal(bytes.readUInt16BE(2), bytes.length, 'the header length is the message length');
      assert.deepEqual(decodeMessage(bytes), m);
    });
  }

  it('encodes HELLO with a version bitmap exactly as OpenFlow 1.3 §7.5.1 lays it out', () => {
    assert.equal(encodeMessage({ type: 'hello', xid: 1, versions: [1, 4] }).toString('hex'), '04000010000000010001000800000012');
    assert.deepEqual(decodeMessage(Buffer.from('0100000800000007', 'hex')), { type: 'hello', xid: 7, versions: [1] }, 'a 1.0 hello without a bitmap offers its header version');
  });

  it('encodes messages that outgrow the encoder\'s first buffer, whichever field lands on the boundary', () => {
    const reply = SAMPLES.find((m) => m.type === 'multipart-reply' && m.body.kind === 'flow')!;
    const flow = reply.type === 'multipart-reply' && reply.body.kind === 'flow' ? reply.body.flows[0]! : undefined;
    for (let n = 1; n <= 40; n++) {
      for (let pad = 0; pad < 8; pad++) {
        const flows = Array.from({ length: n }, (_, i) => ({ ...flow!, cookie: BigInt(i), match: { ...flow!.match, ...(i % 2 ? { inPort: i } : {}) } }));
        const m: OfMessage = { type: 'multipart-reply', xid: pad, flags: 0, body: { kind: 'flow', flows } };
        const echo: OfMessage = { type: 'echo-request', xid: 1, data: Buffer.alloc(n * 13 + pad, n) };
        assert.deepEqual(decodeMessage(encodeMessage(m)), m);
        assert.deepEqual(decodeMessage(encodeMessage(echo)), echo);
      }
    }
  });

  it('keeps a match in the order given, each field after its prerequisite', () => {
    const fields = (m: OfMessage): number[] => {
      const bytes = encodeMessage(m);
      const out: number[] = [];
      for (let at = 52; at < 48 + bytes.readUInt16BE(50); at += 4 + bytes[at + 3]!) out.push(bytes[at + 2]! >> 1);
      return out;
    };
    // tcp_dst (14) needs ip_proto (10), which needs eth_type (5); tunnel_id (38) needs nothing
    assert.deepEqual(fields(flowMod({ match: { tunnelId: 1n, tcpDst: 80, ipProto: 6, ethType: 0x0800, inPort: 1 } })), [38, 5, 0, 10, 14]);
    const decoded = decodeMessage(encodeMessage(flowMod({ match: { ethSrc: '02:00:00:00:00:01', inPort: 1 } })));
    assert.ok(!(decoded instanceof Error) && decoded.type === 'flow-mod');
    assert.deepEqual(Object.keys(decoded.match), ['ethSrc', 'inPort'], 'decoding keeps the wire order');
    assert.deepEqual(fields(decoded), [4, 0]);
  });

  it('pads a match to 8 bytes and counts its length without the padding', () => {
    const bytes = encodeMessage(flowMod({ match: { inPort: 1 } }));
    // header 8 + flow-mod fields 40, then ofp_match: type 1, length 12 (4 + one 8-byte TLV), 4 bytes of padding
    assert.equal(bytes.subarray(48, 52).toString('hex'), '0001000c');
    assert.equal(bytes.subarray(52, 64).toString('hex'), '800000040000000100000000');
    assert.equal(bytes.length, 64);
  });
});

describe('OpenFlow 1.3 codec: incremental decoding', () => {
  it('decodes the same messages at every split of a stream of every type', () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const rec = decodeChunks([STREAM.subarray(0, cut), STREAM.subarray(cut)]);
      assert.deepEqual(rec.errors, []);
      assert.equal(rec.messages.length, SAMPLES.length, `cut at ${cut}`);
    }
    assert.deepEqual(decodeChunks([STREAM]).messages, SAMPLES);
  });

  it('decodes byte by byte, and messages own their bytes', () => {
    const copy = Buffer.from(STREAM);
    const rec = decodeChunks([...copy].map((b) => Buffer.from([b])));
    const whole = decodeChunks([copy]);
    copy.fill(0);
    assert.deepEqual(rec.messages, SAMPLES);
    assert.deepEqual(whole.messages, SAMPLES, 'zeroing the chunk after decoding changes nothing');
  });

  it('decodes seeded random chunkings of the stream', () => {
    const rand = prng(12);
    for (let round = 0; round < 300; round++) {
      const chunks: Buffer[] = [];
      for (let off = 0; off < STREAM.length; ) {
        const n = 1 + Math.floor(rand() * 200);
        chunks.push(STREAM.subarray(off, off + n));
        off += n;
      }
      assert.deepEqual(decodeChunks(chunks).messages, SAMPLES);
    }
  });
});

describe('OpenFlow 1.3 codec: bad input', () => {
  const cases: [string, string, string][] = [
    ['a length under the header', '0400000400000001', 'VNET_ERR_OF_BAD_LENGTH'],
    ['a version other than 1.3 after HELLO', '0105000800000001', 'VNET_ERR_OF_BAD_VERSION'],
    ['an unknown type', '041e000800000001', 'VNET_ERR_OF_UNKNOWN_TYPE'],
    ['a FEATURES_REPLY cut short', '0406000c0000000100000000', 'VNET_ERR_OF_MALFORMED'],
    ['a FLOW_MOD whose match is not OXM', '040e0040000000010000000000000000000000000000000000000000000080000000000000000000000000000000000000000000000000000000000000000000', 'VNET_ERR_OF_MALFORMED'],
    ['a BARRIER_REPLY with a body', '0415000c0000000100000000', 'VNET_ERR_OF_MALFORMED'],
    ['a ROLE_REQUEST with an unknown role', '0418001800000001000000090000000000000000000000000', 'VNET_ERR_OF_MALFORMED'],
  ];
  for (const [what, hex, code] of cases) {
    it(`${what} is a ${code} and stops the decoder`, () => {
      const rec = new Recorder();
      const dec = new OpenFlowDecoder(rec);
      const bytes = Buffer.from(hex.length % 2 ? hex.slice(0, -1) : hex, 'hex');
      assert.equal(dec.push(Buffer.concat([bytes, encodeMessage({ type: 'barrier-request', xid: 9 })])), false);
      assert.equal(rec.errors.length, 1);
      assert.equal(rec.errors[0]!.code, code, rec.errors[0]!.message);
      assert.deepEqual(rec.messages, [], 'nothing after the bad message is decoded');
      assert.equal(dec.push(encodeMessage({ type: 'barrier-request', xid: 10 })), false, 'a failed decoder refuses input');
    });
  }

  it('refuses a message over the configured limit from its header alone', () => {
    const rec = new Recorder();
    const dec = new OpenFlowDecoder(rec, { maxMessageBytes: 64 });
    dec.push(encodeMessage(FLOW_ADD).subarray(0, 8));
    assert.equal(rec.errors[0]?.code, 'VNET_ERR_OF_BAD_LENGTH');
    assert.equal(dec.bufferedBytes, 0, 'no body byte was buffered');
  });

  it('names the bad field when encoding', () => {
    const bad: [OfMessage, RegExp][] = [
      [flowMod({ match: { ethSrc: '02:00:00:00:00' } }), /ethSrc must be a MAC/],
      [flowMod({ match: { inPort: { value: 1, mask: 1 } } as never }), /inPort cannot be masked/],
      [flowMod({ match: { tcpDst: 70000 } }), /tcpDst must be an integer in 0..65535/],
      [flowMod({ match: { ipv6Src: 'fd00::1::2' } }), /ipv6Src must be an IPv6 address/],
      [flowMod({ priority: -1 }), /priority must be an integer/],
      [flowMod({ command: 'replace' as never }), /flow-mod command must be one of/],
      [flowMod({ instructions: [{ type: 'apply-actions', actions: [{ type: 'set-field', field: { ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02' } }] }] }), /exactly one field/],
      [{ type: 'echo-request', xid: 1, data: Buffer.alloc(70_000) }, /over the 65535-byte OpenFlow limit/],
    ];
    for (const [m, re] of bad) assert.throws(() => encodeMessage(m), (e: unknown) => e instanceof EncodeError && re.test(e.message));
  });
});

describe('OpenFlow 1.3 codec: fuzz', () => {
  it('is total on 100 000 random and mutated messages: a message or one typed error, never a throw', () => {
    const rand = prng(0x0f13);
    const encoded = SAMPLES.map(encodeMessage);
    let decoded = 0;
    let errors = 0;
    for (let i = 0; i < 100_000; i++) {
      let bytes: Buffer;
      const kind = i % 4;
      if (kind === 0) {
        // random bytes behind a plausible header: version 4, any type, a consistent length
        const len = 8 + Math.floor(rand() * 120);
        bytes = Buffer.alloc(len);
        for (let j = 0; j < len; j++) bytes[j] = Math.floor(rand() * 256);
        bytes[0] = 4;
        bytes[1] = Math.floor(rand() * 30);
        bytes.writeUInt16BE(len, 2);
      } else {
        bytes = Buffer.from(encoded[Math.floor(rand() * encoded.length)]!);
        const flips = 1 + Math.floor(rand() * 4);
        for (let f = 0; f < flips; f++) bytes[8 + Math.floor(rand() * (bytes.length - 8))] = Math.floor(rand() * 256);
        if (kind === 2) bytes = bytes.subarray(0, 8 + Math.floor(rand() * (bytes.length - 8)));
        if (kind === 3) bytes = Buffer.concat([bytes, Buffer.alloc(Math.floor(rand() * 16), Math.floor(rand() * 256))]);
        if (kind !== 1) bytes.writeUInt16BE(bytes.length, 2);
      }
      const rec = new Recorder();
      const dec = new OpenFlowDecoder(rec);
      const cut = Math.floor(rand() * bytes.length);
      dec.push(bytes.subarray(0, cut));
      dec.push(bytes.subarray(cut));
      assert.ok(rec.messages.length + rec.errors.length <= 1);
      if (rec.errors.length === 1) {
        errors++;
        assert.match(rec.errors[0]!.code, /^VNET_ERR_OF_/);
      } else if (rec.messages.length === 1) {
        decoded++;
        // what decodes re-encodes to a message that decodes to the same thing (or is refused by name)
        try {
          assert.deepEqual(decodeMessage(encodeMessage(rec.messages[0]!)), rec.messages[0]);
        } catch (err) {
          assert.ok(err instanceof EncodeError, `re-encoding ${rec.messages[0]!.type}: ${String(err)}`);
        }
      }
    }
    assert.ok(decoded > 1000 && errors > 1000, `both outcomes exercised: ${decoded} decoded, ${errors} errors`);
  });
});
