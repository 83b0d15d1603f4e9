/**
 * Rekeying in place (vnet-records/2) across the hand-over between the native
 * forwarder (native/tap/records.cc) and the event loop (record-layer.ts),
 * over loopback TCP: one link, attached and detached eight times. In each
 * native phase the forwarder opens what the peer seals and seals what JS
 * writes through it, both with tiny thresholds, so that both directions
 * update their keys several times on the thread; in each event-loop phase
 * the TypeScript layer carries on from the generation, key and counters the
 * forwarder gave back (and the forwarder, on the next attach, from the
 * TypeScript layer's), with a record left half-read at each hand-over. Every
 * byte arrives in order both ways, and both ends agree on every generation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readSync, writeSync } from 'node:fs';
import { NativeForwarder } from '../../src/dataplane/native-forwarder.ts';
import { directionsFromMaterial, exporterFor } from '../../src/dataplane/record-keys.ts';
import { DEFAULT_LIMITS, RecordOpener, RecordSealer, type RekeyThresholds } from '../../src/dataplane/record-layer.ts';
import { adoptProgress, nativeRecordsAttach } from '../../src/dataplane/record-socket.ts';
import { encodeFrame } from '../../src/dataplane/frame-codec.ts';
import { Rand } from '../fuzz/fuzz-kit.ts';
import { randomChunks } from '../fuzz/mutate.ts';
import { waitFor } from '../helpers/wait.ts';
import { recorder, socketPair, validStream } from './native-link-fixtures.ts';

const total = (bufs: readonly Buffer[]): number => bufs.reduce((n, b) => n + b.length, 0);

function sealOrThrow(sealer: RecordSealer, msg: Buffer): Buffer {
  const out = sealer.seal([msg]);
  if (!Buffer.isBuffer(out)) throw out;
  return out;
}

test('C++ and TypeScript rekey in step across attach and detach, both directions, a record half-read at every hand-over', { timeout: 120_000 }, async () => {
  const fwd = NativeForwarder.open();
  const { peer, fd, close } = await socketPair();
  try {
    const rand = new Rand(0x2e4e);
    const material = randomBytes(exporterFor(2).bytes);
    const ours = directionsFromMaterial(material, 'listener', 2); // the forwarder's side, then the event loop's
    const theirs = directionsFromMaterial(material, 'dialer', 2);
    const oursRekey: RekeyThresholds = { records: 2, bytes: 6000 };
    const peerSealer = new RecordSealer(theirs.tx, DEFAULT_LIMITS, { records: 3, bytes: 4000 });
    const peerOpener = new RecordOpener(theirs.rx);
    const peerGot: Buffer[] = [];
    peer.on('data', (d: Buffer) => {
      const r = peerOpener.push(d);
      assert.equal(r.error, undefined, r.error?.message);
      peerGot.push(...r.plain);
    });
    const peerSent: Buffer[] = [];
    const oursSent: Buffer[] = [];
    const oursGot: Buffer[] = [];
    let held: Buffer = Buffer.alloc(0); // the rest of the record the peer began last
    /** The peer sends `n` messages and begins one more record (held back): what it sent before is whole. */
    const peerSends = (n: number): void => {
      const msgs = Array.from({ length: n }, () => validStream(rand));
      const next = validStream(rand);
      const sealed = Buffer.concat([held, ...msgs.map((m) => sealOrThrow(peerSealer, m))]);
      const begun = sealOrThrow(peerSealer, next);
      const cut = rand.range(1, begun.length - 1);
      peerSent.push(...msgs);
      for (const c of randomChunks(rand, Buffer.concat([sealed, begun.subarray(0, cut)]))) peer.write(c);
      held = begun.subarray(cut);
      peerSent.push(next); // arrives once the rest is sent, in the next phase
    };
    let cipher: Buffer = Buffer.alloc(0);
    for (let round = 0; round < 8; round++) {
      // Native phase.
      const rec = recorder();
      const before = { tx: ours.tx.generation, rx: ours.rx.generation };
      const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink, nativeRecordsAttach(ours.tx, ours.rx, DEFAULT_LIMITS, oursRekey, cipher));
      const upBefore = total(oursGot);
      peerSends(12);
      const wantUp = total(peerSent) - peerSent.at(-1)!.length;
      for (let i = 0; i < 12; i++) {
        const msg = encodeFrame({ data: rand.bytes(rand.range(14, 1500)), offload: undefined });
        oursSent.push(msg);
        assert.ok(fwd.writeLink(id, [msg]) >= 0, `round ${round}: write ${i}`);
      }
      await waitFor(() => upBefore + total(rec.chunks) >= wantUp && total(peerGot) >= total(oursSent), `round ${round}: both directions through the forwarder`);
      const { backlog, records: progress } = fwd.detachLink(id);
      assert.equal(backlog.length, 0);
      assert.ok(progress !== undefined && progress.txSecret !== undefined && progress.rxSecret !== undefined, 'a /2 link gives its secrets back');
      oursGot.push(...rec.chunks);
      adoptProgress(progress, ours.tx, ours.rx);
      assert.ok(ours.tx.generation >= before.tx + 3 && ours.rx.generation >= before.rx + 2, `round ${round}: the forwarder updated its keys (tx ${before.tx}→${ours.tx.generation}, rx ${before.rx}→${ours.rx.generation})`);
      assert.equal(ours.tx.generation, peerOpener.direction.generation, `round ${round}: the peer follows the forwarder's send key`);
      // Event-loop phase: carry on from the forwarder's keys, with the record it had begun (or that is still in the socket).
      const opener = new RecordOpener(ours.rx, DEFAULT_LIMITS, progress.cipher);
      const sealer = new RecordSealer(ours.tx, DEFAULT_LIMITS, oursRekey);
      peerSends(6);
      const wantTs = total(peerSent) - peerSent.at(-1)!.length;
      const buf = Buffer.alloc(1 << 16);
      await waitFor(() => {
        for (;;) {
          let n: number;
          try {
            n = readSync(fd, buf);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
            throw err;
          }
          if (n === 0) break;
          const r = opener.push(Buffer.from(buf.subarray(0, n)));
          assert.equal(r.error, undefined, r.error?.message);
          oursGot.push(...r.plain);
        }
        return total(oursGot) >= wantTs;
      }, `round ${round}: the event loop opened the peer's records`);
      for (let i = 0; i < 6; i++) {
        const msg = rand.bytes(rand.range(1, 3000));
        oursSent.push(msg);
        writeSync(fd, sealOrThrow(sealer, msg));
      }
      await waitFor(() => total(peerGot) >= total(oursSent), `round ${round}: the peer opened the event loop's records`);
      cipher = opener.pending;
    }
    assert.ok(Buffer.concat(oursGot).equals(Buffer.concat(peerSent.slice(0, -1))), 'every byte the peer sent, in order');
    assert.ok(Buffer.concat(peerGot).equals(Buffer.concat(oursSent)), 'every byte we sent, in order');
    assert.ok(ours.tx.generation >= 40 && ours.rx.generation >= 40, `generations: tx ${ours.tx.generation}, rx ${ours.rx.generation}`);
    assert.equal(peerOpener.direction.generation, ours.tx.generation);
    assert.ok(peerSealer.direction.generation - ours.rx.generation <= 1, 'the receive side is at most the held record\'s update behind');
  } finally {
    close();
    fwd.close();
  }
});

