import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelGuest, createEmptyGuest } from '../../../src/migration/guests/memory-guest.ts';
import { MigrationSender } from '../../../src/migration/engine/sender.ts';
import type { OutRecord } from '../../../src/migration/engine/send-ledger.ts';
import { MAX_RECEIVE_PAGES, MigrationReceiver } from '../../../src/migration/engine/receiver.ts';
import { createContentKeyer, memoryDigest, type ContentKeyer } from '../../../src/migration/engine/content-key.ts';
import { TimeBound } from '../../../src/migration/stop-rules/time-bound.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';
import { Rng } from '../../../src/migration/guests/workload.ts';
import { RecordDecoder } from '../../../src/migration/engine/stream-codec.ts';
import { encodeRecord } from '../../../src/migration/engine/stream-record-codec.ts';
import type { AckRecord, MigrationRecord } from '../../../src/migration/engine/stream-records.ts';
import type { StopRule } from '../../../src/migration/stop-rules/stop-rule.ts';

const WL = { dirtyRate: 800, wssShare: 0.4, hotShare: 0.05, locality: 0.7, zeroShare: 0.2, dupShare: 0.15, bytesPerWrite: 200, rewriteShare: 0.2 };

function guest(seed = 3): ModelGuest {
  return new ModelGuest({ name: 'g', pageCount: 1024, blockCount: 64, representation: 'bytes', memoryWorkload: WL, diskWorkload: { writeRate: 20, wssShare: 0.2, zeroShare: 0.3 }, seed });
}

/** Runs a sender against a link of 20 Mbit/s, collecting what it sends (per channel) up to its done record. */
function produce(g: ModelGuest, rule: StopRule, keyer: ContentKeyer): OutRecord[] {
  const s = new MigrationSender({ guest: g, rule, keyer, now: 0 });
  const out: OutRecord[] = [];
  let now = 0;
  for (let n = 0; n < 100_000 && !s.awaitingAck; n++) {
    const batch = s.next(now, 16 * 1024);
    out.push(...batch);
    now += batch.reduce((a, o) => a + o.size, 0) / 2500 + (batch.length === 0 ? 1 : 0);
  }
  assert.ok(s.awaitingAck, 'sender reached its done record');
  return out;
}

test('records from two channels, interleaved in any order, rebuild the same image (cache lock-step)', async () => {
  const keyer = await createContentKeyer();
  const g = guest();
  const recs = produce(g, new TimeBound({ deadlineMs: 5000 }), keyer);
  assert.ok(recs.some((o) => o.ch === 1) && recs.some((o) => o.ch === 0), 'both channels used');
  assert.ok(recs.some((o) => o.rec.t === 'ref' || o.rec.t === 'delta'), 'stream uses the cache');
  const want = memoryDigest(g.memory, keyer);
  const rng = new Rng(11);
  for (let trial = 0; trial < 5; trial++) {
    const q: MigrationRecord[][] = [recs.filter((o) => o.ch === 0).map((o) => o.rec), recs.filter((o) => o.ch === 1).map((o) => o.rec)];
    const r = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
    let ack;
    while ((q[0]?.length ?? 0) + (q[1]?.length ?? 0) > 0) {
      // each channel stays FIFO; which one delivers next is random, in bursts
      const pick = (q[1]?.length ?? 0) === 0 || ((q[0]?.length ?? 0) > 0 && rng.next() < 0.5) ? 0 : 1;
      const burst = 1 + rng.below(40);
      for (let k = 0; k < burst; k++) {
        const rec = q[pick]?.shift();
        if (rec === undefined) break;
        ack = r.accept(rec, 0) ?? ack;
      }
    }
    assert.deepEqual(ack, { t: 'ack', ok: true, code: '' }, `trial ${trial}: ${r.error?.message}`);
    assert.equal(memoryDigest(r.guest!.memory, keyer), want);
  }
});

test('after a lost connection the receiver discards its state; a fresh migration starts from empty caches', async () => {
  const keyer = await createContentKeyer();
  const g = guest(4);
  const recs = produce(g, new SmartStop(), keyer);
  const r1 = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  for (const o of recs.slice(0, recs.length >> 1)) r1.accept(o.rec, 0);
  r1.fail(new (await import('../../../src/migration/errors.ts')).MigrationAbortedError('link', 'cut'));
  assert.equal(r1.state, 'failed');
  assert.equal(r1.accept(recs[recs.length - 1]!.rec, 0), undefined, 'a failed receiver takes nothing more');
  // A second migration of the same (still running) guest, through a new receiver
  g.resume(1e6);
  const again = produce(g, new SmartStop(), keyer);
  const r2 = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  let ack;
  for (const o of again) ack = r2.accept(o.rec, 0) ?? ack;
  assert.equal(ack?.ok, true, r2.error?.message);
});

