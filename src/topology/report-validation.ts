import { MAX_FRAME_BYTES, MIN_FRAME_BYTES } from '../common/frame.ts';
import { isMulticastMac, type Mac } from '../common/mac.ts';
import {
  ReportAbsurdValueError,
  ReportCountError,
  ReportDuplicatePairError,
  ReportIntervalError,
  ReportMacError,
  ReportShapeError,
  type TrafficReportError,
} from './errors.ts';
import type { TrafficEntry, TrafficReport } from './traffic-report.ts';

/**
 * Total validation of a daemon's traffic report (untrusted: it came over the
 * control channel). Any value that could poison the global matrix — NaN,
 * negative, infinite or fractional counts, counts beyond any link's rate,
 * bad MACs, an empty or reversed interval, a pair counted twice — rejects
 * the whole report with a typed error naming the field. Never throws.
 */

export const MAX_REPORT_ENTRIES = 1 << 20;
export const MAX_REPORT_INTERVAL_MS = 3_600_000;
export const MAX_HOST_NAME_LENGTH = 253;
/** No single VM pair carries more than this through one daemon (≈ 8 Tbit/s): beyond it a counter is broken. */
export const MAX_PAIR_BYTES_PER_SECOND = 1e12;
/** No single VM pair sends more frames than this per second (≈ 1e12 / 64). */
export const MAX_PAIR_FRAMES_PER_SECOND = 2e10;

const MAX_MAC = 0xffff_ffff_ffff;

export type ReportValidation =
  | { readonly ok: true; readonly report: TrafficReport }
  | { readonly ok: false; readonly error: TrafficReportError };

function fail(error: TrafficReportError): ReportValidation {
  return { ok: false, error };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (typeof x === 'number') return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x);
  if (x === null) return 'null';
  return typeof x;
}

function checkTime(value: unknown, path: string): ReportIntervalError | undefined {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    return new ReportIntervalError(path, `must be a non-negative integer millisecond time, got ${describe(value)}`);
  }
  return undefined;
}

function checkMac(value: unknown, path: string): ReportMacError | undefined {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_MAC) {
    return new ReportMacError(path, `must be an integer MAC in [0, 2^48), got ${describe(value)}`);
  }
  return undefined;
}

function checkCount(value: unknown, path: string): ReportCountError | undefined {
  if (typeof value !== 'number') return new ReportCountError(path, `must be a number, got ${describe(value)}`);
  if (Number.isNaN(value)) return new ReportCountError(path, 'is NaN');
  if (!Number.isFinite(value)) return new ReportCountError(path, `is not finite (${value})`);
  if (value < 0) return new ReportCountError(path, `is negative (${value})`);
  if (!Number.isInteger(value)) return new ReportCountError(path, `is not an integer (${value})`);
  if (!Number.isSafeInteger(value)) return new ReportCountError(path, `exceeds 2^53 (${value})`);
  return undefined;
}

/**
 * Set of (src, dst) MAC pairs for duplicate detection: an open-addressing
 * table of entry positions (at most half full) over a 30-bit hash of the
 * pair, each probe confirmed against the pairs themselves (typed arrays, no
 * Map and no boxed keys). A probe run longer than MAX_PROBES — crafted pairs
 * sharing a hash — switches to exact string keys, so any input stays O(n).
 */
const MAX_PROBES = 64;

class PairSet {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly srcs: Float64Array;
  private readonly dsts: Float64Array;
  private exact: Set<string> | undefined;

  constructor(capacity: number) {
    let size = 16;
    while (size < 2 * capacity) size *= 2;
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    this.srcs = new Float64Array(capacity);
    this.dsts = new Float64Array(capacity);
  }

  /** Add the pair of entry `index` (entries are added in order); true if it was already present. */
  add(src: Mac, dst: Mac, index: number): boolean {
    if (this.exact !== undefined) return this.addExact(src, dst);
    let h = pairHash(src, dst) & this.mask;
    for (let probe = 0; ; probe++) {
      const s = this.slots[h]!;
      if (s === 0) {
        this.slots[h] = index + 1;
        this.srcs[index] = src;
        this.dsts[index] = dst;
        return false;
      }
      if (this.srcs[s - 1] === src && this.dsts[s - 1] === dst) return true;
      if (probe >= MAX_PROBES) {
        this.exact = new Set();
        for (let i = 0; i < index; i++) this.exact.add(`${this.srcs[i]!},${this.dsts[i]!}`);
        return this.addExact(src, dst);
      }
      h = (h + 1) & this.mask;
    }
  }

  private addExact(src: Mac, dst: Mac): boolean {
    const k = `${src},${dst}`;
    if (this.exact!.has(k)) return true;
    this.exact!.add(k);
    return false;
  }
}

function pairHash(src: Mac, dst: Mac): number {
  // Low and high 32 bits by integer conversions (no floating-point modulo).
  let h = Math.imul((src >>> 0) ^ ((src / 0x1_0000_0000) | 0), 0x9e3779b1);
  h = Math.imul(h ^ (dst >>> 0), 0x85ebca6b) ^ ((dst / 0x1_0000_0000) | 0);
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
  return (h ^ (h >>> 15)) & 0x3fff_ffff;
}

