import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordLayerError } from '../../src/dataplane/errors.ts';
import { RECORD_HEADER_BYTES, RECORD_MAX_PLAIN, RECORD_TAG_BYTES, RecordOpener, RecordSealer, type RecordDirection } from '../../src/dataplane/record-layer.ts';
import { fuzz, showBytes, type Rand } from './fuzz-kit.ts';
import { mutateBytes, randomChunks, type LengthField } from './mutate.ts';

/**
 * The native record layer's opener (src/dataplane/record-layer.ts) under
 * random and mutated record streams in random chunkings. Oracle: push never
 * throws; the only error is a RecordLayerError, and once there is one no
 * more plaintext comes; the pending bytes never exceed one record; every
 * plaintext handed out is exactly a prefix of what was sealed (a mutation
 * never yields altered plaintext); and the result does not depend on the
 * chunking.
 */

const KEY = Buffer.alloc(32, 0x42);
const IV = Buffer.alloc(12, 0x24);
const direction = (): RecordDirection => ({ key: KEY, iv: IV, seq: 0, bytes: 0 });

interface Input {
  readonly plain: Buffer;
  readonly bytes: Buffer;
  readonly chunks: Buffer[];
}

function sealedStream(rand: Rand): { plain: Buffer; bytes: Buffer; lengths: LengthField[] } {
  const sealer = new RecordSealer(direction());
  const plains: Buffer[] = [];
  const parts: Buffer[] = [];
  const lengths: LengthField[] = [];
  let off = 0;
  for (let k = rand.range(1, 6); k > 0; k--) {
    const p = rand.bytes(rand.chance(0.002) ? rand.range(1, RECORD_MAX_PLAIN) : rand.range(1, 1600));
    const r = sealer.seal([p]) as Buffer;
    plains.push(p);
    parts.push(r);
    lengths.push({ offset: off, width: 4 });
    off += r.length;
  }
  return { plain: Buffer.concat(plains), bytes: Buffer.concat(parts), lengths };
}

function open(chunks: readonly Buffer[]): { plain: Buffer; error: string | undefined } {
  const opener = new RecordOpener(direction());
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
  if (error !== undefined) assert.ok(error instanceof RecordLayerError && /^VNET_ERR_RECORD_[A-Z]+$/.test(error.code), String(error));
  return { plain: Buffer.concat(plain), error: error?.code };
}

test('fuzz: native record layer opener (record-layer) — random and mutated record streams in random chunkings', async (t) => {
  await fuzz<Input>(t, {
    name: 'native-record-layer',
    generate(rand) {
      const a = sealedStream(rand);
      const mode = rand.int(10);
      const bytes = mode === 0 ? rand.bytes(rand.size(2048)) : mode === 1 ? a.bytes : mutateBytes(rand, a.bytes, { corpus: [sealedStream(rand).bytes], lengths: a.lengths });
      return { plain: a.plain, bytes, chunks: randomChunks(rand, bytes) };
    },
    run({ plain, bytes, chunks }) {
      const got = open(chunks);
      assert.deepEqual(got, open([bytes]), 'the same in every chunking');
      assert.ok(plain.subarray(0, got.plain.length).equals(got.plain), 'only plaintext that was sealed, in order');
      return got.error ?? 'ok';
    },
    show: (i) => `${showBytes(i.bytes)} in ${i.chunks.length} chunks`,
  });
});
