import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import {
  TraceChecksumError,
  TraceCorruptError,
  TraceLimitError,
  TraceMagicError,
  TraceTruncatedError,
  TraceUnfinishedError,
  TraceVersionError,
  TraceWriterClosedError,
} from '../errors.ts';

/**
 * The guest-trace file: a sequence of RAM snapshots of one guest, stored as
 * deltas. Memory before snapshot 0 is all zeros, and every snapshot holds the
 * pages whose content differs from the memory after the previous one, with
 * that content. So snapshot 0 is the first RAM image without its zero pages,
 * and later ones are the pages the guest changed in between.
 *
 * Layout (little-endian):
 *
 *   header   magic "VNETTRCE" (8) · version u16 (=1) · reserved u16 (=0)
 *            pageSize u32 · pageCount u32 · snapshotCount u32 (0 while the
 *            writer is still appending) · metaLength u32 · meta (UTF-8 JSON)
 *   record   magic "SNAP" (4) · index u32 (0, 1, 2, …) · tMs f64 (guest running
 *            time since snapshot 0, non-decreasing) · changedCount u32 ·
 *            bodyLength u32 · bodyCrc32 u32 · body (bodyLength bytes)
 *   body     raw DEFLATE of: changedCount page indices (u32, strictly
 *            ascending, < pageCount), then changedCount pages of pageSize bytes
 *
 * The decoder is total: any byte string yields either a Trace or a
 * TraceFormatError subclass naming the offset, the snapshot and the field.
 */

export const TRACE_MAGIC = 'VNETTRCE';
export const TRACE_VERSION = 1;
const RECORD_MAGIC = 'SNAP';
const HEADER_FIXED = 28;
const RECORD_HEADER = 28;
const SNAPSHOT_COUNT_OFFSET = 20;

/** Where the trace came from: written by the recorder, checked strictly by the decoder. */
export const traceMetaSchema = z.strictObject({
  workload: z.string().min(1).max(64),
  kernel: z.string().max(256),
  memoryMiB: z.number().int().positive(),
  intervalMs: z.number().nonnegative(),
  recordedAt: z.string().max(64),
  qemu: z.string().max(256),
  note: z.string().max(1024).optional(),
});
export type TraceMeta = z.infer<typeof traceMetaSchema>;

export interface TraceSnapshot {
  readonly index: number;
  /** Guest running time (ms) since snapshot 0; time the guest spent paused for the dump is not counted. */
  readonly tMs: number;
  /** Pages whose content changed since the previous snapshot (all non-zero pages, for snapshot 0), ascending. */
  readonly pages: Uint32Array;
  /** Their new content, pages.length × pageSize bytes, in the order of `pages`. */
  readonly data: Uint8Array;
}

export interface TraceHeader {
  readonly pageSize: number;
  readonly pageCount: number;
  readonly meta: TraceMeta;
}

export interface Trace extends TraceHeader {
  readonly snapshots: readonly TraceSnapshot[];
}

export interface TraceLimits {
  /** Largest guest accepted, in pages (default 262144 = 1 GiB of 4 KiB pages). */
  readonly maxPageCount: number;
  readonly maxSnapshots: number;
  readonly maxMetaBytes: number;
  /** Largest file `loadTrace` reads. */
  readonly maxFileBytes: number;
  /** Most bytes all records may inflate to together (a small file cannot claim gigabytes). */
  readonly maxDecodedBytes: number;
}

export const DEFAULT_TRACE_LIMITS: TraceLimits = Object.freeze({
  maxPageCount: 262_144,
  maxSnapshots: 10_000,
  maxMetaBytes: 65_536,
  maxFileBytes: 2 ** 31 - 1,
  maxDecodedBytes: 3 * 2 ** 30,
});

// ---- encoding -----------------------------------------------------------------

export function encodeTraceHeader(header: TraceHeader, snapshotCount: number): Uint8Array {
  const meta = Buffer.from(JSON.stringify(traceMetaSchema.parse(header.meta)), 'utf8');
  const out = Buffer.alloc(HEADER_FIXED + meta.length);
  out.write(TRACE_MAGIC, 0, 'latin1');
  out.writeUInt16LE(TRACE_VERSION, 8);
  out.writeUInt16LE(0, 10);
  out.writeUInt32LE(header.pageSize, 12);
  out.writeUInt32LE(header.pageCount, 16);
  out.writeUInt32LE(snapshotCount, SNAPSHOT_COUNT_OFFSET);
  out.writeUInt32LE(meta.length, 24);
  meta.copy(out, HEADER_FIXED);
  return out;
}

