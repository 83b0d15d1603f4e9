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
 *
 * Catch-up (`catchUp`, real sockets): records handed to a socket are not on
 * the destination yet — megabytes of an iteration may still sit in socket
 * buffers and in the receiver's queue when the sender has produced its last
 * record. So before a pre-copy rule measures an iteration, and before any
 * rule's stop pauses the guest, the sender sends a mark and produces nothing
 * more until the receiver's `applied` for it (`onApplied`): the rule sees
 * the iteration as delivered (its time, bandwidth and the pages dirtied
 * meanwhile), and the pause starts with the pipe empty, so the downtime is
 * the final pages' own trip and not the tail of the previous iteration.
 * The digests at `done` come from ImageKeys primed before any phase is timed
 * (by the driver in slices, `primeSenderKeys`, or when the sender is made:
 * sender-keys.ts) and refreshed just before the pause, so the paused guest's
 * digest costs a fold, not a pass over its RAM.
 *
 * This file holds the phases; the disk stages are in sender-disk.ts, the live
 * memory phase in sender-memory.ts, the catch-up marks in sender-catch-up.ts,
 * the stop-and-copy in sender-stop-copy.ts, the byte and sequence accounting
 * in send-ledger.ts.
 */
import type { Logger } from 'pino';
import type { Guest } from '../guest.ts';
import type { ContentKeyer } from './content-key.ts';
import { bytesDigest } from './content-key.ts';
import { ContentEncoder } from './content-encoder.ts';
import type { StopRule } from '../stop-rules/stop-rule.ts';
import type { ProgressEvent, MigrationPhase } from './progress.ts';
import type { DiskReplication } from './disk-sync.ts';
import type { SenderStats } from './migration-result.ts';
import { MigrationAbortedError } from '../errors.ts';
import { SendLedger, type OutRecord } from './send-ledger.ts';
import { SenderDisk, type SenderDiskImage } from './sender-disk.ts';
import { PrecopyPhase, TimeBoundPhase, type MemoryPhase, type MemoryPhaseHost } from './sender-memory.ts';
import { SenderCatchUp } from './sender-catch-up.ts';
import { senderKeys, type SenderKeys } from './sender-keys.ts';
import { StopCopy } from './sender-stop-copy.ts';
import { newSenderRun, senderProgress, senderStats, type SenderParts, type SenderRun } from './sender-report.ts';

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
  /** The disk is an image the destination may hold chunks of: those spans go as chunk records (stream v3). */
  readonly diskImage?: SenderDiskImage;
  /**
   * Wait for the receiver to have applied everything sent (a mark and its
   * `applied` answer, `onApplied`) before a pre-copy iteration is measured
   * and before the guest pauses. Default false (the virtual-time driver
   * models delivery itself); the socket driver turns it on.
   */
  readonly catchUp?: boolean;
  /** The image keys, already primed (`primeSenderKeys`, in slices); without them the constructor keys every page at once. */
  readonly keys?: SenderKeys;
}

type Phase = 'hello' | 'disk' | 'memory' | 'stop-copy' | 'device' | 'done' | 'await-ack' | 'finished' | 'aborted';

export class MigrationSender {
  readonly guest: Guest;
  readonly rule: StopRule;
  readonly #log: Logger | undefined;
  readonly #mem: ContentEncoder;
  readonly #disk: SenderDisk | undefined;
  readonly #keep: boolean;
  /** The stream carries chunk records (version 3). */
  readonly #imageStream: boolean;
  readonly #ledger = new SendLedger();
  readonly #catchUp: SenderCatchUp;
  readonly #keys: SenderKeys;
  #phase: Phase = 'hello';
  #now: number;
  readonly #run: SenderRun;
  readonly #ackTimeout: number;
  #failure: MigrationAbortedError | undefined;
  #memory: MemoryPhase | undefined;
  #stopCopy: StopCopy | undefined;

