import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VnetError } from '../../src/common/errors.ts';
import { MigrationDecodeError } from '../../src/migration/errors.ts';
import { MigrationReceiver } from '../../src/migration/engine/receiver.ts';
import { MigrationSender } from '../../src/migration/engine/sender.ts';
import { createContentKeyer, type ContentKeyer } from '../../src/migration/engine/content-key.ts';
import { RecordDecoder } from '../../src/migration/engine/stream-codec.ts';
import { MAX_RECORD, type MigrationRecord } from '../../src/migration/engine/stream-records.ts';
import { encodeRecord } from '../../src/migration/engine/stream-record-codec.ts';
import { ModelGuest, createEmptyGuest } from '../../src/migration/guests/memory-guest.ts';
import { SmartStop } from '../../src/migration/stop-rules/smart-stop.ts';
import { ChannelHelloError } from '../../src/host/errors.ts';
import { LineReader, MAX_LINE, encodeChannelHello, encodeChannelReply, parseChannelHello, parseChannelReply } from '../../src/host/channel-hello.ts';
import { fuzz, showBytes, type Rand } from './fuzz-kit.ts';
import { mutateBytes, randomChunks, type LengthField } from './mutate.ts';

/**
 * The migration stream (src/migration/engine/stream-codec.ts) and what
 * consumes it on the destination (engine/receiver.ts), then the migration
 * channel hello (src/host/channel-hello.ts). Inputs: real streams from a
 * sender migrating a small model guest, mutated (bit flips, length fields,
 * splices of two streams, truncation) and fed in random chunkings.
 * Oracle: the decoder never throws, fails only with a MigrationDecodeError,
 * holds at most one record, copies each byte at most once, and decodes the
 * same records in any chunking; the receiver never throws and fails only
 * with a typed error of its own (not a caught TypeError or RangeError
 * wrapped as "receiver failed").
 */

const WORKLOAD = { dirtyRate: 400, wssShare: 0.4, hotShare: 0.05, locality: 0.7, zeroShare: 0.2, dupShare: 0.15, bytesPerWrite: 200, rewriteShare: 0.2 };

/** A whole migration of a 48-page guest with a 12-block disk, as the bytes on the wire. */
function produceStream(seed: number, keyer: ContentKeyer): Buffer[] {
  const guest = new ModelGuest({ name: `vm-${seed}`, pageCount: 48, blockCount: 12, representation: 'bytes', memoryWorkload: WORKLOAD, diskWorkload: { writeRate: 20, wssShare: 0.2, zeroShare: 0.3 }, seed });
  const sender = new MigrationSender({ guest, rule: new SmartStop(), keyer, now: 0, catchUp: true });
  const out: Buffer[] = [];
  let now = 0;
  for (let n = 0; n < 10_000 && !sender.awaitingAck; n++) {
    const batch = sender.next(now, 8 * 1024);
    for (const o of batch) out.push(encodeRecord(o.rec));
    now += 1 + batch.reduce((a, o) => a + o.size, 0) / 2500;
    // A disk-ack for everything, so synchronous replication goes on.
    for (const o of batch) if ('seq' in o.rec && 'space' in o.rec && o.rec.space === 'disk') sender.onDiskAck(o.rec.seq, now);
    // And the answer to every catch-up mark, so the stream carries marks too.
    for (const o of batch) if (o.rec.t === 'mark') sender.onApplied(o.rec.seq, now);
  }
  return out;
}

interface StreamInput {
  readonly bytes: Buffer;
  readonly chunks: Buffer[];
  readonly maxRecord: number;
}

function decodeAll(chunks: readonly Buffer[], maxRecord: number): { records: MigrationRecord[]; error: MigrationDecodeError | undefined } {
  const dec = new RecordDecoder({ maxRecord });
  const records: MigrationRecord[] = [];
  let pushed = 0;
  let error: MigrationDecodeError | undefined;
  for (const c of chunks) {
    const r = dec.push(c);
    pushed += c.length;
    records.push(...r.records);
    if (r.error !== undefined) {
      assert.ok(r.error instanceof MigrationDecodeError, `a MigrationDecodeError, not ${String(r.error)}`);
      assert.ok(error === undefined || error === r.error, 'one error, repeated');
      error = r.error;
      assert.equal(r.records.length === 0 || records.length > 0, true);
    }
    assert.ok(dec.buffered <= 4 + maxRecord, `holds ${dec.buffered} bytes`);
    assert.ok(dec.copiedBytes <= pushed, 'each byte copied at most once');
  }
  return { records, error };
}

