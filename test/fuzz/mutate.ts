import type { Rand } from './fuzz-kit.ts';

/**
 * Mutation operators of the fuzz tier: on bytes (bit flips, interesting
 * values, insertion, deletion, duplication, truncation, splicing with another
 * valid input, corruption of the length fields a format declares), on text
 * (tokens of the format inserted, lines dropped, doubled or swapped) and on
 * JSON values (a node replaced by a value of another type, keys dropped or
 * added, arrays blown up, deep nesting). Random chunking for incremental
 * decoders.
 */

/** A length field of a format: where it is and how wide (big-endian). */
export interface LengthField {
  readonly offset: number;
  readonly width: 1 | 2 | 3 | 4;
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x0a, 0x0d, 0x20, 0x25];

/** Values a length field is set to: edges around the limits of every width. */
function interestingLength(rand: Rand, width: number, current: number): number {
  const max = 2 ** (8 * width) - 1;
  const choices = [0, 1, 2, 3, 4, 5, 8, 13, 14, 15, 16, 63, 64, 255, 256, 1023, 1024, 1025, 4096, 4105, 65535, 65536, 0xfffff, 0x100000, 0x100040, 0x100041, 0xffffff, max, max - 1, current + 1, current - 1, current * 2, current >>> 1];
  return Math.max(0, Math.min(max, rand.pick(choices)));
}

function writeUint(b: Buffer, offset: number, width: number, value: number): void {
  for (let k = width - 1; k >= 0; k--) {
    b[offset + k] = value & 0xff;
    value = Math.floor(value / 256);
  }
}

function readUint(b: Buffer, offset: number, width: number): number {
  let v = 0;
  for (let k = 0; k < width; k++) v = v * 256 + (b[offset + k] ?? 0);
  return v;
}

/** One to `max` mutations of `input` (never modified: a copy is returned). */
export function mutateBytes(rand: Rand, input: Buffer, opts: { corpus?: readonly Buffer[]; lengths?: readonly LengthField[]; max?: number } = {}): Buffer {
  let b: Buffer = Buffer.from(input);
  const n = 1 + rand.int(opts.max ?? 4);
  for (let m = 0; m < n; m++) {
    const op = rand.int(10);
    if (b.length === 0 && op < 7) {
      b = rand.bytes(1 + rand.int(16));
      continue;
    }
    const at = rand.int(Math.max(1, b.length));
    switch (op) {
      case 0: // bit flips
        for (let k = rand.range(1, 8); k > 0; k--) {
          const i = rand.int(b.length);
          b[i] = b[i]! ^ (1 << rand.int(8));
        }
        break;
      case 1: // an interesting byte
        b[at] = rand.pick(INTERESTING_BYTES);
        break;
      case 2: // random bytes over a run
        for (let i = at, e = Math.min(b.length, at + rand.range(1, 32)); i < e; i++) b[i] = rand.int(256);
        break;
      case 3: // truncation
        b = b.subarray(0, at);
        break;
      case 4: // deletion of a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rand.range(1, 64)))]);
        break;
      case 5: // insertion of random bytes
        b = Buffer.concat([b.subarray(0, at), rand.bytes(rand.size(64)), b.subarray(at)]);
        break;
      case 6: { // duplication of a range
        const len = rand.range(1, Math.max(1, Math.min(256, b.length - at)));
        b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
        break;
      }
      case 7: { // splice with another valid input
        const other = opts.corpus !== undefined && opts.corpus.length > 0 ? rand.pick(opts.corpus) : b;
        b = Buffer.concat([b.subarray(0, at), other.subarray(rand.int(Math.max(1, other.length)))]);
        break;
      }
      default: { // a declared length field set to an edge value
        const fields = (opts.lengths ?? []).filter((f) => f.offset + f.width <= b.length);
        if (fields.length === 0) {
          b[at] = rand.int(256);
          break;
        }
        const f = rand.pick(fields);
        writeUint(b, f.offset, f.width, interestingLength(rand, f.width, readUint(b, f.offset, f.width)));
      }
    }
  }
  return b;
}