/** One snapshot record. `level` is the DEFLATE level (1 fast … 9 small). */
export function encodeSnapshotRecord(snapshot: TraceSnapshot, pageSize: number, level = 6): Uint8Array {
  const n = snapshot.pages.length;
  if (snapshot.data.length !== n * pageSize) throw new RangeError(`snapshot ${snapshot.index}: ${n} pages need ${n * pageSize} bytes of data, got ${snapshot.data.length}`);
  const raw = Buffer.allocUnsafe(n * 4 + snapshot.data.length);
  for (let i = 0; i < n; i++) raw.writeUInt32LE(snapshot.pages[i] ?? 0, i * 4);
  raw.set(snapshot.data, n * 4);
  const body = deflateRawSync(raw, { level });
  const head = Buffer.alloc(RECORD_HEADER);
  head.write(RECORD_MAGIC, 0, 'latin1');
  head.writeUInt32LE(snapshot.index, 4);
  head.writeDoubleLE(snapshot.tMs, 8);
  head.writeUInt32LE(n, 16);
  head.writeUInt32LE(body.length, 20);
  head.writeUInt32LE(crc32(body), 24);
  return Buffer.concat([head, body]);
}

/** A whole trace in memory (tests, small samples). The recorder streams through TraceWriter instead. */
export function encodeTrace(trace: Trace, level = 6): Uint8Array {
  const parts = [encodeTraceHeader(trace, trace.snapshots.length)];
  for (const s of trace.snapshots) parts.push(encodeSnapshotRecord(s, trace.pageSize, level));
  return Buffer.concat(parts);
}

/**
 * The pages of `next` that differ from `prev` (all non-zero pages when `prev`
 * is undefined), with their content copied out of `next`.
 */
export function diffMemory(prev: Uint8Array | undefined, next: Uint8Array, pageSize: number): { pages: Uint32Array; data: Uint8Array } {
  if (next.length % pageSize !== 0) throw new RangeError(`memory of ${next.length} bytes is not whole pages of ${pageSize}`);
  if (prev !== undefined && prev.length !== next.length) throw new RangeError(`memory sizes differ: ${prev.length} and ${next.length}`);
  const pageCount = next.length / pageSize;
  const a = Buffer.from(next.buffer, next.byteOffset, next.length);
  const b = prev === undefined ? undefined : Buffer.from(prev.buffer, prev.byteOffset, prev.length);
  const zero = Buffer.alloc(pageSize);
  const changed: number[] = [];
  for (let p = 0; p < pageCount; p++) {
    const off = p * pageSize;
    const cur = a.subarray(off, off + pageSize);
    const before = b === undefined ? zero : b.subarray(off, off + pageSize);
    if (!cur.equals(before)) changed.push(p);
  }
  const data = Buffer.allocUnsafe(changed.length * pageSize);
  changed.forEach((p, i) => a.copy(data, i * pageSize, p * pageSize, (p + 1) * pageSize));
  return { pages: Uint32Array.from(changed), data };
}

/**
 * Appends snapshot records to a trace file as they are taken; `close` writes
 * the snapshot count into the header, which marks the file finished.
 */
export class TraceWriter {
  readonly #fh: FileHandle;
  readonly #pageSize: number;
  readonly #level: number;
  #count = 0;
  #bytes: number;
  #closed = false;

  private constructor(fh: FileHandle, pageSize: number, headerBytes: number, level: number) {
    this.#fh = fh;
    this.#pageSize = pageSize;
    this.#bytes = headerBytes;
    this.#level = level;
  }

