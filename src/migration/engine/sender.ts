/**
 * The sending side of a migration, as a pull-driven state machine. A driver
 * (virtual time over an emulated link, or real time over sockets) asks for
 * the next records with `next(now, budgetBytes)` whenever its channels can
 * take more; the sender decides what to send and when to stop. No I/O, no
 * timers: `now` comes in, records go out.
 *
 *   hello ─▶ disk bulk copy ─▶ disk dirty rounds ─▶ sync ─▶ memory (disk now synchronous)
 *        ─▶ pause + stop-and-copy ─▶ device state ─▶ done ─▶ (ack) finished
 *
 * Synchronous disk replication: from the sync record on, the guest's disk
 * writes are pending until the receiver's disk-ack for the record that
 * carried them comes back (`onDiskAck`); drivers deliver those acks at the
 * time they arrive. A record unacknowledged for `diskAckTimeoutMs` aborts
 * the migration (reason timeout): the guest's writes cannot wait forever.
 *
 * Memory, pre-copy rules: iteration 0 sends every page, iteration i sends the
 * pages dirtied during i-1; the rule decides at each iteration's end.
 * Memory, time-bound: channel 0 (mtx) walks RAM once, skipping pages that are
 * dirty or queued on channel 1 (dtx), which re-sends dirtied pages behind
 * mtx's cursor; the rule decides continuously.
 * Every record carries a sequence number; the receiver applies records in
 * sequence order whatever channel they came on, so caches stay in lock-step.
 */
import type { Logger } from 'pino';
import type { Guest } from '../guest.ts';
import type { ContentKeyer } from './content-key.ts';
import { diskDigest, memoryDigest, bytesDigest } from './content-key.ts';
import { ContentEncoder } from './content-encoder.ts';
import { FULL_RECORD_SIZE, recordSize, type MigrationRecord } from './stream-codec.ts';
import type { IterationStats, StopRule } from '../stop-rules/stop-rule.ts';
import type { ProgressEvent, MigrationPhase } from './progress.ts';
import { DiskSync, type DiskReplication, type DiskSyncStats } from './disk-sync.ts';
import { MigrationAbortedError } from '../errors.ts';
import { DirtyRateMeter, DualChannelPlan } from './dual-channel.ts';
import { PrecopyPlan, SKIPPED } from './precopy-plan.ts';

export interface SenderInit {
  readonly guest: Guest;
  readonly rule: StopRule;
  readonly keyer: ContentKeyer;
  readonly now: number;
  readonly logger?: Logger;
  /** Migrate the disk too (when the guest has one). Default true. */
  readonly disk?: boolean;
  /** Switch the disk to synchronous replication once a write-log round has at most this many blocks (default 256). */
  readonly diskSyncThreshold?: number;
  /** At most this many write-log rounds after the bulk copy (default 8). */
  readonly diskMaxRounds?: number;
  /** 'synchronous' (default): guest writes wait for the destination's ack; 'asynchronous': they complete locally. */
  readonly diskReplication?: DiskReplication;
  /** Abort when a synchronously replicated disk record has waited this long for its ack (default 30,000 ms). */
  readonly diskAckTimeoutMs?: number;
  /**
   * During the memory phase, replicated disk writes go ahead of memory
   * records until they have taken this share of the bytes sent in the phase
   * (default 0.5, what two TCP connections sharing the link would each get);
   * beyond it they alternate with memory, so a guest that writes faster than
   * the link carries cannot starve the memory transfer.
   */
  readonly diskShare?: number;
  /** Destination keeps the image paused (checkpoint) and the source resumes after. */
  readonly keep?: boolean;
  readonly cacheCapacity?: number;
}

export interface OutRecord {
  readonly rec: MigrationRecord;
  /** 0: control, disk, pre-copy memory and TLM's mtx; 1: TLM's dtx. */
  readonly ch: 0 | 1;
  readonly size: number;
}

