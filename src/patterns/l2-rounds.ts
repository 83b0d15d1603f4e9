/**
 * Patterns for the unprivileged demo: the same rounds and pattern graphs, as
 * Ethernet frames between memory ports instead of TCP between VMs.
 *
 *   announce   every VM broadcasts one frame (as ARP would) so the overlay learns its MAC
 *   round r    every VM sends `messageBytes` to each pattern neighbour, cut into frames
 *              (EtherType 0x88b6, header: magic, round, sequence, sender index)
 *   barrier    the round ends when every VM has every frame of the round addressed to it
 *              (counted at the receiving VM; flooded copies for other VMs are ignored);
 *              all VMs live in this process, so the barrier is this object waiting
 *   loss       a round whose frames do not all arrive within `roundTimeoutMs` ends there,
 *              its missing frames counted as lost, and the next round starts
 *
 * The overlay sees exactly the pattern's traffic, round by round, and the
 * round times show what a fast path buys, as with the TCP workers.
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import { realClock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { BROADCAST_MAC, dstMacOf, writeMac, type Mac } from '../common/mac.ts';
import type { GeneratorVm } from '../dataplane/traffic-generator.ts';
import { patternEdges, type PatternKind } from '../topology/patterns.ts';
import { adjacency } from './barrier-tree.ts';
import { PatternsAbortedError, PatternsConfigError } from './errors.ts';
import { summariseRounds, type RoundSummary } from './round-stats.ts';

export const L2_PATTERNS_ETHERTYPE = 0x88b6;
const L2_MAGIC = 0x5650;
/** Ethernet header (14) plus magic u16, round u32, sequence u32, sender u16. */
const L2_HEADER_BYTES = 14 + 12;

export interface L2PatternsInit {
  readonly vms: readonly GeneratorVm[];
  readonly pattern: PatternKind;
  readonly k?: number;
  readonly messageBytes: number;
  readonly rounds: number;
  /** Ethernet frame size, headers included (64..1514, default 1514). */
  readonly frameBytes?: number;
  /** A round not complete by then ends with its missing frames counted lost (default 5 s). */
  readonly roundTimeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly onRound?: (r: { readonly round: number; readonly ms: number; readonly lost: number }) => void;
}

export interface L2PatternsReport {
  readonly pattern: PatternKind;
  readonly vms: number;
  readonly messageBytes: number;
  readonly framesPerMessage: number;
  readonly rounds: number;
  readonly roundMs: readonly number[];
  readonly summary: RoundSummary;
  readonly sentFrames: number;
  readonly receivedFrames: number;
  readonly lostFrames: number;
  /** Rounds that ended by timeout. */
  readonly incompleteRounds: number;
  /** Frames of a round that had already ended (late) or not addressed to the receiving VM (flooded). */
  readonly ignoredFrames: number;
}