test('a reference the destination cannot resolve is a cache-desync error, refused with its code', async () => {
  const keyer = await createContentKeyer();
  const r = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  r.accept({ t: 'hello', name: 'x', pageCount: 4, blockCount: 0, rule: 'smart-stop', keep: false, optimized: true }, 0);
  const ack = r.accept({ t: 'ref', seq: 1, space: 'mem', index: 0, hi: 1, lo: 2 }, 0);
  assert.deepEqual(ack, { t: 'ack', ok: false, code: 'VNET_ERR_MIGRATION_CACHE_DESYNC' });
});

test('a delta against a page never sent, a duplicate sequence number, a ref in a plain stream: refused', async () => {
  const keyer = await createContentKeyer();
  const hello = (optimized: boolean): MigrationRecord => ({ t: 'hello', name: 'x', pageCount: 4, blockCount: 0, rule: 'r', keep: false, optimized });
  const r1 = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  r1.accept(hello(true), 0);
  assert.equal(r1.accept({ t: 'delta', seq: 1, space: 'mem', index: 1, map: new Uint32Array(4), xor: new Uint8Array(0), next: undefined }, 0)?.code, 'VNET_ERR_MIGRATION_CACHE_DESYNC');
  const r2 = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  r2.accept(hello(true), 0);
  r2.accept({ t: 'zero', seq: 1, space: 'mem', index: 0 }, 0);
  assert.equal(r2.accept({ t: 'zero', seq: 1, space: 'mem', index: 0 }, 0)?.code, 'VNET_ERR_MIGRATION_PROTOCOL');
  const r3 = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  r3.accept(hello(false), 0);
  assert.equal(r3.accept({ t: 'zero', seq: 1, space: 'mem', index: 9 }, 0)?.code, 'VNET_ERR_MIGRATION_PROTOCOL');
});

test('a tampered full page is never accepted: refused at verification, or earlier when a reference to it fails its hash', async () => {
  const keyer = await createContentKeyer();
  const g = guest(6);
  const recs = produce(g, new SmartStop(), keyer);
  // the last full record of a page that nothing later overwrites
  const lastFor = new Map<number, number>();
  recs.forEach((o, k) => { if ((o.rec.t === 'full' || o.rec.t === 'zero' || o.rec.t === 'ref' || o.rec.t === 'delta') && o.rec.space === 'mem') lastFor.set(o.rec.index, k); });
  const k = [...lastFor.values()].find((k) => recs[k]?.rec.t === 'full');
  assert.ok(k !== undefined);
  const r = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  let ack: AckRecord | undefined;
  recs.forEach((o, i) => {
    let rec = o.rec;
    if (i === k) {
      const b = encodeRecord(rec);
      b[b.length - 1] = (b[b.length - 1] ?? 0) ^ 0xff;
      rec = new RecordDecoder().push(b).records[0]!;
    }
    ack = r.accept(rec, 0) ?? ack;
  });
  assert.equal(ack?.ok, false);
  assert.ok(['VNET_ERR_MIGRATION_VERIFY', 'VNET_ERR_MIGRATION_CACHE_DESYNC'].includes(ack?.code ?? ''), ack?.code);
});

test('the receiver acknowledges disk records only after the sync record, cumulatively, and refuses acks sent to it', async () => {
  const keyer = await createContentKeyer();
  const r = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  const block = (seq: number, index: number): MigrationRecord => ({ t: 'full', seq, space: 'disk', index, content: new Uint8Array(4096).fill(index) });
  r.accept({ t: 'hello', name: 'g', pageCount: 4, blockCount: 8, rule: 'xen', keep: false, optimized: false }, 0);
  assert.equal(r.accept(block(1, 0), 0), undefined);
  assert.equal(r.takeDiskAck(), undefined, 'the bulk copy is not acknowledged');
  r.accept({ t: 'sync', seq: 2 }, 0);
  r.accept(block(4, 1), 0); // held: 3 not here yet
  assert.equal(r.takeDiskAck(), undefined, 'not applied yet: no ack');
  r.accept({ t: 'full', seq: 3, space: 'mem', index: 0, content: new Uint8Array(4096) }, 0);
  assert.deepEqual(r.takeDiskAck(), { t: 'disk-ack', seq: 4 });
  assert.equal(r.takeDiskAck(), undefined);
  r.accept(block(5, 2), 0);
  r.accept(block(6, 3), 0);
  assert.deepEqual(r.takeDiskAck(), { t: 'disk-ack', seq: 6 }, 'one cumulative ack for both');
  assert.equal(r.accept({ t: 'disk-ack', seq: 6 }, 0)?.ok, false);
  assert.equal(r.error?.code, 'VNET_ERR_MIGRATION_PROTOCOL');
  assert.equal(r.takeDiskAck(), undefined, 'a failed receiver acknowledges nothing');
});