export interface SenderStats {
  readonly rule: string;
  readonly iterations: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  readonly controlBytes: number;
  readonly totalBytes: number;
  readonly memoryPagesSent: number;
  readonly records: { full: number; zero: number; ref: number; delta: number; skip: number };
  readonly diskRecords: { full: number; zero: number; ref: number; delta: number; skip: number };
  readonly redirtiedSkips: number;
  /** Guest disk writes made while the disk was replicated (synchronously or not). */
  readonly syncDiskWrites: number;
  /** Replication figures: writes, acks, refusals, latency; undefined without a disk. */
  readonly diskSync: DiskSyncStats | undefined;
  readonly startedAt: number;
  readonly memoryStartedAt: number | undefined;
  readonly pausedAt: number | undefined;
  readonly minThrottle: number;
  readonly stopReason: string;
  readonly memDigest: string | undefined;
  readonly diskDigest: string | undefined;
}

type Phase = 'hello' | 'disk' | 'memory' | 'stop-copy' | 'device' | 'done' | 'await-ack' | 'finished' | 'aborted';

const EMPTY = new Uint32Array(0);

export class MigrationSender {
  readonly guest: Guest;
  readonly rule: StopRule;
  readonly #keyer: ContentKeyer;
  readonly #log: Logger | undefined;
  readonly #mem: ContentEncoder;
  readonly #disk: ContentEncoder | undefined;
  readonly #keep: boolean;
  readonly #diskSync: DiskSync | undefined;
  #phase: Phase = 'hello';
  #seq = 1;
  #now: number;
  // accounting
  #memoryBytes = 0;
  #diskBytes = 0;
  #controlBytes = 0;
  #memPages = 0;
  readonly #startedAt: number;
  #memStart: number | undefined;
  #pausedAt: number | undefined;
  #minThrottle = 1;
  #stopReason = '';
  readonly #ackTimeout: number;
  readonly #diskShare: number;
  #liveDiskBytes = 0;
  #failure: MigrationAbortedError | undefined;
  #memDigest: string | undefined;
  #diskDigest: string | undefined;
  // pre-copy
  #precopy: PrecopyPlan | undefined;
  #lastBpp = FULL_RECORD_SIZE;
  #lastBandwidth = 0;
  #lastDirtied = 0;
  // time-bound
  #plan: DualChannelPlan | undefined;
  #meter: DirtyRateMeter | undefined;
  #liveBytes = 0;
  #livePages = 0;
  // stop-copy
  #final: Uint32Array = EMPTY;
  #finalCursor = 0;
  #finalCh: 0 | 1 = 0;