/** Run the rounds on memory ports already attached to an overlay (the daemon must be forwarding for them). */
export async function runL2Patterns(components: { logger: Logger; clock?: Clock }, init: L2PatternsInit): Promise<L2PatternsReport> {
  const clock = components.clock ?? realClock;
  const logger = componentLogger(components.logger, 'l2-patterns');
  const n = init.vms.length;
  const frameBytes = init.frameBytes ?? 1514;
  if (!Number.isSafeInteger(frameBytes) || frameBytes < 64 || frameBytes > 1514) throw new PatternsConfigError(`frame size ${frameBytes} is not in 64..1514`);
  if (!Number.isSafeInteger(init.messageBytes) || init.messageBytes < 1) throw new PatternsConfigError(`message size ${init.messageBytes} is not positive`);
  if (!Number.isSafeInteger(init.rounds) || init.rounds < 1) throw new PatternsConfigError(`rounds ${init.rounds} is not a positive integer`);
  let edges;
  try {
    edges = patternEdges(init.pattern, n, init.k !== undefined ? { k: init.k } : {});
  } catch (err) {
    throw new PatternsConfigError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  const neighbours = adjacency(n, edges);
  const payload = frameBytes - L2_HEADER_BYTES;
  const framesPerMessage = Math.ceil(init.messageBytes / payload);
  const expected = neighbours.map((list) => list.length * framesPerMessage);

  let round = 0;
  const got = new Array<number>(n).fill(0);
  let sentFrames = 0;
  let receivedFrames = 0;
  let ignoredFrames = 0;
  let wake: (() => void) | undefined;
  const complete = (): boolean => got.every((g, i) => g >= expected[i]!);

  init.vms.forEach((vm, i) => {
    vm.port.onDeliver((frame) => {
      if (frame.length < L2_HEADER_BYTES || frame.readUInt16BE(12) !== L2_PATTERNS_ETHERTYPE || frame.readUInt16BE(14) !== L2_MAGIC) return;
      const r = frame.readUInt32BE(16);
      const from = frame.readUInt16BE(24);
      if (r === 0) return; // announcement
      if (r !== round || dstMacOf(frame) !== vm.port.mac || !neighbours[i]!.includes(from)) {
        ignoredFrames++;
        return;
      }
      receivedFrames++;
      got[i]!++;
      if (wake !== undefined && complete()) wake();
    });
  });

  const frame = (dst: Mac, src: GeneratorVm, from: number, r: number, seq: number): Buffer => {
    const b = Buffer.alloc(frameBytes);
    writeMac(dst, b, 0);
    writeMac(src.port.mac, b, 6);
    b.writeUInt16BE(L2_PATTERNS_ETHERTYPE, 12);
    b.writeUInt16BE(L2_MAGIC, 14);
    b.writeUInt32BE(r, 16);
    b.writeUInt32BE(seq, 20);
    b.writeUInt16BE(from, 24);
    return b;
  };

  init.vms.forEach((vm, i) => vm.port.transmit(frame(BROADCAST_MAC, vm, i, 0, 0)));
  const roundMs: number[] = [];
  let lostFrames = 0;
  let incompleteRounds = 0;
  const timeoutMs = init.roundTimeoutMs ?? 5_000;
  for (round = 1; round <= init.rounds; round++) {
    if (init.signal?.aborted) throw new PatternsAbortedError(init.signal.reason);
    got.fill(0);
    const t0 = clock.now();
    init.vms.forEach((vm, i) => {
      for (const j of neighbours[i]!) {
        const dst = init.vms[j]!.port.mac;
        for (let s = 0; s < framesPerMessage; s++) if (vm.port.transmit(frame(dst, vm, i, round, s))) sentFrames++;
      }
    });
    let timer: TimerHandle | undefined;
    // The Clock's timers do not hold the process open; while the VMs' frames are in flight this run must.
    const keepAlive = setInterval(() => {}, 60_000);
    const timedOut = await new Promise<boolean>((resolve) => {
      if (complete()) return resolve(false);
      wake = () => resolve(false);
      timer = clock.setTimeout(() => resolve(true), timeoutMs);
    });
    clearInterval(keepAlive);
    wake = undefined;
    timer?.cancel();
    const ms = clock.now() - t0;
    const lost = expected.reduce((s, e, i) => s + Math.max(0, e - got[i]!), 0);
    if (timedOut) {
      incompleteRounds++;
      lostFrames += lost;
      logger.debug({ round, lost }, 'round ended by timeout');
    }
    roundMs.push(ms);
    init.onRound?.({ round, ms, lost: timedOut ? lost : 0 });
  }
  for (const vm of init.vms) vm.port.onDeliver(() => {});
  return {
    pattern: init.pattern,
    vms: n,
    messageBytes: init.messageBytes,
    framesPerMessage,
    rounds: init.rounds,
    roundMs,
    summary: summariseRounds(roundMs),
    sentFrames,
    receivedFrames,
    lostFrames,
    incompleteRounds,
    ignoredFrames,
  };
}