  static async create(path: string, header: TraceHeader, init: { level?: number } = {}): Promise<TraceWriter> {
    const head = encodeTraceHeader(header, 0);
    const fh = await open(path, 'w');
    try {
      await fh.write(head, 0, head.length, 0);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return new TraceWriter(fh, header.pageSize, head.length, init.level ?? 6);
  }

  get snapshotCount(): number {
    return this.#count;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#bytes;
  }

  async append(snapshot: Omit<TraceSnapshot, 'index'>): Promise<number> {
    if (this.#closed) throw new TraceWriterClosedError();
    const rec = encodeSnapshotRecord({ ...snapshot, index: this.#count }, this.#pageSize, this.#level);
    await this.#fh.write(rec, 0, rec.length, this.#bytes);
    this.#bytes += rec.length;
    this.#count += 1;
    return rec.length;
  }

  /** Finish the file (unless `abandon`: then it stays marked unfinished) and close it. */
  async close(abandon = false): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (!abandon) {
        const n = Buffer.alloc(4);
        n.writeUInt32LE(this.#count, 0);
        await this.#fh.write(n, 0, 4, SNAPSHOT_COUNT_OFFSET);
      }
    } finally {
      await this.#fh.close();
    }
  }
}

// ---- decoding -----------------------------------------------------------------

/** Decode a whole trace file held in memory. Total: returns a Trace or throws a TraceFormatError. */
export function decodeTrace(bytes: Uint8Array, limits: Partial<TraceLimits> = {}): Trace {
  const lim = { ...DEFAULT_TRACE_LIMITS, ...limits };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const header = decodeHeader(buf, lim);
  const { pageSize, pageCount, snapshotCount } = header;
  let off = header.length;
  const snapshots: TraceSnapshot[] = [];
  let lastT = 0;
  let decoded = 0;
  while (off < buf.length) {
    const index = snapshots.length;
    if (index >= snapshotCount) {
      if (snapshotCount === 0) throw new TraceUnfinishedError('the writer did not finish this file (snapshot count is 0 but records follow)', SNAPSHOT_COUNT_OFFSET);
      throw new TraceCorruptError('trailer', `${buf.length - off} bytes after the last of ${snapshotCount} snapshots`, off);
    }
    need(buf, off, RECORD_HEADER, index);
    if (buf.toString('latin1', off, off + 4) !== RECORD_MAGIC) throw new TraceCorruptError('record magic', 'not "SNAP"', off, index);
    const recIndex = buf.readUInt32LE(off + 4);
    if (recIndex !== index) throw new TraceCorruptError('index', `is ${recIndex}, expected ${index}`, off + 4, index);
    const tMs = buf.readDoubleLE(off + 8);
    if (!Number.isFinite(tMs) || tMs < 0) throw new TraceCorruptError('tMs', `${tMs} is not a finite non-negative time`, off + 8, index);
    if (tMs < lastT) throw new TraceCorruptError('tMs', `${tMs} is earlier than the previous snapshot's ${lastT}`, off + 8, index);
    const n = buf.readUInt32LE(off + 16);
    if (n > pageCount) throw new TraceCorruptError('changedCount', `${n} exceeds the guest's ${pageCount} pages`, off + 16, index);
    const bodyLength = buf.readUInt32LE(off + 20);
    const crc = buf.readUInt32LE(off + 24);
    const bodyOff = off + RECORD_HEADER;
    need(buf, bodyOff, bodyLength, index);
    const body = buf.subarray(bodyOff, bodyOff + bodyLength);
    const actual = crc32(body);
    if (actual !== crc) throw new TraceChecksumError(crc, actual, off + 24, index);
    const rawLength = n * (4 + pageSize);
    decoded += rawLength;
    if (decoded > lim.maxDecodedBytes) throw new TraceLimitError('decoded size', decoded, lim.maxDecodedBytes, off + 16, index);
    let raw: Buffer;
    try {
      raw = inflateRawSync(body, { maxOutputLength: Math.max(rawLength, 1) });
    } catch (err) {
      throw new TraceCorruptError('body', `does not inflate to ${rawLength} bytes`, bodyOff, index, { cause: err });
    }
    if (raw.length !== rawLength) throw new TraceCorruptError('body', `inflates to ${raw.length} bytes, expected ${rawLength}`, bodyOff, index);
    const pages = new Uint32Array(n);
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const p = raw.readUInt32LE(i * 4);
      if (p >= pageCount) throw new TraceCorruptError('pages', `page ${p} is beyond the guest's ${pageCount} pages`, bodyOff, index);
      if (p <= prev) throw new TraceCorruptError('pages', `page ${p} follows ${prev}: not strictly ascending`, bodyOff, index);
      pages[i] = p;
      prev = p;
    }
    snapshots.push({ index, tMs, pages, data: raw.subarray(n * 4) });
    lastT = tMs;
    off = bodyOff + bodyLength;
  }
  if (snapshotCount === 0) throw new TraceUnfinishedError(snapshots.length === 0 ? 'no snapshots' : 'the writer did not finish this file', SNAPSHOT_COUNT_OFFSET);
  if (snapshots.length < snapshotCount) throw new TraceTruncatedError(RECORD_HEADER, 0, off, snapshots.length);
  return { pageSize, pageCount, meta: header.meta, snapshots };
}

/** Read and decode a trace file. I/O errors propagate as they are (ENOENT …); bad content is a TraceFormatError. */
export async function loadTrace(path: string, limits: Partial<TraceLimits> = {}): Promise<Trace> {
  const lim = { ...DEFAULT_TRACE_LIMITS, ...limits };
  const st = await stat(path);
  if (st.size > lim.maxFileBytes) throw new TraceLimitError('file size', st.size, lim.maxFileBytes, 0);
  return decodeTrace(await readFile(path), lim);
}

/** Only the header (for listing traces without inflating them). */
export async function readTraceHeader(path: string, limits: Partial<TraceLimits> = {}): Promise<TraceHeader & { snapshotCount: number; fileBytes: number }> {
  const lim = { ...DEFAULT_TRACE_LIMITS, ...limits };
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    const len = Math.min(st.size, HEADER_FIXED + lim.maxMetaBytes);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, 0);
    const h = decodeHeader(buf, lim);
    return { pageSize: h.pageSize, pageCount: h.pageCount, meta: h.meta, snapshotCount: h.snapshotCount, fileBytes: st.size };
  } finally {
    await fh.close();
  }
}

