/**
 * The NBD codec (src/host/nbd-codec.ts): every client message decoded from
 * hex fixtures, at every split and byte by byte; bad bytes as a typed error
 * after which nothing more is decoded; limits checked before buffering;
 * seeded random streams never throw; the server's messages' bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CMD, decodeGoData, encodeClientFlags, encodeExportNameReply, encodeGoData, encodeGreeting, encodeInfoBlockSize, encodeInfoExport, encodeOption,
  encodeOptionReply, encodeRequest, encodeServerEntry, encodeSimpleReply, NbdDecoder, type NbdClientMessage, OPT, REP,
} from '../../src/host/nbd-codec.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

// Client flags (fixed newstyle + no zeroes), GO "vm1" asking for block sizes, then a WRITE of 3 bytes and a READ.
const FLAGS = '00000003';
const GO = '49484156454f5054 00000007 0000000b 00000003 766d31 0001 0003';
const WRITE = '25609513 0001 0001 0000000000000007 0000000000001000 00000003 aabbcc';
const READ = '25609513 0000 0000 0000000000000008 0000000000000200 00000200';
const STREAM = hex(FLAGS + GO + WRITE + READ);

/** Decode `chunks` in order; the server switches to transmission after the option, as it does on GO. */
function decodeAll(chunks: Uint8Array[], limits?: ConstructorParameters<typeof NbdDecoder>[0]): NbdClientMessage[] {
  const d = new NbdDecoder(limits);
  const out: NbdClientMessage[] = [];
  for (const c of chunks) {
    d.push(c);
    for (let m = d.next(); m !== undefined; m = d.next()) {
      out.push(m.kind === 'request' && m.data !== undefined ? { ...m, data: m.data.slice() } : m.kind === 'option' ? { ...m, data: m.data.slice() } : m);
      if (m.kind === 'option') d.startTransmission();
    }
  }
  return out;
}

const EXPECTED: NbdClientMessage[] = [
  { kind: 'client-flags', flags: 3 },
  { kind: 'option', option: OPT.go, data: hex('00000003 766d31 0001 0003') },
  { kind: 'request', flags: 1, type: CMD.write, cookie: 7n, offset: 0x1000n, length: 3, data: hex('aabbcc') },
  { kind: 'request', flags: 0, type: CMD.read, cookie: 8n, offset: 0x200n, length: 0x200, data: undefined },
];

test('every client message from hex: flags, an option, a write with its bytes, a read', () => {
  assert.deepEqual(decodeAll([STREAM]), EXPECTED);
  assert.deepEqual(decodeGoData(hex('00000003 766d31 0001 0003')), { name: 'vm1', requests: [3] });
});

test('any chunking: split at every position, and byte by byte', () => {
  for (let i = 0; i <= STREAM.length; i++) assert.deepEqual(decodeAll([STREAM.subarray(0, i), STREAM.subarray(i)]), EXPECTED, `split at ${i}`);
  assert.deepEqual(decodeAll([...STREAM].map((b) => Uint8Array.of(b))), EXPECTED);
});

test('bad bytes: a typed error, then nothing more', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['unknown client flags', '00000007', /unknown client flags 0x7/],
    ['no fixed newstyle', '00000000', /fixed newstyle/],
    ['an option without IHAVEOPT', FLAGS + '4948415645000000 00000001 00000000', /IHAVEOPT/],
    ['a request with a wrong magic', FLAGS + GO + '25609514 0000 0000 0000000000000001 0000000000000000 00000010', /request magic/],
  ];
  for (const [what, bytes, message] of cases) {
    const out = decodeAll([hex(bytes), hex(READ)]);
    const last = out.at(-1)!;
    assert.equal(last.kind, 'error', what);
    assert.equal(last.kind === 'error' && last.error.code, 'VNET_ERR_HOST_NBD_PROTOCOL', what);
    assert.match(last.kind === 'error' ? last.error.message : '', message, what);
    assert.ok(!out.slice(0, -1).some((m) => m.kind === 'error'), what);
  }
});

