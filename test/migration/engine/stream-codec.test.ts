import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordDecoder } from '../../../src/migration/engine/stream-codec.ts';
import { encodeRecord, recordSize, decodeBody } from '../../../src/migration/engine/stream-record-codec.ts';
import { STREAM_VERSION, type MigrationRecord } from '../../../src/migration/engine/stream-records.ts';
import { MigrationDecodeError } from '../../../src/migration/errors.ts';
import { expandSynth } from '../../../src/migration/engine/content-model.ts';
import { computeByteDelta } from '../../../src/migration/engine/delta.ts';
import { Rng } from '../../../src/migration/guests/workload.ts';

function page(seed: number): Uint8Array {
  return expandSynth({ base: seed, ver: 0 });
}

function samples(): MigrationRecord[] {
  const a = page(5);
  const b = expandSynth({ base: 5, ver: 7 * 128 + 3 });
  const d = computeByteDelta(a, b);
  return [
    { t: 'hello', name: 'vm-1', pageCount: 1024, blockCount: 64, rule: 'smart-stop', keep: false, optimized: true },
    { t: 'iter', seq: 1, iteration: 2, phase: 0 },
    { t: 'full', seq: 2, space: 'mem', index: 7, content: a },
    { t: 'zero', seq: 3, space: 'disk', index: 9 },
    { t: 'ref', seq: 4, space: 'mem', index: 10, hi: 0xdeadbeef, lo: 0x01020304 },
    { t: 'delta', seq: 5, space: 'mem', index: 7, map: d.map, xor: d.xor, next: undefined },
    { t: 'device', seq: 6, state: new Uint8Array([1, 2, 3, 4, 5]) },
    { t: 'pause', seq: 7 },
    { t: 'done', seq: 8, memDigest: '0123456789abcdef', diskDigest: 'fedcba9876543210', deviceDigest: '00000000000000ff' },
    { t: 'abort', seq: 9, reason: 'link' },
    { t: 'ack', ok: true, code: '' },
    { t: 'ack', ok: false, code: 'VNET_ERR_MIGRATION_VERIFY' },
    { t: 'sync', seq: 10 },
    { t: 'disk-ack', seq: 0xfffffffe },
  ];
}

function normalise(r: MigrationRecord): unknown {
  const o: Record<string, unknown> = { ...r };
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (v instanceof Uint8Array || v instanceof Uint32Array) o[k] = Array.from(v);
  }
  return o;
}

test('every record kind round-trips, and recordSize is the encoded length', () => {
  for (const r of samples()) {
    const bytes = encodeRecord(r);
    assert.equal(bytes.length, recordSize(r), r.t);
    const dec = new RecordDecoder();
    const out = dec.push(bytes);
    assert.equal(out.error, undefined);
    assert.deepEqual(out.records.map(normalise), [normalise(r)]);
  }
});

test('a zero record matches its hex fixture', () => {
  const hex = encodeRecord({ t: 'zero', seq: 1, space: 'disk', index: 2 }).toString('hex');
  // length 9 | kind 0x11|0x80 | seq 1 | index 2
  assert.equal(hex, '00000009' + '91' + '00000001' + '00000002');
});

test('the decoder accepts the stream split at every byte position', () => {
  const recs = samples();
  const stream = Buffer.concat(recs.map((r) => encodeRecord(r)));
  const want = recs.map(normalise);
  for (let cut = 0; cut <= stream.length; cut++) {
    const dec = new RecordDecoder();
    const got = [...dec.push(stream.subarray(0, cut)).records, ...dec.push(stream.subarray(cut)).records];
    assert.deepEqual(got.map(normalise), want, `split at ${cut}`);
  }
  // and byte by byte
  const dec = new RecordDecoder();
  const got: MigrationRecord[] = [];
  for (let i = 0; i < stream.length; i++) got.push(...dec.push(stream.subarray(i, i + 1)).records);
  assert.deepEqual(got.map(normalise), want);
});