function decodeHeader(buf: Buffer, lim: TraceLimits): TraceHeader & { snapshotCount: number; length: number } {
  if (buf.length < 8 || buf.toString('latin1', 0, 8) !== TRACE_MAGIC) {
    if (buf.length > 0 && buf.length < 8 && TRACE_MAGIC.startsWith(buf.toString('latin1'))) throw new TraceTruncatedError(8 - buf.length, buf.length, 0);
    throw new TraceMagicError();
  }
  need(buf, 0, HEADER_FIXED, undefined);
  const version = buf.readUInt16LE(8);
  if (version !== TRACE_VERSION) throw new TraceVersionError(version, TRACE_VERSION);
  if (buf.readUInt16LE(10) !== 0) throw new TraceCorruptError('reserved', 'must be 0', 10);
  const pageSize = buf.readUInt32LE(12);
  if (pageSize < 512 || pageSize > 65_536 || (pageSize & (pageSize - 1)) !== 0) throw new TraceCorruptError('pageSize', `${pageSize} is not a power of two in [512, 65536]`, 12);
  const pageCount = buf.readUInt32LE(16);
  if (pageCount === 0) throw new TraceCorruptError('pageCount', 'is 0', 16);
  if (pageCount > lim.maxPageCount) throw new TraceLimitError('pageCount', pageCount, lim.maxPageCount, 16);
  const snapshotCount = buf.readUInt32LE(SNAPSHOT_COUNT_OFFSET);
  if (snapshotCount > lim.maxSnapshots) throw new TraceLimitError('snapshotCount', snapshotCount, lim.maxSnapshots, SNAPSHOT_COUNT_OFFSET);
  const metaLength = buf.readUInt32LE(24);
  if (metaLength > lim.maxMetaBytes) throw new TraceLimitError('metaLength', metaLength, lim.maxMetaBytes, 24);
  need(buf, HEADER_FIXED, metaLength, undefined);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(HEADER_FIXED, HEADER_FIXED + metaLength)));
  } catch (err) {
    throw new TraceCorruptError('meta', 'is not UTF-8 JSON', HEADER_FIXED, undefined, { cause: err });
  }
  const parsed = traceMetaSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join('.') ?? '';
    throw new TraceCorruptError(key ? `meta.${key}` : 'meta', issue?.message ?? 'invalid', HEADER_FIXED);
  }
  return { pageSize, pageCount, meta: parsed.data, snapshotCount, length: HEADER_FIXED + metaLength };
}

function need(buf: Buffer, off: number, n: number, snapshot: number | undefined): void {
  const left = Math.max(0, buf.length - off);
  if (left < n) throw new TraceTruncatedError(n - left, left, off, snapshot);
}
