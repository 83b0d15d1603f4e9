/**
 * The sender's live memory phase, one class per kind of stop rule. Both
 * measure what the link and the guest do, ask their rule, throttle the guest
 * when it says so, and hand the pages still owed to `pause` when it says
 * stop. Queued disk writes go first while within their share (SenderDisk).
 *
 *   PrecopyPhase    iteration 0 sends every page, iteration i the pages
 *                   dirtied during i−1; the rule decides at each iteration's end
 *   TimeBoundPhase  mtx walks RAM once, dtx re-sends dirtied pages behind it
 *                   (dual-channel.ts); the rule decides every 64 pages sent
 */
import type { Logger } from 'pino';
import type { Guest } from '../guest.ts';
import type { IterationStats, PrecopyRule, TimeBoundRuleApi } from '../stop-rules/stop-rule.ts';
import { DirtyRateMeter, DualChannelPlan } from './dual-channel.ts';
import { PrecopyPlan, SKIPPED } from './precopy-plan.ts';
import { FULL_RECORD_SIZE } from './stream-record-codec.ts';
import type { OutRecord, SendLedger } from './send-ledger.ts';

/** What a memory phase needs from the sender. */
export interface MemoryPhaseHost {
  readonly guest: Guest;
  readonly ledger: SendLedger;
  readonly logger: Logger | undefined;
  now(): number;
  /** When the memory phase began. */
  readonly memoryStartedAt: number;
  /** A queued disk write, if within its share; true when one went out. */
  diskFirst(out: OutRecord[]): boolean;
  /** A queued disk write, if any; true when one went out. */
  sendQueuedDisk(out: OutRecord[]): boolean;
  /** Encode and queue page `p` on `ch`; its size in bytes (0 when nothing was sent). */
  sendPage(out: OutRecord[], p: number, ch: 0 | 1): number;
  setThrottle(share: number): void;
  /**
   * Whether the receiver has applied everything sent so far; when not, a
   * catch-up mark is queued (once) and the phase produces nothing until it
   * is (always true without catch-up).
   */
  caughtUp(out: OutRecord[]): boolean;
  /** The rule said stop: pause the guest, the pages still owed go in the stop-and-copy. */
  pause(out: OutRecord[], pages: Uint32Array, reason: string): void;
}

export interface MemoryPhase {
  /** Emits zero or more records; false when nothing more is due right now. */
  step(out: OutRecord[]): boolean;
  /** Pages owed to the destination if the guest paused now. */
  pagesLeft(): number;
  /** The current iteration (0 for the time-bound phase). */
  readonly iteration: number;
  /** Iterations the phase has run, for the stats (1 for the time-bound phase). */
  readonly iterations: number;
  /** Pages skipped because they would be re-sent anyway. */
  readonly redirtiedSkips: number;
}

export class PrecopyPhase implements MemoryPhase {
  readonly #host: MemoryPhaseHost;
  readonly #rule: PrecopyRule;
  readonly #plan: PrecopyPlan;

  constructor(host: MemoryPhaseHost, rule: PrecopyRule) {
    this.#host = host;
    this.#rule = rule;
    this.#plan = new PrecopyPlan(host.guest.memory, rule.skipRedirtied, host.now());
  }

