/**
 * The native forwarder's record layer (native/tap/records.cc) against its
 * TypeScript twin (record-layer.ts), over loopback TCP, without TAP devices:
 *
 *   - records the peer seals come up opened, byte for byte and in order, for
 *     valid and random message streams in random chunkings, including a
 *     record begun before the attach and one left half-read at the detach;
 *     an end inside a record is ENODATA (VNET_ERR_RECORD_TRUNCATED), at a
 *     record boundary a clean end;
 *   - what JS writes through the forwarder reaches the peer as records it
 *     opens, and after the detach the TypeScript side carries on from the
 *     forwarder's counters (the peer opens on without a gap);
 *   - a byte flipped in a record fails the link with EBADMSG (the typed
 *     VNET_ERR_RECORD_AUTH) and nothing of that record comes up;
 *   - a used-up key fails it with EOVERFLOW (VNET_ERR_RECORD_LIMIT);
 *   - each way a record can be bad gives its own errno, the same error the
 *     TypeScript opener gives for the same bytes (a bad length, a bad tag, a
 *     cut, a bad KEY_UPDATE), also over seeded mutated streams.
 * native-records-rekey.test.ts has rekeying across attach and detach.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { NativeForwarder, type NativeRecordsAttach } from '../../src/dataplane/native-forwarder.ts';
import { DEFAULT_LIMITS, DEFAULT_REKEY, RecordOpener, RecordSealer, recordErrnoError } from '../../src/dataplane/record-layer.ts';
import { copyDirection, directionsFromMaterial, exporterFor, type RecordDirection } from '../../src/dataplane/record-keys.ts';
import { nativeRecordsAttach } from '../../src/dataplane/record-socket.ts';
import { encodeFrame } from '../../src/dataplane/frame-codec.ts';
import { Rand } from '../fuzz/fuzz-kit.ts';
import { mutateBytes, randomChunks } from '../fuzz/mutate.ts';
import { waitFor } from '../helpers/wait.ts';
import { recorder, socketPair, validStream } from './native-link-fixtures.ts';
import { generationBytes, rawRecord, recordLengthFields } from './record-fixtures.ts';

/** Keys for one link: `ours` (the forwarder's side, listener) and the peer's (dialer). */
function keys(version: 1 | 2 = 1): { ours: { tx: RecordDirection; rx: RecordDirection }; peer: { tx: RecordDirection; rx: RecordDirection } } {
  const material = randomBytes(exporterFor(version).bytes);
  return { ours: directionsFromMaterial(material, 'listener', version), peer: directionsFromMaterial(material, 'dialer', version) };
}

function attachState(ours: { tx: RecordDirection; rx: RecordDirection }, cipher = Buffer.alloc(0), limits = DEFAULT_LIMITS): NativeRecordsAttach {
  return nativeRecordsAttach(ours.tx, ours.rx, limits, DEFAULT_REKEY, cipher);
}

function seal(sealer: RecordSealer, ...chunks: Buffer[]): Buffer {
  const out = sealer.seal(chunks);
  if (!Buffer.isBuffer(out)) throw out;
  return out;
}

test('records from the peer come up opened, byte for byte, across the attach and the detach', { timeout: 120_000 }, async () => {
  const fwd = NativeForwarder.open();
  try {
    for (let i = 0; i < 60; i++) {
      const rand = new Rand(0xc0de + i);
      const { peer, fd, close } = await socketPair();
      const k = keys();
      const sealer = new RecordSealer(k.peer.tx);
      const messages = Array.from({ length: rand.range(1, 6) }, () => (i % 4 === 3 ? rand.bytes(rand.size(5000) + 1) : validStream(rand)));
      const records = Buffer.concat(messages.map((m) => seal(sealer, m)));
      // A few bytes of the first record reached JS before the attach; the last record is cut short before the detach.
      const before = rand.int(Math.min(20, records.length));
      const cut = records.length - (i % 2 === 0 ? 0 : rand.range(1, 12));
      const rec = recorder();
      const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink, attachState(k.ours, records.subarray(0, before)));
      for (const chunk of randomChunks(rand, records.subarray(before, cut))) peer.write(chunk);
      peer.end();
      const truncated = cut < records.length;
      await waitFor(() => rec.failed.length > 0, `case ${i}: the forwarder sees the peer's end`);
      assert.deepEqual(rec.failed, [truncated ? 61 : 0], `case ${i}: an end inside a record is ENODATA, at a boundary a clean end`);
      const { records: progress } = fwd.detachLink(id); // a message begun in the last whole record comes up now
      const whole = Buffer.concat(messages.slice(0, truncated ? messages.length - 1 : messages.length));
      assert.ok(Buffer.concat(rec.chunks).equals(whole), `case ${i}: the plaintext, in order`);
      assert.ok(progress !== undefined);
      assert.equal(progress.rxSeq, truncated ? messages.length - 1 : messages.length, `case ${i}: records opened`);
      // The TypeScript side carries on: the half-read record plus its rest open with the forwarder's counters.
      const opener = new RecordOpener({ ...copyDirection(k.ours.rx), seq: progress.rxSeq, bytes: progress.rxBytes }, DEFAULT_LIMITS, Buffer.from(progress.cipher));
      const rest = opener.push(records.subarray(cut));
      assert.equal(rest.error, undefined, `case ${i}: ${rest.error?.message}`);
      assert.ok(Buffer.concat([whole, ...rest.plain]).equals(Buffer.concat(messages)), `case ${i}: nothing lost at the detach (${messages.length} messages, ${rest.plain.length} after)`);
      close();
    }
  } finally {
    fwd.close();
  }
});

