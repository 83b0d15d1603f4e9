import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeTrace, diffMemory, encodeTrace, loadTrace, readTraceHeader, TraceWriter, type Trace, type TraceMeta } from '../../../src/migration/qemu/trace-format.ts';
import {
  TraceChecksumError,
  TraceCorruptError,
  TraceFormatError,
  TraceLimitError,
  TraceMagicError,
  TraceTruncatedError,
  TraceUnfinishedError,
  TraceVersionError,
} from '../../../src/migration/errors.ts';

const PS = 4096;
const META: TraceMeta = { workload: 'test', kernel: 'none', memoryMiB: 64, intervalMs: 100, recordedAt: '2026-01-01T00:00:00Z', qemu: 'none' };

/** Three RAM images of `pages` pages: mostly zero, a few patterned pages, then changes. */
function images(pages = 16): Uint8Array[] {
  const a = new Uint8Array(pages * PS);
  for (let p = 0; p < pages; p += 3) a.fill(p + 1, p * PS, p * PS + 100);
  const b = a.slice();
  b[5 * PS + 7] = 0xaa; // page 5 changes
  b.fill(0, 0, PS); // page 0 becomes zero again
  const c = b.slice();
  c.fill(0x55, 9 * PS, 10 * PS); // page 9 becomes non-zero
  return [a, b, c];
}

function traceOf(imgs: Uint8Array[], pageCount: number): Trace {
  let prev: Uint8Array | undefined;
  const snapshots = imgs.map((img, index) => {
    const d = diffMemory(prev, img, PS);
    prev = img;
    return { index, tMs: index * 100, ...d };
  });
  return { pageSize: PS, pageCount, meta: META, snapshots };
}

function replay(t: Trace): Uint8Array[] {
  const mem = new Uint8Array(t.pageCount * t.pageSize);
  return t.snapshots.map((s) => {
    s.pages.forEach((p, i) => mem.set(s.data.subarray(i * t.pageSize, (i + 1) * t.pageSize), p * t.pageSize));
    return mem.slice();
  });
}

test('diffMemory lists only changed pages; snapshot 0 lists only non-zero pages', () => {
  const [a, b, c] = images();
  assert.deepEqual([...diffMemory(undefined, a!, PS).pages], [0, 3, 6, 9, 12, 15]);
  assert.deepEqual([...diffMemory(a, b!, PS).pages], [0, 5]);
  const d = diffMemory(b, c!, PS);
  assert.deepEqual([...d.pages], [9]);
  assert.equal(d.data.length, PS);
  assert.equal(d.data[0], 0x55);
  assert.throws(() => diffMemory(undefined, new Uint8Array(PS + 1), PS), RangeError);
});

test('encode then decode gives back every snapshot, and replaying them rebuilds each image', () => {
  const imgs = images();
  const t = traceOf(imgs, 16);
  const back = decodeTrace(encodeTrace(t));
  assert.equal(back.pageCount, 16);
  assert.equal(back.pageSize, PS);
  assert.deepEqual(back.meta, META);
  assert.deepEqual(back.snapshots.map((s) => s.tMs), [0, 100, 200]);
  assert.deepEqual(back.snapshots.map((s) => [...s.pages]), t.snapshots.map((s) => [...s.pages]));
  const rebuilt = replay(back);
  imgs.forEach((img, i) => assert.ok(Buffer.from(rebuilt[i]!).equals(Buffer.from(img)), `image ${i}`));
});

test('an empty delta (nothing changed) round-trips', () => {
  const [a] = images();
  const t = traceOf([a!, a!], 16);
  const back = decodeTrace(encodeTrace(t));
  assert.equal(back.snapshots[1]?.pages.length, 0);
});

