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
 * (by the driver in slices, `primeSenderKeys`, or when the sender is made)
 * and refreshed just before the pause, so the paused guest's digest
 * costs a fold, not a pass over its RAM.
 *
 * This file holds the phases and the stop-and-copy; the disk stages are in
 * sender-disk.ts, the live memory phase in sender-memory.ts, the byte and
 * sequence accounting in send-ledger.ts.
 */
import type { Logger } from 'pino';
import type { Guest } from '../guest.ts';
import type { ContentKeyer } from './content-key.ts';
import { bytesDigest, ImageKeys } from './content-key.ts';
import { ContentEncoder } from './content-encoder.ts';
import type { StopRule } from '../stop-rules/stop-rule.ts';
import type { ProgressEvent, MigrationPhase } from './progress.ts';
import type { DiskReplication } from './disk-sync.ts';
import type { SenderStats } from './migration-result.ts';
import { MigrationAbortedError } from '../errors.ts';
import { SendLedger, type OutRecord } from './send-ledger.ts';
import { SenderDisk, type SenderDiskImage } from './sender-disk.ts';
import { PrecopyPhase, TimeBoundPhase, type MemoryPhase, type MemoryPhaseHost } from './sender-memory.ts';

export type { OutRecord } from './send-ledger.ts';
export type { SenderStats } from './migration-result.ts';

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

/** The image keys a sender's digests at `done` come from. */
export interface SenderKeys {
  readonly mem: ImageKeys;
  readonly disk: ImageKeys;
}

/** Pages keyed per slice by primeSenderKeys (16 MiB of 4 KiB pages: a few ms to tens of ms, whatever the image's size). */
const PRIME_SLICE_PAGES = 4096;

/**
 * A sender's image keys, every page keyed in slices with `between()`
 * awaited after each: a driver sharing its event loop with a data plane
 * (the daemon's) primes them before it makes the sender, instead of the
 * constructor keying 256 MiB in one go. `withDisk`: the sender will migrate
 * the disk (as SenderInit.disk and the guest's disk decide).
 */
export async function primeSenderKeys(guest: Guest, keyer: ContentKeyer, withDisk: boolean, between: () => Promise<void>): Promise<SenderKeys> {
  const mem = ImageKeys.ofMemory(guest.memory, keyer);
  const disk = ImageKeys.ofDisk(withDisk ? guest.disk : undefined, keyer);
  await mem.prime(PRIME_SLICE_PAGES, between);
  await disk.prime(PRIME_SLICE_PAGES, between);
  return { mem, disk };
}

type Phase = 'hello' | 'disk' | 'memory' | 'stop-copy' | 'device' | 'done' | 'await-ack' | 'finished' | 'aborted';

const EMPTY = new Uint32Array(0);