/** The first error of one entry's fields, in the order the fields are checked; undefined when the entry is valid. */
function entryError(
  path: string,
  src: unknown,
  dst: unknown,
  frames: unknown,
  bytes: unknown,
  seconds: number,
  maxFrames: number,
  maxBytes: number,
): TrafficReportError | undefined {
  const macError = checkMac(src, `${path}.src`) ?? checkMac(dst, `${path}.dst`);
  if (macError !== undefined) return macError;
  if (isMulticastMac(src as Mac)) return new ReportMacError(`${path}.src`, `source MAC ${src as Mac} has the group bit set`);
  if (src === dst) return new ReportMacError(`${path}.dst`, 'equals the source MAC');
  const countError = checkCount(frames, `${path}.frames`) ?? checkCount(bytes, `${path}.bytes`);
  if (countError !== undefined) return countError;
  const f = frames as number;
  const b = bytes as number;
  if (f > maxFrames) return new ReportAbsurdValueError(`${path}.frames`, `${f} frames in ${seconds} s is beyond any link`);
  if (b > maxBytes) return new ReportAbsurdValueError(`${path}.bytes`, `${b} bytes in ${seconds} s is beyond any link`);
  if (b < f * MIN_FRAME_BYTES || b > f * MAX_FRAME_BYTES) return new ReportCountError(`${path}.bytes`, `${b} bytes cannot be ${f} Ethernet frames`);
  return undefined;
}

/** Validate an untrusted report; on success the returned report is a fresh copy holding only known fields (report and entry list frozen). */
export function validateReport(input: unknown): ReportValidation {
  if (!isRecord(input)) return fail(new ReportShapeError('(report)', `must be an object, got ${describe(input)}`));
  const { host, startMs, endMs, entries } = input;
  if (typeof host !== 'string' || host.length === 0 || host.length > MAX_HOST_NAME_LENGTH) {
    return fail(new ReportShapeError('host', `must be a non-empty string of at most ${MAX_HOST_NAME_LENGTH} characters, got ${describe(host)}`));
  }
  const startError = checkTime(startMs, 'startMs') ?? checkTime(endMs, 'endMs');
  if (startError !== undefined) return fail(startError);
  const start = startMs as number;
  const end = endMs as number;
  if (end <= start) return fail(new ReportIntervalError('endMs', `must be after startMs (${start}), got ${end}`));
  if (end - start > MAX_REPORT_INTERVAL_MS) {
    return fail(new ReportIntervalError('endMs', `interval of ${end - start} ms exceeds ${MAX_REPORT_INTERVAL_MS} ms`));
  }
  if (!Array.isArray(entries)) return fail(new ReportShapeError('entries', `must be an array, got ${describe(entries)}`));
  if (entries.length > MAX_REPORT_ENTRIES) {
    return fail(new ReportShapeError('entries', `${entries.length} entries exceed the limit of ${MAX_REPORT_ENTRIES}`));
  }
  const seconds = (end - start) / 1000;
  const maxBytes = MAX_PAIR_BYTES_PER_SECOND * seconds;
  const maxFrames = MAX_PAIR_FRAMES_PER_SECOND * seconds;
  const out: TrafficEntry[] = new Array<TrafficEntry>(entries.length);
  const seen = new PairSet(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e: unknown = entries[i];
    if (!isRecord(e)) return fail(new ReportShapeError(`entries[${i}]`, `must be an object, got ${describe(e)}`));
    const src: unknown = e['src'];
    const dst: unknown = e['dst'];
    const frames: unknown = e['frames'];
    const bytes: unknown = e['bytes'];
    // Fast path: a well-formed entry allocates no error paths (the checks of entryError, in one expression).
    const fine =
      typeof src === 'number' && Number.isSafeInteger(src) && src >= 0 && src <= MAX_MAC &&
      typeof dst === 'number' && Number.isSafeInteger(dst) && dst >= 0 && dst <= MAX_MAC &&
      !isMulticastMac(src) && src !== dst &&
      typeof frames === 'number' && Number.isSafeInteger(frames) && frames >= 0 &&
      typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes >= 0 &&
      frames <= maxFrames && bytes <= maxBytes && bytes >= frames * MIN_FRAME_BYTES && bytes <= frames * MAX_FRAME_BYTES;
    if (!fine) {
      const error = entryError(`entries[${i}]`, src, dst, frames, bytes, seconds, maxFrames, maxBytes);
      if (error !== undefined) return fail(error);
    }
    if (seen.add(src as Mac, dst as Mac, i)) return fail(new ReportDuplicatePairError(`entries[${i}]`, `pair ${src as Mac}→${dst as Mac} appears twice`));
    out[i] = { src: src as Mac, dst: dst as Mac, frames: frames as number, bytes: bytes as number };
  }
  return { ok: true, report: Object.freeze({ host, startMs: start, endMs: end, entries: Object.freeze(out) }) };
}