test('TraceWriter streams records; the file is unfinished until close, and readTraceHeader reads only the header', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-trace-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'x.trace');
  const imgs = images();
  const w = await TraceWriter.create(path, { pageSize: PS, pageCount: 16, meta: META });
  let prev: Uint8Array | undefined;
  for (const [i, img] of imgs.entries()) {
    await w.append({ tMs: i * 50, ...diffMemory(prev, img, PS) });
    prev = img;
  }
  await assert.rejects(loadTrace(path), TraceUnfinishedError);
  await w.close();
  const back = await loadTrace(path);
  assert.equal(back.snapshots.length, 3);
  assert.deepEqual(replay(back).map((m) => Buffer.from(m).equals(Buffer.from(imgs[2]!))), [false, false, true]);
  const h = await readTraceHeader(path);
  assert.equal(h.snapshotCount, 3);
  assert.equal(h.meta.workload, 'test');
  assert.equal(h.fileBytes, readFileSync(path).length);
});

// ---- corrupt files ----------------------------------------------------------------

const good = (): Buffer => Buffer.from(encodeTrace(traceOf(images(), 16)));
const headerLength = (b: Buffer): number => 28 + b.readUInt32LE(24);

function expectError<E extends TraceFormatError>(bytes: Uint8Array, cls: new (...a: never[]) => E, code: string, check?: (e: E) => void): void {
  assert.throws(() => decodeTrace(bytes), (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal((err as E).code, code);
    check?.(err as E);
    return true;
  });
}