  constructor(init: SenderInit) {
    this.guest = init.guest;
    this.rule = init.rule;
    this.#log = init.logger;
    this.#keep = init.keep ?? false;
    this.#imageStream = (init.disk ?? true) && init.guest.disk !== undefined && init.diskImage !== undefined && init.diskImage.held.size > 0;
    this.#catchUp = new SenderCatchUp(init.catchUp ?? false, this.#ledger);
    this.#now = init.now;
    this.#run = newSenderRun(init.now);
    this.#ackTimeout = init.diskAckTimeoutMs ?? 30_000;
    const g = init.guest;
    const capacity = init.cacheCapacity ?? g.memory.pageCount;
    this.#mem = new ContentEncoder({ space: 'mem', count: g.memory.pageCount, representation: g.memory.representation, keyer: init.keyer, encoding: init.rule.encoding, cacheCapacity: capacity });
    if ((init.disk ?? true) && g.disk !== undefined) {
      this.#disk = new SenderDisk({
        guest: g, disk: g.disk, keyer: init.keyer, encoding: init.rule.encoding, cacheCapacity: capacity, share: init.diskShare ?? 0.5,
        ...(init.diskSyncThreshold !== undefined ? { syncThreshold: init.diskSyncThreshold } : {}),
        ...(init.diskMaxRounds !== undefined ? { maxRounds: init.diskMaxRounds } : {}),
        ...(init.diskReplication !== undefined ? { replication: init.diskReplication } : {}),
        ...(init.logger !== undefined ? { logger: init.logger } : {}),
        ...(init.diskImage !== undefined ? { image: init.diskImage } : {}),
      }, this.#ledger);
    }
    // Every page keyed once before any phase is timed (keying 256 MiB takes a while): the digests at `done` re-key only what changed since.
    this.#keys = senderKeys(g, init.keyer, this.#disk !== undefined, init.keys);
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
    const sentAt = this.#disk?.sync.oldestUnackedSentAt();
    if (sentAt !== undefined && this.#now - sentAt > this.#ackTimeout) {
      this.#failure = new MigrationAbortedError('timeout', `no disk acknowledgement for ${Math.round(this.#now - sentAt)} ms (limit ${this.#ackTimeout} ms)`);
      this.#run.stopReason = this.#failure.message;
      this.abort(this.#now);
      return out;
    }
    if (this.#phase === 'await-ack') return out;
    this.#disk?.sync.collectWrites();
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
    this.#disk?.sync.onAck(seq, this.#now);
  }

  /** The receiver's `applied`: every record up to mark `seq` is applied on the destination. */
  onApplied(seq: number, now: number): void {
    if (this.finished) return;
    this.#now = Math.max(this.#now, now);
    this.#catchUp.applied(seq);
  }

  /** Whether a catch-up waits for the receiver's `applied` (the driver waits for it rather than polling). */
  get awaitingApplied(): boolean {
    return this.#catchUp.awaiting;
  }

  /** The receiver's verdict on the done record. */
  onAck(ok: boolean, now: number, code = ''): void {
    if (this.#phase !== 'await-ack') return;
    this.#now = Math.max(this.#now, now);
    if (!ok) {
      this.#run.stopReason = `destination refused the image: ${code}`;
      this.abort(now);
      return;
    }
    this.#phase = 'finished';
    // The verified image holds every record sent: every pending write is on both sides.
    this.#disk?.sync.finish(this.#now);
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
    return senderStats(this.#run, this.#parts());
  }

  progress(now: number): ProgressEvent {
    const g = this.guest;
    let pagesLeft: number;
    if (this.#phase === 'memory') {
      pagesLeft = this.#memory?.pagesLeft() ?? 0;
    } else if (this.#phase === 'stop-copy') {
      pagesLeft = this.#stopCopy?.pagesLeft ?? 0;
    } else if (this.#phase === 'hello' || this.#phase === 'disk') {
      pagesLeft = g.memory.pageCount;
    } else {
      pagesLeft = 0;
    }
    return senderProgress(this.#run, this.#parts(), this.phase, pagesLeft, now);
  }

  #parts(): SenderParts {
    return { guest: this.guest, rule: this.rule, ledger: this.#ledger, mem: this.#mem, disk: this.#disk, imageStream: this.#imageStream, memory: this.#memory };
  }

  // ---- stages ---------------------------------------------------------------

  /** Emits zero or more records; returns false when nothing more is due right now. */
  #step(out: OutRecord[]): boolean {
    switch (this.#phase) {
      case 'hello': return this.#hello(out);
      case 'disk':
        if (this.#disk === undefined || !this.#disk.copyStep(out, this.#now)) this.#startMemory();
        return true;
      case 'memory': return this.#memory?.step(out) ?? false;
      case 'stop-copy':
        if (this.#stopCopy?.step(out) !== true) this.#phase = 'device';
        return true;
      case 'device': {
        const state = this.guest.readDeviceState();
        this.#ledger.emit(out, { t: 'device', seq: this.#ledger.seq++, state }, 0, 'control');
        this.#phase = 'done';
        return true;
      }
      case 'done': {
        const memDigest = (this.#run.memDigest = this.#keys.mem.digest());
        const diskDigest = (this.#run.diskDigest = this.#keys.disk.digest());
        const deviceDigest = bytesDigest(this.guest.readDeviceState());
        this.#ledger.emit(out, { t: 'done', seq: this.#ledger.seq++, memDigest, diskDigest, deviceDigest }, 0, 'control');
        this.#phase = 'await-ack';
        return false;
      }
      default: return false;
    }
  }

  #hello(out: OutRecord[]): boolean {
    const g = this.guest.geometry;
    this.#ledger.emit(out, { t: 'hello', name: g.name, pageCount: g.pageCount, blockCount: this.#disk !== undefined ? g.blockCount : 0, rule: this.rule.name, keep: this.#keep, optimized: this.rule.encoding === 'optimized', ...(this.#imageStream ? { images: true } : {}), ...(this.#catchUp.enabled ? { catchUp: true } : {}) }, 0, 'control');
    if (this.#disk !== undefined) {
      this.#disk.sync.start();
      this.#phase = 'disk';
    } else {
      this.#startMemory();
    }
    return true;
  }

  #sendQueuedDisk(out: OutRecord[]): boolean {
    return this.#disk?.sendQueued(out, this.#now, this.#phase === 'memory') ?? false;
  }

  #startMemory(): void {
    this.#phase = 'memory';
    this.#run.memoryStartedAt = this.#now;
    this.guest.memory.setDirtyLogging(true);
    const host: MemoryPhaseHost = {
      guest: this.guest,
      ledger: this.#ledger,
      logger: this.#log,
      now: () => this.#now,
      memoryStartedAt: this.#now,
      diskFirst: (out) => this.#disk?.first(out, this.#now) ?? false,
      sendQueuedDisk: (out) => this.#sendQueuedDisk(out),
      sendPage: (out, p, ch) => this.#sendPage(out, p, ch),
      setThrottle: (share) => this.#setThrottle(share),
      caughtUp: (out) => this.#catchUp.caughtUp(out),
      pause: (out, pages, reason) => this.#pause(out, pages, reason),
    };
    this.#memory = this.rule.kind === 'precopy' ? new PrecopyPhase(host, this.rule) : new TimeBoundPhase(host, this.rule);
  }

  #pause(out: OutRecord[], pages: Uint32Array, reason: string): void {
    this.#run.stopReason = reason;
    // Re-key what the pre-copy saw written while the guest still runs: at `done` only the final pages are left to key.
    this.#keys.mem.refresh();
    this.#keys.disk.refresh();
    this.guest.pause(this.#now);
    this.#run.pausedAt = this.#now;
    this.#stopCopy = new StopCopy(pages, this.rule.kind === 'time-bound', {
      sendQueuedDisk: (o) => this.#sendQueuedDisk(o),
      sendPage: (o, p, ch) => this.#sendPage(o, p, ch),
    });
    this.#disk?.sync.collectWrites();
    this.#ledger.emit(out, { t: 'pause', seq: this.#ledger.seq++ }, 0, 'control');
    this.#phase = 'stop-copy';
    this.#log?.debug({ pages: pages.length, reason: this.#run.stopReason }, 'paused: stop-and-copy');
  }

  #sendPage(out: OutRecord[], p: number, ch: 0 | 1): number {
    const l = this.#ledger;
    const rec = this.#mem.encode(p, this.guest.memory.readPage(p), l.seq);
    if (rec === undefined) return 0;
    l.seq++;
    const size = this.#ledger.emit(out, rec, ch, 'memory');
    l.memoryPages++;
    if (this.#phase === 'memory') { l.liveBytes += size; l.livePages++; }
    return size;
  }

  #setThrottle(share: number): void {
    this.guest.setThrottle(share);
    this.#run.minThrottle = Math.min(this.#run.minThrottle, this.guest.throttle);
  }

  #stopLogging(): void {
    this.guest.memory.setDirtyLogging(false);
    this.#disk?.sync.stop(this.#now);
    if (this.#phase === 'finished' && !this.#keep) return;
    this.guest.setThrottle(1);
  }
}