test('work is linear in the bytes pushed: a large stream fed 1 byte at a time copies each byte at most once', () => {
  const recs: MigrationRecord[] = [];
  for (let i = 0; i < 256; i++) recs.push({ t: 'full', seq: i + 1, space: 'mem', index: i, content: page(i + 1) });
  recs.push({ t: 'device', seq: 257, state: new Uint8Array(512 * 1024).fill(7) });
  const stream = Buffer.concat(recs.map((r) => encodeRecord(r)));
  const dec = new RecordDecoder();
  let decoded = 0;
  let held = 0;
  for (let i = 0; i < stream.length; i++) {
    const r = dec.push(stream.subarray(i, i + 1));
    assert.equal(r.error, undefined);
    decoded += r.records.length;
    held = Math.max(held, dec.buffered);
  }
  assert.equal(decoded, recs.length);
  assert.equal(dec.buffered, 0);
  // A decoder that re-joined what it holds on every push would copy ~ (record size)^2 / 2 bytes per record here.
  assert.ok(dec.copiedBytes <= stream.length, `copied ${dec.copiedBytes} bytes for a ${stream.length}-byte stream`);
  assert.ok(held <= 4 + 5 + 512 * 1024, `held ${held} bytes`);
  // Whole records inside one chunk are decoded in place: nothing is copied into the decoder.
  const whole = new RecordDecoder();
  assert.equal(whole.push(stream).records.length, recs.length);
  assert.equal(whole.copiedBytes, 0);
});

test('random bytes never throw and end in a typed error with a stable code', () => {
  const rng = new Rng(42);
  let errors = 0;
  for (let n = 0; n < 2000; n++) {
    const len = 1 + rng.below(64);
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = rng.below(256);
    if (n % 2 === 0) { b[0] = 0; b[1] = 0; b[2] = 0; b[3] = Math.max(1, len - 4); } // plausible lengths
    const dec = new RecordDecoder();
    const r = dec.push(b);
    if (r.error !== undefined) {
      errors++;
      assert.match(r.error.code, /^VNET_ERR_MIGRATION_/);
      assert.ok(r.error instanceof MigrationDecodeError); // the version error is one of them
      // sticky: later bytes decode nothing
      assert.equal(dec.push(encodeRecord({ t: 'pause', seq: 1 })).records.length, 0);
    }
  }
  assert.ok(errors > 500, `only ${errors} errors from random input`);
});

test('lengths beyond the limit, bad magic, unknown kinds and versions are refused by code', () => {
  const over = Buffer.from([0xff, 0xff, 0xff, 0xff]);
  assert.equal(new RecordDecoder().push(over).error?.code, 'VNET_ERR_MIGRATION_RECORD_LENGTH');
  assert.equal(new RecordDecoder({ maxRecord: 100 }).push(encodeRecord(samples()[2] as MigrationRecord)).error?.code, 'VNET_ERR_MIGRATION_RECORD_LENGTH');
  const hello = encodeRecord(samples()[0] as MigrationRecord);
  const badMagic = Buffer.from(hello);
  badMagic[5] = 0;
  assert.equal(new RecordDecoder().push(badMagic).error?.code, 'VNET_ERR_MIGRATION_MAGIC');
  const badVersion = Buffer.from(hello);
  badVersion.writeUInt16BE(STREAM_VERSION + 1, 9);
  assert.equal(new RecordDecoder().push(badVersion).error?.code, 'VNET_ERR_MIGRATION_VERSION');
  assert.equal(new RecordDecoder().push(Buffer.from([0, 0, 0, 1, 0x7e])).error?.code, 'VNET_ERR_MIGRATION_RECORD_KIND');
  assert.equal(new RecordDecoder().push(Buffer.from([0, 0, 0, 5, 0xa1, 0, 0, 0, 1])).error?.code, 'VNET_ERR_MIGRATION_RECORD_KIND');
  // a delta whose bytes do not match its chunk map
  const d = encodeRecord(samples()[5] as MigrationRecord);
  assert.equal(decodeBody(Buffer.from(d.subarray(4, d.length - 1))) instanceof MigrationDecodeError, true);
});