export class MigrationSender {
  readonly guest: Guest;
  readonly rule: StopRule;
  readonly #keyer: ContentKeyer;
  readonly #log: Logger | undefined;
  readonly #mem: ContentEncoder;
  readonly #disk: SenderDisk | undefined;
  readonly #keep: boolean;
  /** The stream carries chunk records (version 3). */
  readonly #imageStream: boolean;
  readonly #catchUp: boolean;
  /** The mark sent for the catch-up under way, and the latest mark the receiver applied. */
  #markSeq: number | undefined;
  #appliedSeq = 0;
  #memKeys: ImageKeys | undefined;
  #diskKeys: ImageKeys | undefined;
  readonly #ledger = new SendLedger();
  #phase: Phase = 'hello';
  #now: number;
  readonly #startedAt: number;
  #memStart: number | undefined;
  #pausedAt: number | undefined;
  #minThrottle = 1;
  #stopReason = '';
  readonly #ackTimeout: number;
  #failure: MigrationAbortedError | undefined;
  #memDigest: string | undefined;
  #diskDigest: string | undefined;
  #memory: MemoryPhase | undefined;
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
    this.#imageStream = (init.disk ?? true) && init.guest.disk !== undefined && init.diskImage !== undefined && init.diskImage.held.size > 0;
    this.#catchUp = init.catchUp ?? false;
    this.#now = init.now;
    this.#startedAt = init.now;
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
    if (init.keys !== undefined) {
      this.#memKeys = init.keys.mem;
      this.#diskKeys = init.keys.disk;
    }
    this.#keys();
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
      this.#stopReason = this.#failure.message;
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
    this.#appliedSeq = Math.max(this.#appliedSeq, seq);
  }

  /** Whether a catch-up waits for the receiver's `applied` (the driver waits for it rather than polling). */
  get awaitingApplied(): boolean {
    return this.#markSeq !== undefined && this.#appliedSeq < this.#markSeq;
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
    const l = this.#ledger;
    return {
      rule: this.rule.name,
      iterations: this.#memory?.iterations ?? 1,
      memoryBytes: l.memoryBytes,
      diskBytes: l.diskBytes,
      controlBytes: l.controlBytes,
      totalBytes: l.totalBytes,
      memoryPagesSent: l.memoryPages,
      records: { ...this.#mem.counts },
      diskRecords: this.#disk !== undefined ? { ...this.#disk.encoder.counts } : { full: 0, zero: 0, ref: 0, delta: 0, skip: 0 },
      redirtiedSkips: this.#memory?.redirtiedSkips ?? 0,
      syncDiskWrites: this.#disk?.sync.stats().writes ?? 0,
      diskSync: this.#disk?.sync.stats(),
      ...(this.#disk !== undefined && this.#imageStream ? { diskImage: { ...this.#disk.imageStats } } : {}),
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
    const l = this.#ledger;
    let pagesLeft: number;
    if (this.#phase === 'memory') {
      pagesLeft = this.#memory?.pagesLeft() ?? 0;
    } else if (this.#phase === 'stop-copy') {
      pagesLeft = this.#final.length - this.#finalCursor;
    } else if (this.#phase === 'hello' || this.#phase === 'disk') {
      pagesLeft = g.memory.pageCount;
    } else {
      pagesLeft = 0;
    }
    const elapsed = Math.max(1e-9, now - (this.#memStart ?? this.#startedAt));
    const bw = l.bandwidth > 0 ? l.bandwidth : (l.memoryBytes + l.diskBytes) / elapsed;
    const dirtyRate = l.dirtiedPerSec > 0 && l.bandwidth > 0 ? l.dirtiedPerSec : 0;
    return {
      phase: this.phase,
      iteration: this.#memory?.iteration ?? 0,
      rule: this.rule.name,
      elapsedMs: now - this.#startedAt,
      bytesSent: l.totalBytes,
      pagesSent: l.memoryPages,
      pagesLeft,
      ramPages: g.memory.pageCount,
      dirtyRate,
      throttle: g.throttle,
      etaMs: bw > 0 ? (pagesLeft * l.bytesPerPage) / bw : Number.POSITIVE_INFINITY,
      deadlineMs: this.rule.kind === 'time-bound' ? this.rule.deadlineMs : undefined,
    };
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
      case 'stop-copy': return this.#stopCopyStep(out);
      case 'device': {
        const state = this.guest.readDeviceState();
        this.#ledger.emit(out, { t: 'device', seq: this.#ledger.seq++, state }, 0, 'control');
        this.#phase = 'done';
        return true;
      }
      case 'done': {
        this.#memDigest = this.#keys().mem.digest();
        this.#diskDigest = this.#keys().disk.digest();
        const deviceDigest = bytesDigest(this.guest.readDeviceState());
        this.#ledger.emit(out, { t: 'done', seq: this.#ledger.seq++, memDigest: this.#memDigest, diskDigest: this.#diskDigest, deviceDigest }, 0, 'control');
        this.#phase = 'await-ack';
        return false;
      }
      default: return false;
    }
  }

  #hello(out: OutRecord[]): boolean {
    const g = this.guest.geometry;
    this.#ledger.emit(out, { t: 'hello', name: g.name, pageCount: g.pageCount, blockCount: this.#disk !== undefined ? g.blockCount : 0, rule: this.rule.name, keep: this.#keep, optimized: this.rule.encoding === 'optimized', ...(this.#imageStream ? { images: true } : {}), ...(this.#catchUp ? { catchUp: true } : {}) }, 0, 'control');
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
    this.#memStart = this.#now;
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
      caughtUp: (out) => this.#caughtUp(out),
      pause: (out, pages, reason) => this.#pause(out, pages, reason),
    };
    this.#memory = this.rule.kind === 'precopy' ? new PrecopyPhase(host, this.rule) : new TimeBoundPhase(host, this.rule);
  }

  /** The image keys for the digests at `done`, made (every page keyed) on first use. */
  #keys(): { mem: ImageKeys; disk: ImageKeys } {
    if (this.#memKeys === undefined) {
      this.#memKeys = ImageKeys.ofMemory(this.guest.memory, this.#keyer);
      this.#memKeys.refresh();
    }
    if (this.#diskKeys === undefined) {
      this.#diskKeys = ImageKeys.ofDisk(this.#disk !== undefined ? this.guest.disk : undefined, this.#keyer);
      this.#diskKeys.refresh();
    }
    return { mem: this.#memKeys, disk: this.#diskKeys };
  }

  /**
   * Whether the receiver has applied everything sent before now: true at
   * once without catch-up; else a mark goes out (once) and this is false
   * until its `applied` came back (records sent after the mark — disk
   * writes — do not restart the wait).
   */
  #caughtUp(out: OutRecord[]): boolean {
    if (!this.#catchUp) return true;
    if (this.#markSeq === undefined) {
      this.#markSeq = this.#ledger.seq++;
      this.#ledger.emit(out, { t: 'mark', seq: this.#markSeq }, 0, 'control');
      return false;
    }
    if (this.#appliedSeq < this.#markSeq) return false;
    this.#markSeq = undefined;
    return true;
  }

  #pause(out: OutRecord[], pages: Uint32Array, reason: string): void {
    this.#stopReason = reason;
    // Re-key what the pre-copy saw written while the guest still runs: at `done` only the final pages are left to key.
    const keys = this.#keys();
    keys.mem.refresh();
    keys.disk.refresh();
    this.guest.pause(this.#now);
    this.#pausedAt = this.#now;
    this.#final = pages;
    this.#finalCursor = 0;
    this.#disk?.sync.collectWrites();
    this.#ledger.emit(out, { t: 'pause', seq: this.#ledger.seq++ }, 0, 'control');
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
    this.#minThrottle = Math.min(this.#minThrottle, this.guest.throttle);
  }

  #stopLogging(): void {
    this.guest.memory.setDirtyLogging(false);
    this.#disk?.sync.stop(this.#now);
    if (this.#phase === 'finished' && !this.#keep) return;
    this.guest.setThrottle(1);
  }
}