  constructor(init: SenderInit) {
    this.guest = init.guest;
    this.rule = init.rule;
    this.#keyer = init.keyer;
    this.#log = init.logger;
    this.#keep = init.keep ?? false;
    this.#now = init.now;
    this.#startedAt = init.now;
    this.#ackTimeout = init.diskAckTimeoutMs ?? 30_000;
    this.#diskShare = Math.min(1, Math.max(0.05, init.diskShare ?? 0.5));
    const g = init.guest;
    const rep = g.memory.representation;
    const capacity = init.cacheCapacity ?? g.memory.pageCount;
    this.#mem = new ContentEncoder({ space: 'mem', count: g.memory.pageCount, representation: rep, keyer: init.keyer, encoding: init.rule.encoding, cacheCapacity: capacity });
    if ((init.disk ?? true) && g.disk !== undefined) {
      this.#disk = new ContentEncoder({ space: 'disk', count: g.disk.blockCount, representation: g.disk.representation, keyer: init.keyer, encoding: init.rule.encoding, cacheCapacity: Math.min(capacity, g.disk.blockCount) });
      this.#diskSync = new DiskSync(g.disk, {
        ...(init.diskSyncThreshold !== undefined ? { syncThreshold: init.diskSyncThreshold } : {}),
        ...(init.diskMaxRounds !== undefined ? { maxRounds: init.diskMaxRounds } : {}),
        ...(init.diskReplication !== undefined ? { replication: init.diskReplication } : {}),
        ...(init.logger !== undefined ? { logger: init.logger } : {}),
      });
    }
  }

  get finished(): boolean {
    return this.#phase === 'finished' || this.#phase === 'aborted';
  }

  /** Why the sender gave up on its own (a disk ack overdue), if it did. */
  get failure(): MigrationAbortedError | undefined {
    return this.#failure;
  }

  /** True once the done record is out and the sender waits for the receiver's verdict. */
  get awaitingAck(): boolean {
    return this.#phase === 'await-ack';
  }

  get phase(): MigrationPhase {
    switch (this.#phase) {
      case 'hello': return 'starting';
      case 'disk': return 'disk';
      case 'memory': return 'memory';
      case 'stop-copy': case 'device': case 'done': return 'paused';
      case 'await-ack': return 'verifying';
      case 'finished': return 'done';
      case 'aborted': return 'aborted';
    }
  }

  /** Records to send now, up to about `budget` bytes (at least one record if any is due). */
  next(now: number, budget: number): OutRecord[] {
    this.#now = Math.max(this.#now, now);
    const out: OutRecord[] = [];
    if (this.finished) return out;
    this.guest.advance(this.#now);
    const sentAt = this.#diskSync?.oldestUnackedSentAt();
    if (sentAt !== undefined && this.#now - sentAt > this.#ackTimeout) {
      this.#failure = new MigrationAbortedError('timeout', `no disk acknowledgement for ${Math.round(this.#now - sentAt)} ms (limit ${this.#ackTimeout} ms)`);
      this.#stopReason = this.#failure.message;
      this.abort(this.#now);
      return out;
    }
    if (this.#phase === 'await-ack') return out;
    this.#diskSync?.collectWrites();
    let bytes = 0;
    let guard = 0;
    while (bytes < budget && guard++ < 1_000_000) {
      const before = out.length;
      const more = this.#step(out);
      for (let i = before; i < out.length; i++) bytes += out[i]?.size ?? 0;
      if (!more) break;
    }
    return out;
  }

  /** The receiver's disk-ack: every disk record up to `seq` is on the destination; pending writes they carried complete at `now`. */
  onDiskAck(seq: number, now: number): void {
    if (this.finished) return;
    this.#now = Math.max(this.#now, now);
    this.#diskSync?.onAck(seq, this.#now);
  }

  /** The receiver's verdict on the done record. */
  onAck(ok: boolean, now: number, code = ''): void {
    if (this.#phase !== 'await-ack') return;
    this.#now = Math.max(this.#now, now);
    if (!ok) {
      this.#stopReason = `destination refused the image: ${code}`;
      this.abort(now);
      return;
    }
    this.#phase = 'finished';
    // The verified image holds every record sent: every pending write is on both sides.
    this.#diskSync?.finish(this.#now);
    this.#stopLogging();
    // A checkpoint leaves the source running; a migration leaves it paused, to be released.
    if (this.#keep) this.guest.resume(this.#now);
  }

  /** Stop: the source guest keeps (or resumes) running with its state whole. Idempotent. */
  abort(now: number): void {
    if (this.#phase === 'aborted') return;
    this.#now = Math.max(this.#now, now);
    this.#phase = 'aborted';
    this.#stopLogging();
    this.guest.setThrottle(1);
    if (this.guest.runState === 'paused') this.guest.resume(this.#now);
  }

  stats(): SenderStats {
    return {
      rule: this.rule.name,
      iterations: this.#precopy !== undefined ? this.#precopy.iteration + 1 : 1,
      memoryBytes: this.#memoryBytes,
      diskBytes: this.#diskBytes,
      controlBytes: this.#controlBytes,
      totalBytes: this.#memoryBytes + this.#diskBytes + this.#controlBytes,
      memoryPagesSent: this.#memPages,
      records: { ...this.#mem.counts },
      diskRecords: this.#disk !== undefined ? { ...this.#disk.counts } : { full: 0, zero: 0, ref: 0, delta: 0, skip: 0 },
      redirtiedSkips: (this.#precopy?.redirtiedSkips ?? 0) + (this.#plan?.skipped ?? 0),
      syncDiskWrites: this.#diskSync?.stats().writes ?? 0,
      diskSync: this.#diskSync?.stats(),
      startedAt: this.#startedAt,
      memoryStartedAt: this.#memStart,
      pausedAt: this.#pausedAt,
      minThrottle: this.#minThrottle,
      stopReason: this.#stopReason,
      memDigest: this.#memDigest,
      diskDigest: this.#diskDigest,
    };
  }

  progress(now: number): ProgressEvent {
    const g = this.guest;
    let pagesLeft: number;
    if (this.#phase === 'memory' && this.#precopy !== undefined) {
      pagesLeft = this.#precopy.left() + g.memory.dirtyCount();
    } else if (this.#phase === 'memory') {
      pagesLeft = this.#plan?.remaining() ?? 0;
    } else if (this.#phase === 'stop-copy') {
      pagesLeft = this.#final.length - this.#finalCursor;
    } else if (this.#phase === 'hello' || this.#phase === 'disk') {
      pagesLeft = g.memory.pageCount;
    } else {
      pagesLeft = 0;
    }
    const elapsed = Math.max(1e-9, now - (this.#memStart ?? this.#startedAt));
    const bw = this.#lastBandwidth > 0 ? this.#lastBandwidth : (this.#memoryBytes + this.#diskBytes) / elapsed;
    const dirtyRate = this.#lastDirtied > 0 && this.#lastBandwidth > 0 ? this.#lastDirtied : 0;
    return {
      phase: this.phase,
      iteration: this.#precopy?.iteration ?? 0,
      rule: this.rule.name,
      elapsedMs: now - this.#startedAt,
      bytesSent: this.#memoryBytes + this.#diskBytes + this.#controlBytes,
      pagesSent: this.#memPages,
      pagesLeft,
      ramPages: g.memory.pageCount,
      dirtyRate,
      throttle: g.throttle,
      etaMs: bw > 0 ? (pagesLeft * this.#lastBpp) / bw : Number.POSITIVE_INFINITY,
      deadlineMs: this.rule.kind === 'time-bound' ? this.rule.deadlineMs : undefined,
    };
  }

  // ---- stages ---------------------------------------------------------------

  /** Emits zero or more records; returns false when nothing more is due right now. */
  #step(out: OutRecord[]): boolean {
    switch (this.#phase) {
      case 'hello': return this.#hello(out);
      case 'disk': return this.#diskStep(out);
      case 'memory': return this.rule.kind === 'precopy' ? this.#precopyStep(out) : this.#timeBoundStep(out);
      case 'stop-copy': return this.#stopCopyStep(out);
      case 'device': {
        const state = this.guest.readDeviceState();
        this.#emit(out, { t: 'device', seq: this.#seq++, state }, 0, 'control');
        this.#phase = 'done';
        return true;
      }
      case 'done': {
        this.#memDigest = memoryDigest(this.guest.memory, this.#keyer);
        this.#diskDigest = this.#disk !== undefined ? diskDigest(this.guest.disk, this.#keyer) : diskDigest(undefined, this.#keyer);
        const deviceDigest = bytesDigest(this.guest.readDeviceState());
        this.#emit(out, { t: 'done', seq: this.#seq++, memDigest: this.#memDigest, diskDigest: this.#diskDigest, deviceDigest }, 0, 'control');
        this.#phase = 'await-ack';
        return false;
      }
      default: return false;
    }
  }

  #hello(out: OutRecord[]): boolean {
    const g = this.guest.geometry;
    this.#emit(out, { t: 'hello', name: g.name, pageCount: g.pageCount, blockCount: this.#disk !== undefined ? g.blockCount : 0, rule: this.rule.name, keep: this.#keep, optimized: this.rule.encoding === 'optimized' }, 0, 'control');
    if (this.#diskSync !== undefined) {
      this.#diskSync.start();
      this.#phase = 'disk';
    } else {
      this.#startMemory();
    }
    return true;
  }

  #diskStep(out: OutRecord[]): boolean {
    const ds = this.#diskSync;
    const b = ds?.nextCopyBlock(this.#now) ?? -1;
    if (b < 0) {
      if (ds?.replication === 'synchronous') this.#emit(out, { t: 'sync', seq: this.#seq++ }, 0, 'control');
      this.#startMemory();
      return true;
    }
    this.#sendBlock(out, b);
    return true;
  }

  /** Replication: a queued guest write goes out, if any. */
  #sendQueuedDisk(out: OutRecord[]): boolean {
    const b = this.#diskSync?.nextQueuedBlock() ?? -1;
    if (b < 0) return false;
    const before = this.#diskBytes;
    this.#sendBlock(out, b);
    if (this.#phase === 'memory') this.#liveDiskBytes += this.#diskBytes - before;
    return true;
  }

  /** Memory phase: queued disk writes first, while they are within their share of the phase's bytes. */
  #diskFirst(out: OutRecord[]): boolean {
    if (this.#liveDiskBytes > this.#diskShare * (this.#liveDiskBytes + this.#liveBytes)) return false;
    return this.#sendQueuedDisk(out);
  }

  #sendBlock(out: OutRecord[], b: number): void {
    const disk = this.guest.disk;
    if (disk === undefined || this.#disk === undefined) return;
    const rec = this.#disk.encode(b, disk.readBlock(b), this.#seq);
    if (rec !== undefined) { this.#seq++; this.#emit(out, rec, 0, 'disk'); }
    if (this.#diskSync?.synchronous === true) this.#diskSync.onBlockSent(b, rec?.seq, this.#now);
  }

  #startMemory(): void {
    this.#phase = 'memory';
    this.#memStart = this.#now;
    this.guest.memory.setDirtyLogging(true);
    if (this.rule.kind === 'precopy') this.#precopy = new PrecopyPlan(this.guest.memory, this.rule.skipRedirtied, this.#now);
    else {
      this.#plan = new DualChannelPlan(this.guest.memory);
      this.#meter = new DirtyRateMeter(this.#now);
    }
  }

  #precopyStep(out: OutRecord[]): boolean {
    if (this.#diskFirst(out)) return true;
    const rule = this.rule;
    const plan = this.#precopy;
    if (rule.kind !== 'precopy' || plan === undefined) return false;
    const p = plan.next();
    if (p >= 0) {
      const size = this.#sendPage(out, p, 0);
      if (size > 0) plan.account(size);
      return true;
    }
    if (p === SKIPPED) return true;
    // ITERATION_END: measure, ask the rule.
    const mem = this.guest.memory;
    const ms = Math.max(1e-6, this.#now - plan.startedAt);
    const dirtied = mem.dirtyCount();
    const stats: IterationStats = {
      iteration: plan.iteration,
      now: this.#now,
      elapsedMs: this.#now - (this.#memStart ?? this.#now),
      iterationMs: ms,
      pagesSent: plan.pages,
      bytesSent: plan.bytes,
      dirtied,
      totalPagesSent: this.#memPages,
      totalBytesSent: this.#memoryBytes,
      ramPages: mem.pageCount,
      bandwidth: plan.bytes > 0 ? plan.bytes / ms : this.#lastBandwidth,
      bytesPerPage: plan.pages > 0 ? plan.bytes / plan.pages : this.#lastBpp,
      throttle: this.guest.throttle,
    };
    if (plan.bytes > 0 && ms > 0.01) this.#lastBandwidth = stats.bandwidth;
    if (plan.pages > 0) this.#lastBpp = stats.bytesPerPage;
    this.#lastDirtied = (dirtied * 1000) / ms;
    const d = rule.afterIteration(stats);
    this.#log?.debug({ ...stats, decision: d }, 'iteration end');
    if (d.throttle !== undefined) this.#setThrottle(d.throttle);
    if (d.stop) {
      this.#stopReason = d.reason;
      this.#pause(out, mem.takeDirty());
      return true;
    }
    const next = plan.nextIteration(this.#now);
    this.#emit(out, { t: 'iter', seq: this.#seq++, iteration: plan.iteration, phase: 0 }, 0, 'control');
    // Nothing dirty: send queued disk writes, or let the loop come back with a later `now`.
    return next > 0 || this.#sendQueuedDisk(out);
  }

  #timeBoundStep(out: OutRecord[]): boolean {
    if (this.#diskFirst(out)) return true;
    const rule = this.rule;
    const plan = this.#plan;
    const meter = this.#meter;
    if (rule.kind !== 'time-bound' || plan === undefined || meter === undefined) return false;
    // Decide every 64 pages sent, and whenever mtx has finished.
    if ((this.#livePages & 63) === 0 || plan.mtxDone) {
      const elapsed = this.#now - (this.#memStart ?? this.#now);
      const bpp = this.#livePages > 0 ? this.#liveBytes / this.#livePages : FULL_RECORD_SIZE;
      const dirtyTotal = plan.taken + this.guest.memory.dirtyCount();
      meter.sample(this.#now, elapsed, dirtyTotal, this.guest.throttle);
      this.#lastBpp = bpp;
      if (elapsed > 0) this.#lastBandwidth = this.#liveBytes / elapsed;
      this.#lastDirtied = meter.perMsFullShare * 1000 * this.guest.throttle;
      const d = rule.decide({
        now: this.#now,
        elapsedMs: elapsed,
        mtxFraction: plan.mtxFraction,
        mtxDone: plan.mtxDone,
        remainingPages: plan.remaining(),
        bytesPerPage: bpp,
        bandwidth: elapsed > 0 ? this.#liveBytes / elapsed : 0,
        dirtyRateFullShare: meter.perMsFullShare,
        throttle: this.guest.throttle,
      });
      if (d.throttle !== undefined) {
        meter.sample(this.#now, elapsed, dirtyTotal, this.guest.throttle, true);
        this.#setThrottle(d.throttle);
      }
      if (d.stop) {
        this.#stopReason = d.reason;
        this.#pause(out, plan.rest());
        return true;
      }
    }
    const step = plan.next();
    if (step.kind === 'idle') return this.#sendQueuedDisk(out); // else wait for the guest to dirty something, or the rule to stop
    if (step.kind === 'send') plan.account(step.ch, this.#sendPage(out, step.page, step.ch));
    return true;
  }

  #pause(out: OutRecord[], pages: Uint32Array): void {
    this.guest.pause(this.#now);
    this.#pausedAt = this.#now;
    this.#final = pages;
    this.#finalCursor = 0;
    this.#diskSync?.collectWrites();
    this.#emit(out, { t: 'pause', seq: this.#seq++ }, 0, 'control');
    this.#phase = 'stop-copy';
    this.#log?.debug({ pages: pages.length, reason: this.#stopReason }, 'paused: stop-and-copy');
  }

  #stopCopyStep(out: OutRecord[]): boolean {
    if (this.#sendQueuedDisk(out)) return true;
    if (this.#finalCursor < this.#final.length) {
      const p = this.#final[this.#finalCursor++] ?? 0;
      // Two channels (time-bound) share the last pages; one channel otherwise.
      const ch: 0 | 1 = this.rule.kind === 'time-bound' ? this.#finalCh : 0;
      this.#finalCh = this.#finalCh === 0 ? 1 : 0;
      this.#sendPage(out, p, ch);
      return true;
    }
    this.#phase = 'device';
    return true;
  }

  #sendPage(out: OutRecord[], p: number, ch: 0 | 1): number {
    const rec = this.#mem.encode(p, this.guest.memory.readPage(p), this.#seq);
    if (rec === undefined) return 0;
    this.#seq++;
    const size = this.#emit(out, rec, ch, 'memory');
    this.#memPages++;
    if (this.#phase === 'memory') { this.#liveBytes += size; this.#livePages++; }
    return size;
  }

  #emit(out: OutRecord[], rec: MigrationRecord, ch: 0 | 1, what: 'memory' | 'disk' | 'control'): number {
    const size = recordSize(rec);
    out.push({ rec, ch, size });
    if (what === 'memory') this.#memoryBytes += size;
    else if (what === 'disk') this.#diskBytes += size;
    else this.#controlBytes += size;
    return size;
  }

  #setThrottle(share: number): void {
    this.guest.setThrottle(share);
    this.#minThrottle = Math.min(this.#minThrottle, this.guest.throttle);
  }

  #stopLogging(): void {
    this.guest.memory.setDirtyLogging(false);
    this.#diskSync?.stop(this.#now);
    if (this.#phase === 'finished' && !this.#keep) return;
    this.guest.setThrottle(1);
  }
}