test('fuzz: migration stream decoder and receiver — mutated real streams in random chunkings', async (t) => {
  const keyer = await createContentKeyer();
  const streams = [1, 2, 3, 4].map((s) => produceStream(s, keyer));
  await fuzz<StreamInput>(t, {
    name: 'migration-stream',
    generate(rand: Rand) {
      const maxRecord = rand.chance(0.9) ? MAX_RECORD : rand.pick([1, 9, 64, 4105]);
      const records = rand.pick(streams);
      // A window of the stream: from the start (with its hello) most of the time.
      const from = rand.chance(0.7) ? 0 : rand.int(records.length);
      const window = records.slice(from, from + rand.range(1, rand.chance(0.03) ? records.length : 16));
      const lengths: LengthField[] = [];
      let off = 0;
      for (const r of window) {
        lengths.push({ offset: off, width: 4 });
        if (r[4] === 0x01) lengths.push({ offset: off + 11, width: 4 }, { offset: off + 15, width: 4 }, { offset: off + 19, width: 1 }); // hello: pages, blocks, name length
        if ((r[4] ?? 0) === 0x23) lengths.push({ offset: off + 9, width: 1 }); // abort reason length
        off += r.length;
      }
      const valid = Buffer.concat(window);
      const mode = rand.int(10);
      const bytes = mode === 0 ? rand.bytes(rand.size(8192)) : mode === 1 ? valid : mutateBytes(rand, valid, { corpus: [Buffer.concat(rand.pick(streams).slice(0, 8))], lengths });
      return { bytes, chunks: randomChunks(rand, bytes), maxRecord };
    },
    run({ bytes, chunks, maxRecord }) {
      const got = decodeAll(chunks, maxRecord);
      const whole = decodeAll([bytes], maxRecord);
      assert.deepEqual(got.records, whole.records, 'records independent of the chunking');
      assert.equal(got.error?.code, whole.error?.code);
      // A small limit keeps each case's allocation small; the default limit has its own unit test.
      const receiver = new MigrationReceiver({ factory: createEmptyGuest, keyer, representation: 'bytes', maxPages: 1024 });
      for (const r of got.records) {
        const ack = receiver.accept(r, 0);
        if (ack !== undefined) assert.equal(ack.ok, receiver.state === 'done');
      }
      const err = receiver.error;
      if (err !== undefined) {
        assert.ok(err instanceof VnetError);
        assert.doesNotMatch(err.message, /^receiver failed:/, `the receiver caught a bug: ${err.message}`);
      }
      return got.error?.code ?? (err !== undefined ? `receiver:${err.code}` : `ok:${receiver.state}`);
    },
    show: (i) => `${showBytes(i.bytes, 256)} in ${i.chunks.length} chunks, maxRecord ${i.maxRecord}`,
  });
});

interface HelloInput {
  readonly bytes: Buffer;
  readonly chunks: Buffer[];
}

test('fuzz: migration channel hello (channel-hello) — lines in random chunkings', async (t) => {
  const valid = [
    encodeChannelHello({ id: 'm-1', index: 0, count: 1 }),
    encodeChannelHello({ id: 'mig_42-x', index: 1, count: 2 }),
    encodeChannelReply({ ok: true }),
    encodeChannelReply({ ok: false, code: 'VNET_ERR_HOST_CHANNEL_REFUSED' }),
  ];
  await fuzz<HelloInput>(t, {
    name: 'migration-channel-hello',
    generate(rand) {
      const base = rand.pick(valid);
      const mode = rand.int(8);
      let bytes: Buffer;
      if (mode === 0) bytes = rand.bytes(rand.size(300));
      else if (mode === 1) bytes = Buffer.concat([Buffer.from('vnet-migrate/1 '), Buffer.alloc(rand.range(100, 400), 0x61), Buffer.from('\n')]);
      else bytes = mutateBytes(rand, Buffer.concat([base, rand.bytes(rand.int(8))]), { corpus: valid });
      return { bytes, chunks: randomChunks(rand, bytes) };
    },
    run({ chunks }) {
      const reader = new LineReader();
      let held = 0;
      for (const c of chunks) {
        const r = reader.push(c);
        if (r.state === 'more') {
          held += c.length;
          assert.ok(held <= MAX_LINE, `more than ${MAX_LINE} bytes held`);
          continue;
        }
        if (r.state === 'error') {
          assert.ok(r.error instanceof ChannelHelloError);
          return r.error.code;
        }
        assert.ok(r.line.length <= MAX_LINE && /^[\x20-\x7e]*$/.test(r.line), 'a bounded printable line');
        for (const parsed of [parseChannelHello(r.line), parseChannelReply(r.line)]) {
          if (parsed instanceof Error) assert.ok(parsed instanceof ChannelHelloError);
        }
        const hello = parseChannelHello(r.line);
        if (!(hello instanceof Error)) {
          assert.ok(hello.index < hello.count && hello.count <= 2);
          assert.equal(encodeChannelHello(hello).toString('latin1'), `${r.line}\n`, 'a parsed hello re-encodes to its line');
          return 'hello';
        }
        return parseChannelReply(r.line) instanceof Error ? 'line:not-hello' : 'reply';
      }
      return 'incomplete';
    },
    show: (i) => `${showBytes(i.bytes)} in ${i.chunks.length} chunks`,
  });
});