test('version 2: sync and disk-ack records match their hex fixtures; wrong sizes are refused; a version 1 hello is still accepted', () => {
  // length 5 | kind 0x24 | seq 7
  assert.equal(encodeRecord({ t: 'sync', seq: 7 }).toString('hex'), '00000005' + '24' + '00000007');
  // length 5 | kind 0x31 | seq 0x0102
  assert.equal(encodeRecord({ t: 'disk-ack', seq: 0x102 }).toString('hex'), '00000005' + '31' + '00000102');
  assert.equal(new RecordDecoder().push(Buffer.from('0000000431000001', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_SIZE');
  assert.equal(new RecordDecoder().push(Buffer.from('000000062400000001ff', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_SIZE');
  // neither can name a disk block
  assert.equal(new RecordDecoder().push(Buffer.from('00000005b100000001', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_KIND');
  const v1 = Buffer.from(encodeRecord(samples()[0] as MigrationRecord));
  v1.writeUInt16BE(1, 9);
  const r = new RecordDecoder().push(v1);
  assert.equal(r.error, undefined);
  assert.equal(r.records[0]?.t, 'hello');
  const v0 = Buffer.from(v1);
  v0.writeUInt16BE(0, 9);
  assert.equal(new RecordDecoder().push(v0).error?.code, 'VNET_ERR_MIGRATION_VERSION');
});

test('version 3: chunk, chunk-query and chunk-held records round-trip and are bounded; a plain stream still says version 2', () => {
  const D = `${'0123456789abcdef'}-${'ab'.repeat(32)}`;
  const recs: MigrationRecord[] = [
    { t: 'chunk', seq: 9, first: 1024, count: 1024, digest: D },
    { t: 'chunk-query', digests: [D, D.replace('a', 'c')] },
    { t: 'chunk-held', held: Uint8Array.of(0b10) },
  ];
  for (const r of recs) {
    const bytes = encodeRecord(r);
    assert.equal(bytes.length, recordSize(r), r.t);
    const d = new RecordDecoder().push(bytes);
    assert.equal(d.error, undefined, r.t);
    assert.deepEqual(d.records, [r]);
  }
  // length 98 (kind, seq, first, count, 81-byte digest)
  assert.equal(encodeRecord(recs[0]!).subarray(0, 17).toString('hex'), '0000005e' + '25' + '00000009' + '00000400' + '00000400');
  const bad = (hex: string | Buffer, code: string): void => {
    const r = new RecordDecoder().push(typeof hex === 'string' ? Buffer.from(hex, 'hex') : hex);
    assert.equal(r.error?.code, code);
  };
  const notDigest = encodeRecord(recs[0]!);
  notDigest.write('Z', 20, 'latin1');
  bad(notDigest, 'VNET_ERR_MIGRATION_RECORD_SIZE');
  const noBlocks = encodeRecord({ t: 'chunk', seq: 1, first: 0, count: 0, digest: D });
  bad(noBlocks, 'VNET_ERR_MIGRATION_RECORD_SIZE');
  // a query of more digests than allowed, refused from its count alone
  bad('00000005' + '26' + '00002711', 'VNET_ERR_MIGRATION_RECORD_SIZE');
  bad('00000006' + '32' + '00000002' + 'ff', 'VNET_ERR_MIGRATION_RECORD_SIZE');
  // the hello: version 2 without images, 3 with; the images flag in a version 2 hello is refused
  const hello = { t: 'hello', name: 'g', pageCount: 1, blockCount: 1, rule: 'xen', keep: false, optimized: true } as const;
  assert.equal(encodeRecord(hello).readUInt16BE(9), 2);
  const v3 = encodeRecord({ ...hello, images: true });
  assert.equal(v3.readUInt16BE(9), 3);
  assert.deepEqual(new RecordDecoder().push(v3).records, [{ ...hello, images: true }]);
  v3.writeUInt16BE(2, 9);
  bad(v3, 'VNET_ERR_MIGRATION_RECORD_FLAGS');
});

test('version 3: a disk-image record (manifest JSON, own-chunk bitmap) round-trips; bad lengths are refused, never thrown', () => {
  const rec: MigrationRecord = { t: 'disk-image', manifest: JSON.stringify({ imageId: 'débian', version: 2 }), own: Uint8Array.of(0b101, 0) };
  const bytes = encodeRecord(rec);
  assert.equal(bytes.length, recordSize(rec));
  assert.equal(bytes[4], 0x27);
  for (let split = 1; split < bytes.length; split++) {
    const dec = new RecordDecoder();
    const a = dec.push(bytes.subarray(0, split));
    const b = dec.push(bytes.subarray(split));
    assert.deepEqual([...a.records, ...b.records], [rec], `split at ${split}`);
  }
  const bad = (hex: string, code: string): void => assert.equal(new RecordDecoder().push(Buffer.from(hex, 'hex')).error?.code, code, hex);
  bad('00000003' + '27' + '0000', 'VNET_ERR_MIGRATION_RECORD_SIZE'); // too short
  bad('00000009' + '27' + '000f4241' + '00000000', 'VNET_ERR_MIGRATION_RECORD_SIZE'); // manifest over the bound, from its length alone
  bad('0000000b' + '27' + '00000002' + '7b7d' + '00000002', 'VNET_ERR_MIGRATION_RECORD_SIZE'); // bitmap longer than the record
  bad('0000000b' + '27' + '00000002' + '7b7d' + '000004e3', 'VNET_ERR_MIGRATION_RECORD_SIZE'); // bitmap over MAX_CHUNK_QUERY bits
});

test('version 4: mark and applied records match their hex fixtures; wrong sizes and a disk bit are refused; the hello says 4 only with catch-up; older hellos are still accepted', () => {
  assert.equal(STREAM_VERSION, 4);
  // length 5 | kind 0x28 | seq 9
  assert.equal(encodeRecord({ t: 'mark', seq: 9 }).toString('hex'), '00000005' + '28' + '00000009');
  // length 5 | kind 0x33 | seq 0x0203
  assert.equal(encodeRecord({ t: 'applied', seq: 0x203 }).toString('hex'), '00000005' + '33' + '00000203');
  assert.deepEqual(new RecordDecoder().push(Buffer.from('000000052800000009', 'hex')).records, [{ t: 'mark', seq: 9 }]);
  assert.deepEqual(new RecordDecoder().push(Buffer.from('000000053300000203', 'hex')).records, [{ t: 'applied', seq: 0x203 }]);
  assert.equal(new RecordDecoder().push(Buffer.from('0000000428000001', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_SIZE');
  assert.equal(new RecordDecoder().push(Buffer.from('00000006330000000100', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_SIZE');
  assert.equal(new RecordDecoder().push(Buffer.from('00000005a800000001', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_KIND');
  assert.equal(new RecordDecoder().push(Buffer.from('00000005b300000001', 'hex')).error?.code, 'VNET_ERR_MIGRATION_RECORD_KIND');
  const hello = { t: 'hello', name: 'g', pageCount: 1, blockCount: 1, rule: 'xen', keep: false, optimized: true } as const;
  const v4 = encodeRecord({ ...hello, catchUp: true });
  assert.equal(v4.readUInt16BE(9), 4);
  assert.deepEqual(new RecordDecoder().push(v4).records, [{ ...hello, catchUp: true }]);
  assert.equal(encodeRecord({ ...hello, images: true, catchUp: true }).readUInt16BE(9), 4);
  // the catch-up flag in an older hello is refused
  v4.writeUInt16BE(3, 9);
  assert.equal(new RecordDecoder().push(v4).error?.code, 'VNET_ERR_MIGRATION_RECORD_FLAGS');
  for (const version of [1, 2, 3]) {
    const old = Buffer.from(encodeRecord(samples()[0] as MigrationRecord));
    old.writeUInt16BE(version, 9);
    assert.equal(new RecordDecoder().push(old).error, undefined, `version ${version}`);
  }
});