test('writes through the forwarder are sealed, one record per write, and the TypeScript side carries on after the detach', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  const { peer, fd, close } = await socketPair();
  try {
    const k = keys();
    k.ours.tx.seq = 5; // records JS sealed before the attach
    const peerOpener = new RecordOpener({ ...copyDirection(k.peer.rx), seq: 5 });
    const got: Buffer[] = [];
    peer.on('data', (d: Buffer) => {
      const r = peerOpener.push(d);
      assert.equal(r.error, undefined);
      got.push(...r.plain);
    });
    const id = fwd.attachLink(fd, 65_563, 8 << 20, recorder().sink, attachState(k.ours));
    const sent: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const msg = encodeFrame({ data: Buffer.alloc(100 + i * 500, i), offload: undefined });
      sent.push(msg);
      assert.ok(fwd.writeLink(id, [msg.subarray(0, 4), msg.subarray(4)]) >= 0);
    }
    const total = sent.reduce((a, b) => a + b.length, 0);
    await waitFor(() => got.reduce((a, b) => a + b.length, 0) >= total, 'the peer opened everything');
    assert.ok(Buffer.concat(got).equals(Buffer.concat(sent)));
    assert.equal(peerOpener.direction.seq, 55, 'one record per write');
    const { backlog, records: progress } = fwd.detachLink(id);
    assert.equal(backlog.length, 0);
    assert.equal(progress?.txSeq, 55);
    const after = Buffer.from('sealed by JS after the detach');
    const ours = new RecordSealer({ ...copyDirection(k.ours.tx), seq: progress.txSeq, bytes: progress.txBytes });
    const n = got.length;
    writeSync(fd, seal(ours, after));
    await waitFor(() => got.length > n, 'the peer opened the record JS sealed');
    assert.equal(got.at(-1)?.toString(), after.toString());
  } finally {
    close();
    fwd.close();
  }
});

test('a byte flipped in a record fails the link with EBADMSG (VNET_ERR_RECORD_AUTH) and nothing of it comes up', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  try {
    for (let i = 0; i < 20; i++) {
      const { peer, fd, close } = await socketPair();
      const k = keys();
      const sealer = new RecordSealer(k.peer.tx);
      const good = seal(sealer, encodeFrame({ data: Buffer.alloc(60, 1), offload: undefined }));
      const bad = seal(sealer, encodeFrame({ data: Buffer.alloc(60, 2), offload: undefined }));
      bad[4 + ((i * 7) % (bad.length - 4))]! ^= 0x20;
      const rec = recorder();
      const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink, attachState(k.ours));
      peer.write(Buffer.concat([good, bad]));
      await waitFor(() => rec.failed.length > 0, `case ${i}: the link fails`);
      assert.deepEqual(rec.failed, [74]);
      assert.equal(recordErrnoError(rec.failed[0]!)?.code, 'VNET_ERR_RECORD_AUTH');
      fwd.detachLink(id);
      assert.deepEqual(Buffer.concat(rec.chunks), encodeFrame({ data: Buffer.alloc(60, 1), offload: undefined }), 'only the good record came up');
      assert.ok(fwd.writeLink(id, [Buffer.from('x')]) < 0, 'a failed link takes no writes');
      close();
    }
  } finally {
    fwd.close();
  }
});

test('a used-up key fails the link with EOVERFLOW (VNET_ERR_RECORD_LIMIT): no record is sealed past the limit', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  const { peer, fd, close } = await socketPair();
  try {
    const k = keys();
    const rec = recorder();
    const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink, attachState(k.ours, Buffer.alloc(0), { maxRecords: 2, maxBytes: 1 << 30 }));
    let bytes = 0;
    peer.on('data', (d: Buffer) => { bytes += d.length; });
    assert.ok(fwd.writeLink(id, [Buffer.from('one')]) >= 0);
    assert.ok(fwd.writeLink(id, [Buffer.from('two')]) >= 0);
    assert.equal(fwd.writeLink(id, [Buffer.from('three')]), -75);
    await waitFor(() => rec.failed.length > 0 && bytes >= 2 * (4 + 3 + 16), 'the failure and the two records');
    assert.deepEqual(rec.failed, [75]);
    assert.equal(recordErrnoError(75)?.code, 'VNET_ERR_RECORD_LIMIT');
    assert.equal(bytes, 2 * (4 + 3 + 16), 'two records, nothing after');
    fwd.detachLink(id);
  } finally {
    close();
    fwd.close();
  }
});

