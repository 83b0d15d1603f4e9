import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordLayerError } from '../../src/dataplane/errors.ts';
import { RECORD_HEADER_BYTES, RECORD_MAX_PLAIN, RECORD_TAG_BYTES, RecordOpener, RecordSealer, type RekeyThresholds } from '../../src/dataplane/record-layer.ts';
import { hkdfExpandLabel, type RecordDirection } from '../../src/dataplane/record-keys.ts';
import { fuzz, showBytes, type Rand } from './fuzz-kit.ts';
import { mutateBytes, randomChunks, type LengthField } from './mutate.ts';
import { recordLengthFields } from '../dataplane/record-fixtures.ts';

/**
 * The native record layer's opener (src/dataplane/record-layer.ts) under
 * random and mutated record streams in random chunkings, on vnet-records/1
 * and on /2 with tiny rekey thresholds (so that KEY_UPDATE records are among
 * what gets mutated, reordered and spliced). Oracle: push never
 * throws; the only error is a RecordLayerError, and once there is one no
 * more plaintext comes; the pending bytes never exceed one record; every
 * plaintext handed out is exactly a prefix of what was sealed (a mutation
 * never yields altered plaintext); and the result does not depend on the
 * chunking.
 */

const KEY = Buffer.alloc(32, 0x42);
const IV = Buffer.alloc(12, 0x24);
const SECRET = Buffer.alloc(32, 0x5e);
/** A fresh direction (its own buffers: a key update zeroes the old ones): /1 with a fixed key, /2 from a fixed secret. */
function direction(version: 1 | 2): RecordDirection {
  if (version === 1) return { key: Buffer.from(KEY), iv: Buffer.from(IV), secret: undefined, generation: 0, seq: 0, bytes: 0 };
  return { key: hkdfExpandLabel(SECRET, 'key', 32), iv: hkdfExpandLabel(SECRET, 'iv', 12), secret: Buffer.from(SECRET), generation: 0, seq: 0, bytes: 0 };
}

interface Input {
  readonly version: 1 | 2;
  readonly plain: Buffer;
  readonly bytes: Buffer;
  readonly chunks: Buffer[];
}

function sealedStream(rand: Rand, version: 1 | 2): { plain: Buffer; bytes: Buffer; lengths: LengthField[] } {
  const rekey: RekeyThresholds = { records: rand.range(1, 4), bytes: rand.chance(0.5) ? 2 ** 40 : rand.range(1, 3000) };
  const sealer = new RecordSealer(direction(version), undefined, rekey);
  const plains: Buffer[] = [];
  const parts: Buffer[] = [];
  const lengths: LengthField[] = [];
  let off = 0;
  for (let k = rand.range(1, 6); k > 0; k--) {
    const p = rand.bytes(rand.chance(0.002) ? rand.range(1, RECORD_MAX_PLAIN) : rand.range(1, 1600));
    const r = sealer.seal([p]) as Buffer;
    plains.push(p);
    parts.push(r);
    lengths.push(...recordLengthFields(r, off)); // a KEY_UPDATE may come first
    off += r.length;
  }
  return { plain: Buffer.concat(plains), bytes: Buffer.concat(parts), lengths };
}

function open(version: 1 | 2, chunks: readonly Buffer[]): { plain: Buffer; error: string | undefined } {
  const opener = new RecordOpener(direction(version));
  const plain: Buffer[] = [];
  let error: RecordLayerError | undefined;
  for (const c of chunks) {
    const r = opener.push(c);
    if (error !== undefined) assert.equal(r.plain.length, 0, 'no plaintext after an error');
    plain.push(...r.plain);
    error ??= r.error;
    assert.ok(opener.pending.length <= RECORD_HEADER_BYTES + RECORD_MAX_PLAIN + RECORD_TAG_BYTES, `holds ${opener.pending.length} bytes`);
  }
  error ??= opener.end();
  if (error !== undefined) assert.ok(error instanceof RecordLayerError && /^VNET_ERR_RECORD_[A-Z_]+$/.test(error.code), String(error));
  return { plain: Buffer.concat(plain), error: error?.code };
}

test('fuzz: native record layer opener (record-layer) — random and mutated record streams in random chunkings', async (t) => {
  await fuzz<Input>(t, {
    name: 'native-record-layer',
    generate(rand) {
      const version = rand.chance(0.3) ? 1 : 2;
      const a = sealedStream(rand, version);
      const mode = rand.int(10);
      const bytes = mode === 0 ? rand.bytes(rand.size(2048)) : mode === 1 ? a.bytes : mutateBytes(rand, a.bytes, { corpus: [sealedStream(rand, version).bytes], lengths: a.lengths });
      return { version, plain: a.plain, bytes, chunks: randomChunks(rand, bytes) };
    },
    run({ version, plain, bytes, chunks }) {
      const got = open(version, chunks);
      assert.deepEqual(got, open(version, [bytes]), 'the same in every chunking');
      assert.ok(plain.subarray(0, got.plain.length).equals(got.plain), 'only plaintext that was sealed, in order');
      return got.error ?? 'ok';
    },
    show: (i) => `vnet-records/${i.version}: ${showBytes(i.bytes)} in ${i.chunks.length} chunks`,
  });
});
