/**
 * The native record layer's codec (src/dataplane/record-layer.ts): records
 * seal and open in any chunking; a changed byte, a reordered, replayed or
 * cut record, a bad length, an end inside a record and a used-up key each
 * give their typed RecordLayerError, never a throw and never the plaintext of
 * a record that did not verify; the two directions never share a key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RecordLayerError } from '../../src/dataplane/errors.ts';
import { copyDirection, directionsFromMaterial, exporterFor } from '../../src/dataplane/record-keys.ts';
import {
  RECORD_HEADER_BYTES,
  RECORD_MAX_PLAIN,
  RECORD_TAG_BYTES,
  RecordOpener,
  RecordSealer,
  recordErrnoError,
  type RecordLimits,
} from '../../src/dataplane/record-layer.ts';
import { Rand } from '../fuzz/fuzz-kit.ts';
import { randomChunks } from '../fuzz/mutate.ts';

function pair(limits?: RecordLimits): { sealer: RecordSealer; opener: RecordOpener } {
  const material = randomBytes(exporterFor(1).bytes);
  const dialer = directionsFromMaterial(material, 'dialer');
  const listener = directionsFromMaterial(material, 'listener');
  return { sealer: new RecordSealer(dialer.tx, limits), opener: new RecordOpener(listener.rx, limits) };
}

function sealed(sealer: RecordSealer, ...chunks: Buffer[]): Buffer {
  const out = sealer.seal(chunks);
  assert.ok(Buffer.isBuffer(out), `sealed, not ${String(out)}`);
  return out;
}

test('the dialer sends with the key and IV the listener receives with, and the two directions differ', () => {
  const material = randomBytes(exporterFor(1).bytes);
  const d = directionsFromMaterial(material, 'dialer');
  const l = directionsFromMaterial(material, 'listener');
  assert.deepEqual([d.tx.key, d.tx.iv], [l.rx.key, l.rx.iv]);
  assert.deepEqual([d.rx.key, d.rx.iv], [l.tx.key, l.tx.iv]);
  assert.notDeepEqual(d.tx.key, d.rx.key);
  assert.notDeepEqual(d.tx.iv, d.rx.iv);
  assert.throws(() => directionsFromMaterial(material.subarray(1), 'dialer'), RangeError);
});

test('records open to the bytes sealed, in order, at every chunking; a burst is one record, a large write several', () => {
  const rand = new Rand(0x5ea1);
  const { sealer, opener } = pair();
  const messages = Array.from({ length: 40 }, (_, i) => rand.bytes(i === 7 ? RECORD_MAX_PLAIN * 2 + 5 : rand.range(1, 3000)));
  const burst = sealed(sealer, messages[0]!, messages[1]!, messages[2]!);
  assert.equal(burst.length, RECORD_HEADER_BYTES + messages[0]!.length + messages[1]!.length + messages[2]!.length + RECORD_TAG_BYTES, 'three chunks, one record');
  const stream = Buffer.concat([burst, ...messages.slice(3).map((m) => sealed(sealer, m))]);
  assert.equal(sealer.direction.seq, 1 + 37 + 2, 'the large write took three records');
  const got: Buffer[] = [];
  for (const chunk of randomChunks(rand, stream)) {
    const r = opener.push(chunk);
    assert.equal(r.error, undefined);
    got.push(...r.plain);
  }
  assert.deepEqual(Buffer.concat(got), Buffer.concat(messages));
  assert.equal(opener.pending.length, 0);
  assert.equal(opener.end(), undefined);
  // Byte by byte as well.
  const { sealer: s2, opener: o2 } = pair();
  const one = sealed(s2, Buffer.from('hello, byte by byte'));
  const out: Buffer[] = [];
  for (let i = 0; i < one.length; i++) out.push(...o2.push(one.subarray(i, i + 1)).plain);
  assert.equal(Buffer.concat(out).toString(), 'hello, byte by byte');
});

test('a changed byte anywhere in a record fails it with a typed error and gives none of its plaintext', () => {
  const { sealer } = pair();
  const record = sealed(sealer, Buffer.from('a frame that must not be altered'));
  for (let i = 0; i < record.length; i++) {
    const { opener } = pairFrom(sealer);
    const bad = Buffer.from(record);
    bad[i]! ^= 0x01;
    const r = opener.push(bad);
    assert.deepEqual(r.plain, [], `byte ${i}: no plaintext`);
    const code = r.error?.code ?? opener.end()?.code;
    assert.ok(code === 'VNET_ERR_RECORD_AUTH' || code === 'VNET_ERR_RECORD_TRUNCATED' || code === 'VNET_ERR_RECORD_LENGTH', `byte ${i}: ${code}`);
    if (i >= RECORD_HEADER_BYTES) assert.equal(code, 'VNET_ERR_RECORD_AUTH', `byte ${i}`);
  }
});

/** An opener for what `sealer` sealed, from its first record on (the sealer's key). */
function pairFrom(sealer: RecordSealer): { opener: RecordOpener } {
  return { opener: new RecordOpener({ ...copyDirection(sealer.direction), seq: 0, bytes: 0 }) };
}