/** `bytes` cut at random points: mostly a few chunks, sometimes one byte at a time, sometimes whole. */
export function randomChunks(rand: Rand, bytes: Buffer): Buffer[] {
  const mode = rand.int(8);
  if (mode === 0 || bytes.length === 0) return [bytes];
  if (mode === 1 && bytes.length <= 1024) return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
  const out: Buffer[] = [];
  let off = 0;
  while (off < bytes.length) {
    const len = Math.min(bytes.length - off, 1 + rand.size(mode === 2 ? 8 : 2048));
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

// ---------------------------------------------------------------- text

/** Text mutations: tokens of the format inserted, characters flipped, lines dropped, doubled, swapped, re-indented. */
export function mutateText(rand: Rand, input: string, tokens: readonly string[], corpus: readonly string[] = []): string {
  let s = input;
  const n = 1 + rand.int(4);
  for (let m = 0; m < n; m++) {
    const at = rand.int(s.length + 1);
    const lines = s.split('\n');
    const line = rand.int(lines.length);
    switch (rand.int(9)) {
      case 0:
        s = s.slice(0, at) + rand.pick(tokens) + s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + rand.range(1, 16));
        break;
      case 2:
        s = s.slice(0, at) + String.fromCharCode(rand.chance(0.8) ? rand.int(128) : rand.int(0x10000)) + s.slice(at + 1);
        break;
      case 3:
        lines.splice(line, 1);
        s = lines.join('\n');
        break;
      case 4:
        lines.splice(line, 0, lines[rand.int(lines.length)]!);
        s = lines.join('\n');
        break;
      case 5: {
        const other = rand.int(lines.length);
        [lines[line], lines[other]] = [lines[other]!, lines[line]!];
        s = lines.join('\n');
        break;
      }
      case 6:
        lines[line] = rand.chance(0.5) ? ` ${lines[line]}` : lines[line]!.replace(/^ /, '');
        s = lines.join('\n');
        break;
      case 7:
        s = s.slice(0, at);
        break;
      default: {
        const other = corpus.length > 0 ? rand.pick(corpus) : s;
        s = s.slice(0, at) + other.slice(rand.int(other.length + 1));
      }
    }
  }
  return s;
}

// ---------------------------------------------------------------- JSON

const STRINGS = ['', ' ', 'a', '0', '-1', '1e309', 'NaN', 'null', 'true', '02:00:00:00:00:01', 'ff:ff:ff:ff:ff:ff', 'zz:zz', '%zz', '../../etc/passwd', '\u0000', '\ud800', '💥', 'x'.repeat(300), 'x'.repeat(5000), '__proto__', 'hub', 'host-a'];
const NUMBERS = [0, -0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 65535, 65536, 1e-300];
const KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'type', 'x', '', 'hasOwnProperty'];

/** A random JSON value of bounded size and depth. */
export function randomJson(rand: Rand, depth = 3): unknown {
  switch (rand.int(depth <= 0 ? 4 : 6)) {
    case 0: return rand.pick(STRINGS);
    case 1: return rand.pick(NUMBERS);
    case 2: return rand.pick([true, false]);
    case 3: return null;
    case 4: return Array.from({ length: rand.int(4) }, () => randomJson(rand, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let k = rand.int(4); k > 0; k--) o[rand.pick(KEYS)] = randomJson(rand, depth - 1);
      return o;
    }
  }
}

/** `depth` nested arrays or objects around `inner`. */
export function deepNest(depth: number, inner: unknown, asObject: boolean): unknown {
  let v = inner;
  for (let d = 0; d < depth; d++) v = asObject ? { a: v } : [v];
  return v;
}

/** `depth` nested arrays or objects around the JSON text `inner`, as text (deeper than JSON.stringify can go). */
export function deepNestText(depth: number, inner: string, asObject: boolean): string {
  return asObject ? `${'{"a":'.repeat(depth)}${inner}${'}'.repeat(depth)}` : `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
}

export interface JsonMutation {
  /** Sizes an array is blown up to (default 2, 50, 400). */
  readonly repeats?: readonly number[];
  /** Depths of the nesting put around a node (default 10, 100, 500). */
  readonly nests?: readonly number[];
}

/** A copy of `value` with one to three nodes replaced, removed, added to or blown up. */
export function mutateJson(rand: Rand, value: unknown, opts: JsonMutation = {}): unknown {
  let out = structuredClone(value);
  for (let m = 1 + rand.int(3); m > 0; m--) out = mutateNode(rand, out, 0, opts);
  return out;
}

function mutateNode(rand: Rand, v: unknown, depth: number, opts: JsonMutation): unknown {
  const container = typeof v === 'object' && v !== null;
  // Descend most of the time, so the mutation lands deep in the message.
  if (container && depth < 12 && rand.chance(0.75)) {
    if (Array.isArray(v)) {
      if (v.length === 0) return rand.chance(0.5) ? [randomJson(rand)] : v;
      const i = rand.int(v.length);
      v[i] = mutateNode(rand, v[i], depth + 1, opts);
      return v;
    }
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length > 0) {
      const k = rand.pick(keys);
      o[k] = mutateNode(rand, o[k], depth + 1, opts);
      return o;
    }
  }
  switch (rand.int(7)) {
    case 0: return randomJson(rand);
    case 1: return rand.pick(NUMBERS);
    case 2: return rand.pick(STRINGS);
    case 3: return deepNest(rand.pick(opts.nests ?? [10, 100, 500]), v, rand.chance(0.5));
    case 4: {
      if (Array.isArray(v)) return Array.from({ length: rand.pick(opts.repeats ?? [2, 50, 400]) }, () => v[0]);
      return [v];
    }
    case 5: {
      if (container && !Array.isArray(v)) {
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o);
        if (keys.length > 0 && rand.chance(0.5)) delete o[rand.pick(keys)];
        else Object.defineProperty(o, rand.pick(KEYS), { value: randomJson(rand, 1), enumerable: true, writable: true, configurable: true });
        return o;
      }
      return null;
    }
    default: return typeof v === 'number' ? -v : typeof v === 'string' ? v.slice(0, rand.int(v.length + 1)) : {};
  }
}