test('the send key\'s age crosses the hand-over both ways: a key handed over at its age threshold is updated at the forwarder\'s first record, a tiny threshold updates it again, and the age comes back', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  const { peer, fd, close } = await socketPair();
  try {
    const rand = new Rand(0xa9e);
    const material = randomBytes(exporterFor(2).bytes);
    const ours = directionsFromMaterial(material, 'listener', 2);
    const peerOpener = new RecordOpener(directionsFromMaterial(material, 'dialer', 2).rx);
    const peerGot: Buffer[] = [];
    peer.on('data', (d: Buffer) => {
      const r = peerOpener.push(d);
      assert.equal(r.error, undefined, r.error?.message);
      peerGot.push(...r.plain);
    });
    const counts: RekeyThresholds = { records: 2 ** 40, bytes: 2 ** 40 };
    const send = (id: number): Buffer => {
      const msg = encodeFrame({ data: rand.bytes(64), offload: undefined });
      assert.ok(fwd.writeLink(id, [msg]) >= 0);
      return msg;
    };

    // Handed over 1 h old with a 1 h threshold: the thread's first record comes after a KEY_UPDATE.
    const old = fwd.attachLink(fd, 65_563, 8 << 20, recorder().sink, { ...nativeRecordsAttach(ours.tx, ours.rx, DEFAULT_LIMITS, { ...counts, ageMs: 3_600_000 }, Buffer.alloc(0)), txAgeMs: 3_600_000 });
    const first = send(old);
    await waitFor(() => total(peerGot) >= first.length, 'the peer opened the first record');
    assert.equal(peerOpener.direction.generation, 1, 'the key was updated by age before the first record');
    assert.equal(fwd.recordsInfo(old)?.txGeneration, 1);
    const back = fwd.detachLink(old).records;
    assert.ok(back !== undefined && back.txAgeMs !== undefined);
    adoptProgress(back, ours.tx, ours.rx);

    // Handed over young, 30 s into a 1 h threshold: no update; the age comes back at least as old as it went.
    const young = fwd.attachLink(fd, 65_563, 8 << 20, recorder().sink, { ...nativeRecordsAttach(ours.tx, ours.rx, DEFAULT_LIMITS, { ...counts, ageMs: 3_600_000 }, Buffer.alloc(0)), txAgeMs: 30_000 });
    const second = send(young);
    await waitFor(() => total(peerGot) >= first.length + second.length, 'the peer opened the second record');
    assert.equal(peerOpener.direction.generation, 1, 'younger than the threshold: the same key');
    const info = fwd.recordsInfo(young);
    assert.ok(info !== undefined && info.txGeneration === 1 && info.txRecords === 2 && info.txBytes === first.length + second.length && info.txAgeMs >= 30_000, JSON.stringify(info));
    const progress = fwd.detachLink(young).records;
    assert.ok(progress?.txAgeMs !== undefined && progress.txAgeMs >= 30_000, `the age came back: ${progress?.txAgeMs}`);
    adoptProgress(progress, ours.tx, ours.rx);
    assert.equal(fwd.recordsInfo(young), undefined, 'a detached link has no record state');

    // A 1 ms threshold: the generation moves on while records keep going (each check sends one more).
    const tiny = fwd.attachLink(fd, 65_563, 8 << 20, recorder().sink, { ...nativeRecordsAttach(ours.tx, ours.rx, DEFAULT_LIMITS, { ...counts, ageMs: 1 }, Buffer.alloc(0)), txAgeMs: 0 });
    await waitFor(() => {
      send(tiny);
      return peerOpener.direction.generation >= 3;
    }, 'the peer followed two updates by age');
    fwd.detachLink(tiny);
  } finally {
    close();
    fwd.close();
  }
});
