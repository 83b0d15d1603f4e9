/**
 * Page deltas: XOR against the destination's current copy of the page,
 * sent as a 128-bit chunk map plus the XOR bytes of each 32-byte chunk that
 * changed ("XOR then sparse chunk encoding"). Encoded payload size is
 * DELTA_MAP_BYTES + CHUNK_SIZE * changedChunks — the one size rule both the
 * byte encoder and the synthetic size model use.
 */
import { PAGE_SIZE, type SynthContent } from '../guest.ts';
import { CHUNK_SIZE, CHUNKS_PER_PAGE, bitCount32, synthDiffChunks } from './content-model.ts';

export const DELTA_MAP_BYTES = CHUNKS_PER_PAGE / 8; // 16

export interface ByteDelta {
  /** 4 u32 words: chunk i changed iff bit (i & 31) of word (i >> 5). */
  readonly map: Uint32Array;
  /** XOR bytes of the changed chunks, in chunk order. */
  readonly xor: Uint8Array;
}

export function deltaPayloadSize(changedChunks: number): number {
  return DELTA_MAP_BYTES + CHUNK_SIZE * changedChunks;
}

export function mapChunkCount(map: Uint32Array): number {
  return bitCount32(map[0] ?? 0) + bitCount32(map[1] ?? 0) + bitCount32(map[2] ?? 0) + bitCount32(map[3] ?? 0);
}

/** The delta that turns `old` into `next` (both PAGE_SIZE bytes). */
export function computeByteDelta(old: Uint8Array, next: Uint8Array): ByteDelta {
  const map = new Uint32Array(4);
  let changed = 0;
  for (let c = 0; c < CHUNKS_PER_PAGE; c++) {
    const off = c * CHUNK_SIZE;
    for (let i = off; i < off + CHUNK_SIZE; i++) {
      if (old[i] !== next[i]) {
        map[c >>> 5] = (map[c >>> 5] ?? 0) | (1 << (c & 31));
        changed++;
        break;
      }
    }
  }
  const xor = new Uint8Array(changed * CHUNK_SIZE);
  let o = 0;
  for (let c = 0; c < CHUNKS_PER_PAGE; c++) {
    if (((map[c >>> 5] ?? 0) & (1 << (c & 31))) === 0) continue;
    const off = c * CHUNK_SIZE;
    for (let i = 0; i < CHUNK_SIZE; i++) xor[o++] = (old[off + i] ?? 0) ^ (next[off + i] ?? 0);
  }
  return { map, xor };
}

/** Applies a delta in place. Returns false when the delta's length does not match its map. */
export function applyByteDelta(page: Uint8Array, map: Uint32Array, xor: Uint8Array): boolean {
  if (page.length !== PAGE_SIZE || xor.length !== mapChunkCount(map) * CHUNK_SIZE) return false;
  let o = 0;
  for (let c = 0; c < CHUNKS_PER_PAGE; c++) {
    if (((map[c >>> 5] ?? 0) & (1 << (c & 31))) === 0) continue;
    const off = c * CHUNK_SIZE;
    for (let i = 0; i < CHUNK_SIZE; i++) page[off + i] = (page[off + i] ?? 0) ^ (xor[o++] ?? 0);
  }
  return true;
}

/** The chunk map of a synthetic delta, or undefined when no delta exists (different base). */
export function synthDeltaMap(old: SynthContent, next: SynthContent): Uint32Array | undefined {
  return synthDiffChunks(old, next);
}