test('limits are checked on the header, before the body is buffered', () => {
  const bigOption = decodeAll([hex(FLAGS + '49484156454f5054 00000001 00100000')], { maxOptionBytes: 4096 });
  const refused = bigOption.at(-1);
  assert.match(refused?.kind === 'error' ? refused.error.message : '', /1048576 bytes, more than 4096/);
  const d = new NbdDecoder({ maxPayloadBytes: 1024 });
  d.push(hex(FLAGS + GO));
  d.next(); d.next(); d.startTransmission();
  d.push(hex('25609513 0000 0001 0000000000000001 0000000000000000 00000401'));
  const m = d.next();
  assert.equal(m?.kind, 'error');
  assert.equal(d.buffered, 0, 'nothing kept of a refused stream');
  d.push(hex(READ));
  assert.equal(d.next(), undefined);
  // A read is not a payload: its length is the server's to judge (EINVAL), not the decoder's.
  const r = decodeAll([hex(FLAGS + GO + '25609513 0000 0000 0000000000000001 0000000000000000 ffffffff')], { maxPayloadBytes: 1024 });
  assert.equal(r.at(-1)?.kind, 'request');
});

test('malformed GO data is undefined, not a throw', () => {
  for (const bad of ['', '0000', '00000010 766d31 0000', '00000003 766d31 0002 0003', '00000001 ff 0000']) assert.equal(decodeGoData(hex(bad)), undefined, bad);
});

test('seeded random and mutated streams never throw and end in messages or one error', () => {
  let seed = 42;
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let i = 0; i < 2000; i++) {
    const bytes = i % 2 === 0 ? Uint8Array.from({ length: rand(200) }, () => rand(256)) : STREAM.slice();
    if (i % 2 === 1) for (let k = 0; k < 3; k++) bytes[rand(bytes.length)] = rand(256);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; ) { const n = 1 + rand(40); chunks.push(bytes.subarray(at, at + n)); at += n; }
    const out = decodeAll(chunks, { maxOptionBytes: 64, maxPayloadBytes: 64 });
    assert.ok(out.filter((m) => m.kind === 'error').length <= 1);
    if (out.some((m) => m.kind === 'error')) assert.equal(out.at(-1)?.kind, 'error');
  }
});

test('what the server sends, byte for byte', () => {
  assert.deepEqual(encodeGreeting(), hex('4e42444d41474943 49484156454f5054 0003'));
  assert.deepEqual(encodeOptionReply(OPT.go, REP.ack), hex('0003e889045565a9 00000007 00000001 00000000'));
  assert.deepEqual(encodeOptionReply(OPT.list, REP.server, encodeServerEntry('vm1')), hex('0003e889045565a9 00000003 00000002 00000007 00000003 766d31'));
  assert.deepEqual(encodeInfoExport(0x12345, 0x4d), hex('0000 0000000000012345 004d'));
  assert.deepEqual(encodeInfoBlockSize(1, 4096, 1 << 25), hex('0003 00000001 00001000 02000000'));
  assert.deepEqual(encodeExportNameReply(512, 0x4d, true), hex('0000000000000200 004d'));
  assert.equal(encodeExportNameReply(512, 0x4d, false).length, 134, '124 zero bytes for a client without NO_ZEROES');
  assert.deepEqual(encodeSimpleReply(22, 9n), hex('67446698 00000016 0000000000000009'));
  assert.deepEqual(encodeSimpleReply(0, 9n, hex('0102')), hex('67446698 00000000 0000000000000009 0102'));
  // The tests' client side round-trips through the decoder.
  assert.deepEqual(decodeAll([encodeClientFlags(3), encodeOption(OPT.go, encodeGoData('vm1', [3])), encodeRequest({ type: CMD.write, flags: 1, cookie: 7n, offset: 0x1000, length: 3, data: hex('aabbcc') }), encodeRequest({ type: CMD.read, cookie: 8n, offset: 0x200, length: 0x200 })]), EXPECTED);
});
