/**
 * Rekeying in place (vnet-records/2; record-keys.ts, record-layer.ts):
 *
 *   - the key schedule is HKDF-Expand-Label over SHA-256 (checked against
 *     RFC 5869's test vector and a record sealed by an independent
 *     implementation of the format here);
 *   - a sender past its threshold (records or bytes) sends a KEY_UPDATE under
 *     its current key and seals under the next generation from counter 0; the
 *     receiver follows, in any chunking, and the old secret and key are zeroed;
 *   - a KEY_UPDATE of the wrong size or generation is VNET_ERR_RECORD_KEY_UPDATE,
 *     a replayed or dropped one fails the next record's tag
 *     (VNET_ERR_RECORD_AUTH), a /1 receiver reads one as a bad length, and the
 *     hard limit still stops a sender that never reaches its threshold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyDirection, directionsFromMaterial, exporterFor, hkdfExpand, hkdfExpandLabel, nextGeneration } from '../../src/dataplane/record-keys.ts';
import { KEY_UPDATE_PLAIN, RECORD_TAG_BYTES, RecordOpener, RecordSealer, rekeyProblems, type RekeyThresholds } from '../../src/dataplane/record-layer.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { RecordLayerError } from '../../src/dataplane/errors.ts';
import { Rand } from '../fuzz/fuzz-kit.ts';
import { randomChunks } from '../fuzz/mutate.ts';
import { generationBytes, rawRecord } from './record-fixtures.ts';

const DEFAULT_THRESHOLDS: RekeyThresholds = { records: 2 ** 40, bytes: 2 ** 40, ageMs: 0 };

function v2(rekey: RekeyThresholds): { sealer: RecordSealer; opener: RecordOpener } {
  const material = randomBytes(exporterFor(2).bytes);
  const dialer = directionsFromMaterial(material, 'dialer', 2);
  const listener = directionsFromMaterial(material, 'listener', 2);
  return { sealer: new RecordSealer(dialer.tx, undefined, rekey), opener: new RecordOpener(listener.rx) };
}

function sealed(sealer: RecordSealer, ...chunks: Buffer[]): Buffer {
  const out = sealer.seal(chunks);
  assert.ok(Buffer.isBuffer(out), `sealed, not ${String(out)}`);
  return out;
}

test('HKDF-Expand is RFC 5869\'s (test case 1), and HKDF-Expand-Label builds TLS 1.3\'s HkdfLabel with the "vnet " prefix', () => {
  const prk = Buffer.from('077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5', 'hex');
  const info = Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex');
  assert.equal(hkdfExpand(prk, info, 32).toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf');
  const secret = Buffer.alloc(32, 7);
  const label = Buffer.concat([Buffer.from([0, 12, 8]), Buffer.from('vnet key'), Buffer.from([0])]);
  assert.deepEqual(hkdfExpandLabel(secret, 'key', 12), hkdfExpand(secret, label, 12));
  assert.throws(() => hkdfExpandLabel(secret, 'key', 33), RangeError);
});

test('vnet-records/2 material: each direction a secret, the dialer sends with what the listener receives with, key and IV derived', () => {
  const material = randomBytes(exporterFor(2).bytes);
  const d = directionsFromMaterial(material, 'dialer', 2);
  const l = directionsFromMaterial(material, 'listener', 2);
  assert.deepEqual([d.tx.secret, d.tx.key, d.tx.iv], [l.rx.secret, l.rx.key, l.rx.iv]);
  assert.deepEqual(d.tx.secret, material.subarray(0, 32));
  assert.deepEqual(d.tx.key, hkdfExpandLabel(material.subarray(0, 32), 'key', 32));
  assert.deepEqual(d.tx.iv, hkdfExpandLabel(material.subarray(0, 32), 'iv', 12));
  assert.notDeepEqual(d.tx.key, d.rx.key);
  assert.throws(() => directionsFromMaterial(material, 'dialer', 1), RangeError);
  const before = copyDirection(d.tx);
  const oldSecret = d.tx.secret!;
  const oldKey = d.tx.key;
  d.tx.seq = 9;
  nextGeneration(d.tx);
  assert.deepEqual(d.tx.secret, hkdfExpandLabel(before.secret!, 'traffic upd', 32));
  assert.deepEqual(d.tx.key, hkdfExpandLabel(d.tx.secret!, 'key', 32));
  assert.deepEqual([d.tx.generation, d.tx.seq, d.tx.bytes], [1, 0, 0]);
  assert.ok(oldSecret.equals(Buffer.alloc(32)) && oldKey.equals(Buffer.alloc(32)), 'the old secret and key are zeroed');
  assert.throws(() => nextGeneration(directionsFromMaterial(randomBytes(exporterFor(1).bytes), 'dialer').tx), RangeError);
});

test('past its threshold a sender sends KEY_UPDATE and seals under the next key from counter 0; the receiver follows in any chunking', () => {
  const rand = new Rand(0x4e4b);
  for (const rekey of [{ records: 3, bytes: 2 ** 40 }, { records: 2 ** 40, bytes: 1000 }, { records: 1, bytes: 1 }]) {
    const { sealer, opener } = v2(rekey);
    const messages = Array.from({ length: 60 }, () => rand.bytes(rand.range(1, 700)));
    const stream = Buffer.concat(messages.map((m) => sealed(sealer, m)));
    const got: Buffer[] = [];
    for (const chunk of randomChunks(rand, stream)) {
      const r = opener.push(chunk);
      assert.equal(r.error, undefined, r.error?.message);
      got.push(...r.plain);
    }
    assert.deepEqual(Buffer.concat(got), Buffer.concat(messages), `${JSON.stringify(rekey)}: the plaintext, no KEY_UPDATE in it`);
    assert.ok(sealer.direction.generation >= 10, `${JSON.stringify(rekey)}: ${sealer.direction.generation} key updates`);
    assert.deepEqual([opener.direction.generation, opener.direction.seq, opener.direction.key], [sealer.direction.generation, sealer.direction.seq, sealer.direction.key]);
    if (rekey.records === 3) assert.equal(sealer.direction.generation, Math.floor((60 - 1) / 3), 'one update per 3 records (the update is the 4th under a key)');
  }
});

test('a record of the next generation opens with the key derived here (independent of RecordSealer)', () => {
  const { sealer, opener } = v2({ records: 1, bytes: 2 ** 40 });
  const first = sealed(sealer, Buffer.from('gen 0'));
  const next = copyDirection(sealer.direction); // generation 0, counter 1: the next seal updates first
  const update = rawRecord(next, 1, generationBytes(1));
  nextGeneration(next);
  const stream = Buffer.concat([first, update, rawRecord(next, 0, Buffer.from('gen 1 by hand'))]);
  assert.deepEqual(stream, Buffer.concat([first, sealed(sealer, Buffer.from('gen 1 by hand'))]), 'the same bytes as RecordSealer');
  const r = opener.push(stream);
  assert.deepEqual(r.plain.map(String), ['gen 0', 'gen 1 by hand']);
});

test('a KEY_UPDATE of the wrong size or generation is VNET_ERR_RECORD_KEY_UPDATE; nothing after it is used', () => {
  for (const [plain, why] of [[generationBytes(2), 'skips a generation'], [generationBytes(0), 'names the current one'], [Buffer.alloc(9), 'is 9 bytes']] as const) {
    const { sealer, opener } = v2(DEFAULT_THRESHOLDS);
    const d = copyDirection(sealer.direction);
    const r = opener.push(Buffer.concat([rawRecord(d, 1, plain), sealed(sealer, Buffer.from('after'))]));
    assert.equal(r.error?.code, 'VNET_ERR_RECORD_KEY_UPDATE', why);
    assert.deepEqual(r.plain, [], why);
    assert.equal(opener.direction.generation, 0, `${why}: the receive key stays`);
  }
});

test('a replayed, dropped or reflected KEY_UPDATE fails the next record (VNET_ERR_RECORD_AUTH)', () => {
  const { sealer } = v2({ records: 1, bytes: 2 ** 40 });
  const start = copyDirection(sealer.direction);
  const r0 = sealed(sealer, Buffer.from('zero'));
  const r1 = sealed(sealer, Buffer.from('one')); // KEY_UPDATE + data
  const update = r1.subarray(0, 4 + KEY_UPDATE_PLAIN + RECORD_TAG_BYTES);
  const data1 = r1.subarray(update.length);
  const cases: Array<[string, Buffer]> = [
    ['replayed', Buffer.concat([r0, update, update, data1])],
    ['dropped', Buffer.concat([r0, data1])],
    ['moved earlier', Buffer.concat([update, r0, data1])],
  ];
  for (const [why, stream] of cases) {
    const opener = new RecordOpener(copyDirection(start));
    const r = opener.push(stream);
    assert.equal(r.error?.code, 'VNET_ERR_RECORD_AUTH', why);
    assert.ok(r.plain.every((p) => p.toString() === 'zero'), `${why}: only what verified`);
  }
  // Reflected: our own KEY_UPDATE sent back to us is under our send key, not our receive key.
  const material = randomBytes(exporterFor(2).bytes);
  const ours = directionsFromMaterial(material, 'dialer', 2);
  const mine = new RecordSealer(copyDirection(ours.tx), undefined, { records: 1, bytes: 2 ** 40 });
  sealed(mine, Buffer.from('x'));
  const reflected = sealed(mine, Buffer.from('y')).subarray(0, 4 + KEY_UPDATE_PLAIN + RECORD_TAG_BYTES);
  assert.equal(new RecordOpener(ours.rx).push(reflected).error?.code, 'VNET_ERR_RECORD_AUTH');
});

test('a vnet-records/1 receiver reads a KEY_UPDATE as a bad length; /1 senders never send one', () => {
  const material = randomBytes(exporterFor(1).bytes);
  const d = directionsFromMaterial(material, 'dialer');
  const l = directionsFromMaterial(material, 'listener');
  const r = new RecordOpener(l.rx).push(rawRecord(d.tx, 1, generationBytes(1)));
  assert.equal(r.error?.code, 'VNET_ERR_RECORD_LENGTH');
  const sealer = new RecordSealer(d.tx, undefined, { records: 1, bytes: 1 });
  const stream = Buffer.concat(Array.from({ length: 10 }, (_, i) => sealed(sealer, Buffer.from(`r${i}`))));
  assert.deepEqual([sealer.direction.generation, sealer.direction.seq], [0, 10], 'no rekeying on /1');
  assert.equal(new RecordOpener(l.rx).push(stream).plain.length, 10);
});

test('an unknown record type is VNET_ERR_RECORD_LENGTH; the hard limit stops a sender whose threshold is above it', () => {
  const { opener } = v2(DEFAULT_THRESHOLDS);
  assert.equal(opener.push(Buffer.from([2, 0, 0, 20])).error?.code, 'VNET_ERR_RECORD_LENGTH');
  const material = randomBytes(exporterFor(2).bytes);
  const d = directionsFromMaterial(material, 'dialer', 2);
  const sealer = new RecordSealer(d.tx, { maxRecords: 4, maxBytes: 2 ** 30 }, { records: 10, bytes: 2 ** 40 });
  for (let i = 0; i < 4; i++) sealed(sealer, Buffer.from('x'));
  const over = sealer.seal([Buffer.from('x')]);
  assert.ok(over instanceof RecordLayerError && over.code === 'VNET_ERR_RECORD_LIMIT');
  // At the threshold of 4 the update itself is the 5th record: past a limit of 4, so it is refused too.
  const tight = new RecordSealer(directionsFromMaterial(material, 'dialer', 2).tx, { maxRecords: 4, maxBytes: 2 ** 30 }, { records: 4, bytes: 2 ** 40 });
  for (let i = 0; i < 4; i++) sealed(tight, Buffer.from('x'));
  const refused = tight.seal([Buffer.from('x')]);
  assert.ok(refused instanceof RecordLayerError && refused.code === 'VNET_ERR_RECORD_LIMIT');
  // Below it, the update keeps the link going for ever.
  const ok = new RecordSealer(directionsFromMaterial(material, 'dialer', 2).tx, { maxRecords: 4, maxBytes: 2 ** 30 }, { records: 3, bytes: 2 ** 40 });
  for (let i = 0; i < 40; i++) sealed(ok, Buffer.from('x'));
  assert.equal(ok.direction.generation, 13);
});

test('a sender whose key reached the age threshold (injected clock) updates it at its next record; ageMs 0 turns age off; keyAgeMs carries a hand-over', () => {
  const clock = new ManualClock(1000);
  const material = randomBytes(exporterFor(2).bytes);
  const sealer = new RecordSealer(directionsFromMaterial(material, 'dialer', 2).tx, undefined, { ...DEFAULT_THRESHOLDS, ageMs: 60_000 }, clock);
  const opener = new RecordOpener(directionsFromMaterial(material, 'listener', 2).rx);
  const push = (b: Buffer): void => assert.equal(opener.push(b).error, undefined);
  push(sealed(sealer, Buffer.from('a')));
  clock.advance(59_999);
  push(sealed(sealer, Buffer.from('b')));
  assert.equal(sealer.direction.generation, 0, 'younger than the threshold: the same key');
  assert.equal(sealer.keyAgeMs, 59_999);
  clock.advance(1);
  push(sealed(sealer, Buffer.from('c')));
  assert.equal(sealer.direction.generation, 1, 'at the threshold: a KEY_UPDATE, then the next key');
  assert.equal(opener.direction.generation, 1, 'the receiver followed');
  assert.equal(sealer.keyAgeMs, 0, 'the new key\'s age starts at 0');
  // A hand-over gives the age, not a time stamp: a key that was 50 s old elsewhere is due 10 s later here.
  sealer.keyAgeMs = 50_000;
  clock.advance(9_999);
  push(sealed(sealer, Buffer.from('d')));
  assert.equal(sealer.direction.generation, 1);
  clock.advance(1);
  push(sealed(sealer, Buffer.from('e')));
  assert.equal(sealer.direction.generation, 2);

  const off = new RecordSealer(directionsFromMaterial(material, 'dialer', 2).tx, undefined, { ...DEFAULT_THRESHOLDS, ageMs: 0 }, clock);
  clock.advance(10 * 3_600_000);
  sealed(off, Buffer.from('f'));
  assert.equal(off.direction.generation, 0, 'ageMs 0: no update by age');
  assert.deepEqual(rekeyProblems({ ...DEFAULT_THRESHOLDS, ageMs: -1 }), ['ageMs must be an integer >= 0, got -1']);
});