/** The forwarder's verdict on `bytes` from the peer followed by the end: the error code it failed with, 'ok' at a clean end. */
async function forwarderVerdict(fwd: NativeForwarder, ours: { tx: RecordDirection; rx: RecordDirection }, chunks: readonly Buffer[], limits = DEFAULT_LIMITS): Promise<{ code: string; plain: Buffer }> {
  const { peer, fd, close } = await socketPair();
  try {
    const rec = recorder();
    const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink, attachState({ tx: copyDirection(ours.tx), rx: copyDirection(ours.rx) }, Buffer.alloc(0), limits));
    for (const c of chunks) peer.write(c);
    peer.end();
    await waitFor(() => rec.failed.length > 0, 'the forwarder fails the link or sees the end');
    fwd.detachLink(id);
    const errno = rec.failed[0]!;
    return { code: errno === 0 ? 'ok' : (recordErrnoError(errno)?.code ?? `errno ${errno}`), plain: Buffer.concat(rec.chunks) };
  } finally {
    close();
  }
}

/** The TypeScript opener's verdict on the same bytes. */
function openerVerdict(rx: RecordDirection, bytes: Buffer, limits = DEFAULT_LIMITS): string {
  const opener = new RecordOpener(copyDirection(rx), limits);
  return (opener.push(bytes).error ?? opener.end())?.code ?? 'ok';
}

test('each way a record can be bad is its own error from the forwarder, the one the TypeScript opener gives', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  try {
    const k = keys(2);
    const good = seal(new RecordSealer(copyDirection(k.peer.tx)), encodeFrame({ data: Buffer.alloc(60, 1), offload: undefined }));
    const flipped = Buffer.from(good);
    flipped[10]! ^= 0x04;
    const cases: Array<[string, Buffer, string]> = [
      ['a length under 17', Buffer.from([0, 0, 0, 5]), 'VNET_ERR_RECORD_LENGTH'],
      ['an unknown record type', Buffer.from([7, 0, 0, 40]), 'VNET_ERR_RECORD_LENGTH'],
      ['a changed byte', flipped, 'VNET_ERR_RECORD_AUTH'],
      ['an end inside a record', good.subarray(0, good.length - 3), 'VNET_ERR_RECORD_TRUNCATED'],
      ['a KEY_UPDATE naming the wrong generation', rawRecord(k.peer.tx, 1, generationBytes(5)), 'VNET_ERR_RECORD_KEY_UPDATE'],
      ['a KEY_UPDATE of the wrong size', Buffer.from([1, 0, 0, 30]), 'VNET_ERR_RECORD_KEY_UPDATE'],
      ['a whole good record', good, 'ok'],
    ];
    for (const [why, bytes, code] of cases) {
      assert.equal(openerVerdict(k.ours.rx, bytes), code, `${why}: TypeScript`);
      assert.equal((await forwarderVerdict(fwd, k.ours, [bytes])).code, code, `${why}: the forwarder`);
    }
    const limits = { maxRecords: 1, maxBytes: 1 << 20 };
    const two = Buffer.concat([good, seal(new RecordSealer({ ...copyDirection(k.peer.tx), seq: 1 }), Buffer.from('x'))]);
    assert.equal(openerVerdict(k.ours.rx, two, limits), 'VNET_ERR_RECORD_LIMIT');
    assert.equal((await forwarderVerdict(fwd, k.ours, [two], limits)).code, 'VNET_ERR_RECORD_LIMIT', 'a used-up receive key');
  } finally {
    fwd.close();
  }
});

test('over seeded mutated streams with key updates, the forwarder and the TypeScript opener agree on the error and the plaintext', { timeout: 120_000 }, async () => {
  const fwd = NativeForwarder.open();
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 120; i++) {
      const rand = new Rand(0xbad0 + i);
      const k = keys(2);
      const sealer = new RecordSealer(copyDirection(k.peer.tx), DEFAULT_LIMITS, { records: rand.range(1, 3), bytes: 2 ** 40 });
      const clean = Buffer.concat(Array.from({ length: rand.range(2, 8) }, () => seal(sealer, validStream(rand))));
      const bytes = i % 8 === 0 ? clean : mutateBytes(rand, clean, { max: 2, lengths: recordLengthFields(clean) });
      const want = openerVerdict(k.ours.rx, bytes);
      const got = await forwarderVerdict(fwd, k.ours, randomChunks(rand, bytes));
      assert.equal(got.code, want, `case ${i}`);
      const opener = new RecordOpener(copyDirection(k.ours.rx));
      assert.ok(got.plain.equals(Buffer.concat(opener.push(bytes).plain)), `case ${i}: the same plaintext up to the error`);
      seen.add(want);
    }
    for (const code of ['ok', 'VNET_ERR_RECORD_AUTH', 'VNET_ERR_RECORD_LENGTH', 'VNET_ERR_RECORD_TRUNCATED']) assert.ok(seen.has(code), `${code} among the outcomes (${[...seen].join(', ')})`);
  } finally {
    fwd.close();
  }
});