test('a reordered, replayed or dropped record does not verify (the counter is in the nonce)', () => {
  for (const order of [[1, 0], [0, 0], [1]]) {
    const { sealer } = pair();
    const records = [sealed(sealer, Buffer.from('first')), sealed(sealer, Buffer.from('second'))];
    const { opener } = pairFrom(sealer);
    const r = opener.push(Buffer.concat(order.map((i) => records[i]!)));
    assert.equal(r.error?.code, 'VNET_ERR_RECORD_AUTH', `order ${order.join(',')}`);
    assert.ok(r.plain.length <= 1 && (r.plain.length === 0 || r.plain[0]!.toString() === 'first'));
  }
});

test('a length outside 17..max+16 is VNET_ERR_RECORD_LENGTH before any byte of the body is waited for', () => {
  for (const body of [0, 1, RECORD_TAG_BYTES, RECORD_MAX_PLAIN + RECORD_TAG_BYTES + 1, 0xffff_ffff]) {
    const { opener } = pair();
    const head = Buffer.alloc(RECORD_HEADER_BYTES);
    head.writeUInt32BE(body >>> 0, 0);
    assert.equal(opener.push(head).error?.code, 'VNET_ERR_RECORD_LENGTH', `length ${body}`);
    assert.equal(opener.push(Buffer.from('more')).error?.code, 'VNET_ERR_RECORD_LENGTH', 'stays failed');
  }
});

test('an end inside a record is VNET_ERR_RECORD_TRUNCATED; at a record boundary it is clean', () => {
  const { sealer } = pair();
  const record = sealed(sealer, Buffer.from('cut short'));
  for (const keep of [1, RECORD_HEADER_BYTES, record.length - 1]) {
    const { opener } = pairFrom(sealer);
    assert.deepEqual(opener.push(record.subarray(0, keep)), { plain: [], error: undefined });
    assert.equal(opener.end()?.code, 'VNET_ERR_RECORD_TRUNCATED');
  }
  const { opener } = pairFrom(sealer);
  opener.push(record);
  assert.equal(opener.end(), undefined);
});

test('a used-up key (records or bytes) is VNET_ERR_RECORD_LIMIT on both sides, and nothing more is sealed', () => {
  const { sealer, opener } = pair({ maxRecords: 3, maxBytes: 1 << 20 });
  const ok = [sealed(sealer, Buffer.from('1')), sealed(sealer, Buffer.from('2')), sealed(sealer, Buffer.from('3'))];
  const over = sealer.seal([Buffer.from('4')]);
  assert.ok(over instanceof RecordLayerError && over.code === 'VNET_ERR_RECORD_LIMIT');
  assert.equal(sealer.direction.seq, 3);
  assert.equal(opener.push(Buffer.concat(ok)).plain.length, 3);
  // A fourth record (sealed by a sealer without the limit, same key) is refused by the opener's limit.
  const unlimited = new RecordSealer({ ...sealer.direction, seq: 3, bytes: 3 });
  assert.equal(opener.push(sealed(unlimited, Buffer.from('4'))).error?.code, 'VNET_ERR_RECORD_LIMIT');
  const bytes = pair({ maxRecords: 100, maxBytes: 10 });
  sealed(bytes.sealer, Buffer.alloc(6));
  const tooMany = bytes.sealer.seal([Buffer.alloc(5)]);
  assert.ok(tooMany instanceof RecordLayerError && tooMany.code === 'VNET_ERR_RECORD_LIMIT');
});

test('random and mutated streams give plaintext or one typed error, never a throw', () => {
  const rand = new Rand(0xf00d);
  for (let i = 0; i < 2000; i++) {
    const { sealer, opener } = pair();
    let stream: Buffer = Buffer.concat(Array.from({ length: rand.range(1, 5) }, () => sealed(sealer, rand.bytes(rand.range(1, 200)))));
    if (i % 2 === 0) stream = rand.bytes(rand.size(600) + 1);
    else stream[rand.int(stream.length)]! ^= 1 << rand.int(8);
    const r = opener.push(stream);
    const err = r.error ?? opener.end();
    assert.ok(err === undefined || (err instanceof RecordLayerError && /^VNET_ERR_RECORD_/.test(err.code)), String(err));
  }
});

test("the forwarder's errnos map to the typed errors, one each", () => {
  assert.equal(recordErrnoError(34)?.code, 'VNET_ERR_RECORD_LENGTH');
  assert.equal(recordErrnoError(74)?.code, 'VNET_ERR_RECORD_AUTH');
  assert.equal(recordErrnoError(61)?.code, 'VNET_ERR_RECORD_TRUNCATED');
  assert.equal(recordErrnoError(75)?.code, 'VNET_ERR_RECORD_LIMIT');
  assert.equal(recordErrnoError(129)?.code, 'VNET_ERR_RECORD_KEY_UPDATE');
  assert.equal(recordErrnoError(104), undefined);
});
