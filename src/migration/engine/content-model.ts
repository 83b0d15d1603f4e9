/**
 * The compact ("synthetic") page content model and content keys.
 *
 * A synthetic page { base, ver } expands deterministically to PAGE_SIZE bytes:
 *   base 0         all zero bytes
 *   base b > 0     PRNG(b) bytes: a distinct, incompressible content per base
 *                  (two pages with the same base hold duplicate content)
 *   ver 0          the base as it is
 *   ver v > 0      the base with a run of n = v & 127 chunks of CHUNK_SIZE
 *                  bytes, starting at chunk s(b, v), XORed with a mask whose
 *                  every byte is non-zero: "a write changed n*32 bytes"
 *                  (v >>> 7 is a per-page write counter that makes each
 *                  version distinct)
 * So the set of CHUNK_SIZE chunks in which two versions of one base differ is
 * known without expanding them (`synthDiffChunks`), and equals what XOR of the
 * expanded bytes finds (up to a 255^-32 chance that two masks cancel over a
 * whole chunk). That is what lets the emulated link charge a delta record its
 * exact encoded size at 16 GB scale.
 *
 * Content keys: 64 bits as two u32 halves (hi, lo).
 *   bytes      xxh64 of the page (xxhash-wasm)
 *   synthetic  hi = base, lo = ver ^ mix32(base): injective, no hashing
 */
import { PAGE_SIZE, isSynthContent, type PageContent, type SynthContent } from '../guest.ts';

export const CHUNK_SIZE = 32;
export const CHUNKS_PER_PAGE = PAGE_SIZE / CHUNK_SIZE; // 128
export const MAX_PATCH_CHUNKS = 127;

export const ZERO_SYNTH: SynthContent = Object.freeze({ base: 0, ver: 0 });

/** murmur3 finaliser: a 32-bit mix. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mix2(a: number, b: number): number {
  return mix32(mix32(a) ^ Math.imul(b >>> 0, 0x9e3779b1) ^ (b / 4294967296));
}

/** Version number of the `counter`-th write to a page that changes `chunks` chunks. */
export function synthVersion(counter: number, chunks: number): number {
  const n = Math.max(1, Math.min(MAX_PATCH_CHUNKS, Math.round(chunks)));
  return ((counter % 0x1ffffff) * 128 + n) >>> 0;
}

export function synthPatch(base: number, ver: number): { start: number; count: number } {
  if (ver === 0) return { start: 0, count: 0 };
  const count = ver & 127;
  const start = mix2(base, ver) % (CHUNKS_PER_PAGE - count + 1);
  return { start, count };
}

export function isZeroContent(c: PageContent): boolean {
  if (isSynthContent(c)) return c.base === 0 && c.ver === 0;
  const v = new DataView(c.buffer, c.byteOffset, c.byteLength);
  for (let i = 0; i + 4 <= c.byteLength; i += 4) if (v.getUint32(i, true) !== 0) return false;
  for (let i = c.byteLength & ~3; i < c.byteLength; i++) if (c[i] !== 0) return false;
  return true;
}

/** xorshift32 stream from a seed (never 0), four bytes a step (little-endian). */
function fillPrng(out: Uint8Array, from: number, to: number, seed: number, nonZero: boolean): void {
  let s = seed >>> 0 || 0x6d2b79f5;
  for (let i = from; i < to; i += 4) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    for (let k = 0; k < 4 && i + k < to; k++) {
      const b = (s >>> (8 * k)) & 0xff;
      out[i + k] = nonZero ? (b % 255) + 1 : b;
    }
  }
}

/** Expand a synthetic descriptor to its PAGE_SIZE bytes. */
export function expandSynth(c: SynthContent, out: Uint8Array = new Uint8Array(PAGE_SIZE)): Uint8Array {
  if (c.base === 0) out.fill(0, 0, PAGE_SIZE);
  else fillPrng(out, 0, PAGE_SIZE, mix32(c.base) ^ 0xa5a5a5a5, false);
  if (c.ver !== 0) {
    const { start, count } = synthPatch(c.base, c.ver);
    const mask = new Uint8Array(count * CHUNK_SIZE);
    fillPrng(mask, 0, mask.length, mix2(c.base, c.ver) ^ 0x5bd1e995, true);
    const off = start * CHUNK_SIZE;
    for (let i = 0; i < mask.length; i++) out[off + i] = (out[off + i] ?? 0) ^ (mask[i] ?? 0);
  }
  return out;
}

/**
 * Chunks in which two synthetic contents of the same base differ, as a
 * 128-bit bitmap (4 u32 words, chunk i is bit i%32 of word i>>5), or
 * undefined when the bases differ (everything differs: no delta).
 */
export function synthDiffChunks(a: SynthContent, b: SynthContent, out: Uint32Array = new Uint32Array(4)): Uint32Array | undefined {
  if (a.base !== b.base) return undefined;
  out.fill(0);
  if (a.ver === b.ver) return out;
  for (const c of [a, b]) {
    if (c.ver === 0) continue;
    const { start, count } = synthPatch(c.base, c.ver);
    for (let i = start; i < start + count; i++) out[i >>> 5] = (out[i >>> 5] ?? 0) | (1 << (i & 31));
  }
  return out;
}

export function synthKeyHi(c: SynthContent): number {
  return c.base >>> 0;
}

export function synthKeyLo(c: SynthContent): number {
  return (c.ver ^ mix32(c.base)) >>> 0;
}

/** Recover the descriptor from its key (synthetic keys are injective). */
export function synthFromKey(hi: number, lo: number): SynthContent {
  return { base: hi >>> 0, ver: (lo ^ mix32(hi)) >>> 0 };
}

export function bitCount32(x: number): number {
  let v = x >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}