test('the receiver answers a mark with applied only once every record before it is applied, and refuses an applied sent to it', async () => {
  const keyer = await createContentKeyer();
  const r = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
  const page = (seq: number, index: number): MigrationRecord => ({ t: 'full', seq, space: 'mem', index, content: new Uint8Array(4096).fill(index + 1) });
  r.accept({ t: 'hello', name: 'g', pageCount: 4, blockCount: 0, rule: 'smart-stop', keep: false, optimized: false }, 0);
  r.accept(page(1, 0), 0);
  assert.equal(r.takeApplied(), undefined, 'no mark yet');
  r.accept({ t: 'mark', seq: 3 }, 0); // held: page 2 has not arrived
  assert.equal(r.takeApplied(), undefined, 'the mark is not applied while a record before it is missing');
  r.accept(page(2, 1), 0);
  assert.deepEqual(r.takeApplied(), { t: 'applied', seq: 3 });
  assert.equal(r.takeApplied(), undefined, 'answered once');
  assert.equal(r.accept({ t: 'applied', seq: 3 }, 0)?.ok, false);
  assert.equal(r.error?.code, 'VNET_ERR_MIGRATION_PROTOCOL');
});

test('the receiver checks the image at done from the keys it kept as pages were applied: no page or block read while the guest is paused, the digests still agree', async () => {
  const keyer = await createContentKeyer();
  for (const rule of [new SmartStop(), new TimeBound({ deadlineMs: 5000 })]) {
    const g = guest(9);
    const recs = produce(g, rule, keyer);
    const r = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes' });
    let ack: AckRecord | undefined;
    let reads = 0;
    for (const o of recs) {
      if (o.rec.t === 'done') {
        const { memory, disk } = r.guest!;
        const readPage = memory.readPage.bind(memory);
        memory.readPage = (i) => { reads++; return readPage(i); };
        const readBlock = disk!.readBlock.bind(disk);
        disk!.readBlock = (i) => { reads++; return readBlock(i); };
      }
      ack = r.accept(o.rec, 0) ?? ack;
    }
    assert.deepEqual(ack, { t: 'ack', ok: true, code: '' }, `${rule.name}: ${r.error?.message}`);
    assert.equal(reads, 0, `${rule.name}: pages read at done`);
    assert.equal(memoryDigest(r.guest!.memory, keyer), memoryDigest(g.memory, keyer));
  }
});

test('a hello announcing more memory or disk than the limit is refused before anything is allocated', async () => {
  const keyer = await createContentKeyer();
  let built = 0;
  const factory = (g: Parameters<typeof createEmptyGuest>[0]): ReturnType<typeof createEmptyGuest> => {
    built++;
    return createEmptyGuest(g);
  };
  const hello = (pageCount: number, blockCount: number): MigrationRecord => ({ t: 'hello', name: 'vm', pageCount, blockCount, rule: 'xen', keep: false, optimized: true });
  for (const [pages, blocks] of [[0xffffffff, 0], [MAX_RECEIVE_PAGES + 1, 0], [16, 0x7fffffff]] as const) {
    const r = new MigrationReceiver({ factory, keyer, representation: 'bytes' });
    const ack = r.accept(hello(pages, blocks), 0);
    assert.deepEqual(ack, { t: 'ack', ok: false, code: 'VNET_ERR_MIGRATION_PROTOCOL' });
    assert.match(r.error?.message ?? '', new RegExp(`${pages} pages and ${blocks} disk blocks: above this receiver's limit of ${MAX_RECEIVE_PAGES}`));
  }
  assert.equal(built, 0, 'no guest built for an oversized hello');
  const small = (): MigrationReceiver => new MigrationReceiver({ factory, keyer, representation: 'bytes', maxPages: 8 });
  assert.equal(small().accept(hello(9, 0), 0)?.ok, false);
  const fits = small();
  assert.equal(fits.accept(hello(8, 0), 0), undefined, 'refused only above the limit');
  assert.equal(fits.state, 'receiving');
  assert.equal(built, 1);
});