test('bad magic, version, reserved field and page size are named', () => {
  expectError(Buffer.from('hello world, not a trace at all'), TraceMagicError, 'VNET_ERR_TRACE_MAGIC');
  expectError(new Uint8Array(0), TraceMagicError, 'VNET_ERR_TRACE_MAGIC');
  expectError(Buffer.from('VNET'), TraceTruncatedError, 'VNET_ERR_TRACE_TRUNCATED');
  const v = good();
  v.writeUInt16LE(2, 8);
  expectError(v, TraceVersionError, 'VNET_ERR_TRACE_VERSION');
  const r = good();
  r.writeUInt16LE(1, 10);
  expectError(r, TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', (e) => assert.equal(e.field, 'reserved'));
  const p = good();
  p.writeUInt32LE(3000, 12);
  expectError(p, TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', (e) => assert.equal(e.field, 'pageSize'));
});

test('limits: too many pages, snapshots or metadata bytes are TraceLimitError', () => {
  const b = good();
  b.writeUInt32LE(2 ** 31, 16);
  expectError(b, TraceLimitError, 'VNET_ERR_TRACE_LIMIT', (e) => assert.equal(e.limit, 'pageCount'));
  const m = good();
  m.writeUInt32LE(10_000_000, 24);
  expectError(m, TraceLimitError, 'VNET_ERR_TRACE_LIMIT', (e) => assert.equal(e.limit, 'metaLength'));
  assert.throws(() => decodeTrace(good(), { maxSnapshots: 2 }), TraceLimitError);
  assert.throws(() => decodeTrace(good(), { maxDecodedBytes: 8 * 4100 }), (e: unknown) => e instanceof TraceLimitError && e.limit === 'decoded size');
});

test('metadata that is not JSON, or has a wrong or unknown key, is named', () => {
  const b = good();
  b[28] = 0x7b + 1; // '{' → '|'
  expectError(b, TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', (e) => assert.equal(e.field, 'meta'));
  const withMeta = (meta: unknown): Buffer => {
    const json = Buffer.from(JSON.stringify(meta));
    const head = Buffer.alloc(28);
    good().copy(head, 0, 0, 28);
    head.writeUInt32LE(json.length, 24);
    return Buffer.concat([head, json, good().subarray(headerLength(good()))]);
  };
  expectError(withMeta({ ...META, memoryMiB: 'lots' }), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', (e) => assert.equal(e.field, 'meta.memoryMiB'));
  expectError(withMeta({ ...META, extra: 1 }), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', (e) => assert.match(e.field, /^meta/));
});

test('a file cut anywhere is TraceTruncatedError (or unfinished), never anything else', () => {
  const b = good();
  for (let len = 1; len < b.length; len += 7) {
    assert.throws(() => decodeTrace(b.subarray(0, len)), (err: unknown) => err instanceof TraceTruncatedError || (err instanceof TraceMagicError && len < 8), `cut at ${len}`);
  }
});

test('a flipped byte in a record body is a checksum error naming the snapshot', () => {
  const b = good();
  const rec0 = headerLength(b);
  const body0 = rec0 + 28;
  b[body0 + 3] = (b[body0 + 3] ?? 0) ^ 0xff;
  expectError(b, TraceChecksumError, 'VNET_ERR_TRACE_CHECKSUM', (e) => assert.equal(e.snapshot, 0));
});

test('record fields out of range are named: magic, index, time, count, page order, body size, trailing bytes', () => {
  const rec0 = headerLength(good());
  const mutate = (fn: (b: Buffer) => void): Buffer => {
    const b = good();
    fn(b);
    return b;
  };
  const field = (f: string) => (e: TraceCorruptError): void => assert.equal(e.field, f);
  expectError(mutate((b) => b.write('SNAQ', rec0, 'latin1')), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('record magic'));
  expectError(mutate((b) => b.writeUInt32LE(7, rec0 + 4)), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('index'));
  expectError(mutate((b) => b.writeDoubleLE(Number.NaN, rec0 + 8)), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('tMs'));
  expectError(mutate((b) => b.writeDoubleLE(1e9, rec0 + 8)), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', (e) => {
    assert.equal(e.field, 'tMs');
    assert.equal(e.snapshot, 1);
  });
  expectError(mutate((b) => b.writeUInt32LE(17, rec0 + 16)), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('changedCount'));
  expectError(mutate((b) => b.writeUInt32LE(2, rec0 + 16)), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('body'));
  expectError(Buffer.concat([good(), Buffer.from('junk')]), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('trailer'));
  // A body with pages out of order, re-checksummed so only the order is wrong.
  const t = traceOf(images(), 16);
  const s0 = t.snapshots[0]!;
  const swapped = { ...t, snapshots: [{ ...s0, pages: Uint32Array.from([3, 0, 6, 9, 12, 15]) }] };
  expectError(encodeTrace(swapped), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('pages'));
  const beyond = { ...t, pageCount: 10, snapshots: [s0] };
  expectError(encodeTrace(beyond), TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('pages'));
  // A body that is not DEFLATE at all.
  const junk = mutate((b) => {
    const len = b.readUInt32LE(rec0 + 20);
    b.fill(0xff, rec0 + 28, rec0 + 28 + len);
    b.writeUInt32LE(crc32(b.subarray(rec0 + 28, rec0 + 28 + len)), rec0 + 24);
  });
  expectError(junk, TraceCorruptError, 'VNET_ERR_TRACE_CORRUPT', field('body'));
});

test('a finished header with no records, or fewer than it promises, is an error', () => {
  const b = good();
  const head = b.subarray(0, headerLength(b));
  expectError(head, TraceTruncatedError, 'VNET_ERR_TRACE_TRUNCATED');
  const zero = Buffer.from(head);
  zero.writeUInt32LE(0, 20);
  expectError(zero, TraceUnfinishedError, 'VNET_ERR_TRACE_UNFINISHED');
});

test('random bytes after a valid header never escape as anything but a TraceFormatError', () => {
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const head = good().subarray(0, headerLength(good()));
  for (let i = 0; i < 300; i++) {
    const tail = Buffer.alloc(1 + (i % 97));
    for (let k = 0; k < tail.length; k++) tail[k] = rnd();
    if (i % 3 === 0) tail.write('SNAP', 0, 'latin1');
    const bytes = Buffer.concat([head, tail]);
    try {
      decodeTrace(bytes);
      assert.fail('random bytes decoded');
    } catch (err) {
      assert.ok(err instanceof TraceFormatError, String(err));
    }
  }
  // Random mutations of a good file: decode or fail with a TraceFormatError.
  for (let i = 0; i < 200; i++) {
    const b = good();
    b[rnd() * 4 % b.length] = rnd();
    b[(rnd() << 8 | rnd()) % b.length] = rnd();
    try {
      decodeTrace(b);
    } catch (err) {
      assert.ok(err instanceof TraceFormatError, String(err));
    }
  }
});

test('loadTrace reads a file from disk and refuses files over the size limit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-trace-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'y.trace');
  writeFileSync(path, good());
  assert.equal((await loadTrace(path)).snapshots.length, 3);
  await assert.rejects(loadTrace(path, { maxFileBytes: 100 }), TraceLimitError);
});
