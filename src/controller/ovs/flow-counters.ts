import type { FlowStats } from '../../openflow/multipart.ts';
import { COUNTED_PAIR_PRIORITY, isVnetCookie, TABLE_CLASSIFY } from './flow-plan.ts';

/**
 * An OVS host's local traffic matrix from its counting flows (flow-plan.ts,
 * table 0: one flow per VM port, source and destination VM), the pure part.
 * Each update period the host's agent reads those flows' statistics; this
 * turns two readings into the (source, destination) frames and bytes of the
 * period — what a daemon's traffic counters report — for the same VTTIF
 * path (the report is validated once, as a daemon's is).
 *
 * A flow seen for the first time sets its baseline and counts nothing (its
 * counters may hold traffic from before this controller ran); a counter
 * that went down (the flow was deleted and added again) counts from zero.
 */

export interface PairCount {
  packets: bigint;
  bytes: bigint;
}

export interface CounterDeltas {
  entries: Array<{ src: string; dst: string; frames: number; bytes: number }>;
  /** The readings to diff the next one against. */
  next: Map<string, PairCount>;
}

export function counterDeltas(previous: ReadonlyMap<string, PairCount>, stats: readonly FlowStats[]): CounterDeltas {
  const next = new Map<string, PairCount>();
  const sums = new Map<string, { src: string; dst: string; frames: bigint; bytes: bigint }>();
  for (const f of stats) {
    if (f.tableId !== TABLE_CLASSIFY || f.priority !== COUNTED_PAIR_PRIORITY || !isVnetCookie(f.cookie)) continue;
    const { ethSrc, ethDst, inPort } = f.match;
    if (typeof ethSrc !== 'string' || typeof ethDst !== 'string') continue;
    const key = `${inPort ?? ''}|${ethSrc}|${ethDst}`;
    next.set(key, { packets: f.packetCount, bytes: f.byteCount });
    const before = previous.get(key);
    if (before === undefined) continue;
    const frames = f.packetCount >= before.packets ? f.packetCount - before.packets : f.packetCount;
    const bytes = f.byteCount >= before.bytes ? f.byteCount - before.bytes : f.byteCount;
    if (frames === 0n && bytes === 0n) continue;
    const pair = `${ethSrc}|${ethDst}`;
    const sum = sums.get(pair) ?? { src: ethSrc, dst: ethDst, frames: 0n, bytes: 0n };
    sum.frames += frames;
    sum.bytes += bytes;
    sums.set(pair, sum);
  }
  const entries = [...sums.values()]
    .sort((a, b) => (a.src + a.dst < b.src + b.dst ? -1 : 1))
    .map((s) => ({ src: s.src, dst: s.dst, frames: Number(s.frames), bytes: Number(s.bytes) }));
  return { entries, next };
}