  get iteration(): number { return this.#plan.iteration; }
  get iterations(): number { return this.#plan.iteration + 1; }
  get redirtiedSkips(): number { return this.#plan.redirtiedSkips; }

  pagesLeft(): number {
    return this.#plan.left() + this.#host.guest.memory.dirtyCount();
  }

  step(out: OutRecord[]): boolean {
    const h = this.#host;
    if (h.diskFirst(out)) return true;
    const plan = this.#plan;
    const p = plan.next();
    if (p >= 0) {
      const size = h.sendPage(out, p, 0);
      if (size > 0) plan.account(size);
      return true;
    }
    if (p === SKIPPED) return true;
    // ITERATION_END: once the receiver has it all, measure, ask the rule.
    if (!h.caughtUp(out)) return false;
    const now = h.now();
    const l = h.ledger;
    const mem = h.guest.memory;
    const ms = Math.max(1e-6, now - plan.startedAt);
    const dirtied = mem.dirtyCount();
    const stats: IterationStats = {
      iteration: plan.iteration,
      now,
      elapsedMs: now - h.memoryStartedAt,
      iterationMs: ms,
      pagesSent: plan.pages,
      bytesSent: plan.bytes,
      dirtied,
      totalPagesSent: l.memoryPages,
      totalBytesSent: l.memoryBytes,
      ramPages: mem.pageCount,
      bandwidth: plan.bytes > 0 ? plan.bytes / ms : l.bandwidth,
      bytesPerPage: plan.pages > 0 ? plan.bytes / plan.pages : l.bytesPerPage,
      throttle: h.guest.throttle,
    };
    if (plan.bytes > 0 && ms > 0.01) l.bandwidth = stats.bandwidth;
    if (plan.pages > 0) l.bytesPerPage = stats.bytesPerPage;
    l.dirtiedPerSec = (dirtied * 1000) / ms;
    const d = this.#rule.afterIteration(stats);
    h.logger?.debug({ ...stats, decision: d }, 'iteration end');
    if (d.throttle !== undefined) h.setThrottle(d.throttle);
    if (d.stop) {
      h.pause(out, mem.takeDirty(), d.reason);
      return true;
    }
    const next = plan.nextIteration(now);
    l.emit(out, { t: 'iter', seq: l.seq++, iteration: plan.iteration, phase: 0 }, 0, 'control');
    // Nothing dirty: send queued disk writes, or let the loop come back with a later `now`.
    return next > 0 || h.sendQueuedDisk(out);
  }
}

export class TimeBoundPhase implements MemoryPhase {
  readonly #host: MemoryPhaseHost;
  readonly #rule: TimeBoundRuleApi;
  readonly #plan: DualChannelPlan;
  readonly #meter: DirtyRateMeter;
  /** The rule said stop: why, while the catch-up before the pause runs. */
  #stopping: string | undefined;
  /**
   * When the first page went out: the bandwidth is measured from here, not
   * from the memory phase's start, so the time before it (keying every page,
   * disk records sent first, a stalled turn) is not taken for a slow link —
   * which would make the deadline look missed and stop at once.
   */
  #sendingSince: number | undefined;
  readonly iteration = 0;
  readonly iterations = 1;

  constructor(host: MemoryPhaseHost, rule: TimeBoundRuleApi) {
    this.#host = host;
    this.#rule = rule;
    this.#plan = new DualChannelPlan(host.guest.memory);
    this.#meter = new DirtyRateMeter(host.now());
  }

  get redirtiedSkips(): number { return this.#plan.skipped; }

  pagesLeft(): number {
    return this.#plan.remaining();
  }

  step(out: OutRecord[]): boolean {
    const h = this.#host;
    if (this.#stopping !== undefined) {
      if (!h.caughtUp(out)) return false;
      h.pause(out, this.#plan.rest(), this.#stopping);
      return true;
    }
    if (h.diskFirst(out)) return true;
    const plan = this.#plan;
    const meter = this.#meter;
    const l = h.ledger;
    const g = h.guest;
    // Decide every 64 pages sent, and whenever mtx has finished.
    if ((l.livePages & 63) === 0 || plan.mtxDone) {
      const now = h.now();
      const elapsed = now - h.memoryStartedAt;
      const sending = this.#sendingSince === undefined ? 0 : now - this.#sendingSince;
      const bandwidth = sending > 0 ? l.liveBytes / sending : 0;
      const bpp = l.livePages > 0 ? l.liveBytes / l.livePages : FULL_RECORD_SIZE;
      const dirtyTotal = plan.taken + g.memory.dirtyCount();
      meter.sample(now, elapsed, dirtyTotal, g.throttle);
      l.bytesPerPage = bpp;
      if (bandwidth > 0) l.bandwidth = bandwidth;
      l.dirtiedPerSec = meter.perMsFullShare * 1000 * g.throttle;
      const d = this.#rule.decide({
        now,
        elapsedMs: elapsed,
        mtxFraction: plan.mtxFraction,
        mtxDone: plan.mtxDone,
        remainingPages: plan.remaining(),
        bytesPerPage: bpp,
        bandwidth,
        dirtyRateFullShare: meter.perMsFullShare,
        throttle: g.throttle,
      });
      if (d.throttle !== undefined) {
        meter.sample(now, elapsed, dirtyTotal, g.throttle, true);
        h.setThrottle(d.throttle);
      }
      if (d.stop) {
        this.#stopping = d.reason;
        return true;
      }
    }
    const step = plan.next();
    if (step.kind === 'idle') return h.sendQueuedDisk(out); // else wait for the guest to dirty something, or the rule to stop
    if (step.kind === 'send') {
      this.#sendingSince ??= h.now();
      plan.account(step.ch, h.sendPage(out, step.page, step.ch));
    }
    return true;
  }
}
