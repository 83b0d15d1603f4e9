/**
 * Disk transfer, as CloudNet does it with DRBD: a bulk asynchronous copy of
 * every block with the guest's writes logged meanwhile (the dirty-block map),
 * rounds over the blocks written during the previous pass until a round is
 * small, then replication of every new write ahead of memory, until the end.
 * This drives the order; the sender encodes and emits.
 *
 * Synchronous replication (the default, DRBD's protocol C): at the switch
 * the disk gets a write gate (`GuestDisk.setWriteGate`). A guest write is
 * admitted only while fewer than the guest's `queueDepth` writes are
 * pending; admitted, it is written locally, logged, queued for sending, and
 * stays pending until the destination acknowledges the record that carried
 * the block (a cumulative disk-ack: every disk record up to that sequence
 * number is on the destination's disk). Then it completes, its latency
 * (issue to ack) is recorded, and the guest may issue a write it had to hold
 * back. A block sent as a `skip` (the destination already holds exactly that
 * content) completes at once.
 *
 *   guest write ─admit?─▶ pending[uncovered, by block] ─sent as seq s─▶ group s ─ack ≥ s─▶ complete
 *
 * Asynchronous replication (DRBD's protocol A, for comparison): the gate
 * admits every write and completes it at once, so the same counters measure
 * the guest's unhindered write rate.
 *
 * Stopping (end or abort) removes the gate: every pending write completes
 * (locally: the source is authoritative, so nothing is lost) and a write the
 * guest held back is issued at once.
 */
import type { Logger } from 'pino';
import type { DiskWriteGate, GuestDisk } from '../guest.ts';
import { LatencyHistogram, type LatencySummary } from './latency-histogram.ts';

export type DiskReplication = 'synchronous' | 'asynchronous';

export interface DiskSyncOptions {
  /** Switch to replication once a round has at most this many blocks (default 256). */
  readonly syncThreshold?: number;
  /** At most this many rounds after the bulk copy (default 8). */
  readonly maxRounds?: number;
  /** 'synchronous' (default): writes wait for the destination's ack; 'asynchronous': they complete locally. */
  readonly replication?: DiskReplication;
  readonly logger?: Logger;
}

export interface DiskSyncStats {
  readonly replication: DiskReplication;
  readonly queueDepth: number;
  /** When replication began (the memory phase may start), or undefined. */
  readonly syncStartedAt: number | undefined;
  /** Guest writes admitted since replication began. */
  readonly writes: number;
  /** Of those, completed by the destination's ack (or, asynchronous, at once). */
  readonly acked: number;
  /** Completed locally when replication stopped (end or abort) while still pending. */
  readonly completedLocally: number;
  /** Times the gate refused a write (queue full): the guest stalled. */
  readonly refusals: number;
  /** Most writes pending at once. */
  readonly maxPending: number;
  /** Issue-to-ack latency of acknowledged writes. */
  readonly latency: LatencySummary;
}

const EMPTY = new Uint32Array(0);

interface Group { readonly seq: number; readonly sentAt: number; readonly issued: number[] }

export class DiskSync implements DiskWriteGate {
  readonly disk: GuestDisk;
  readonly replication: DiskReplication;
  readonly #threshold: number;
  readonly #maxRounds: number;
  readonly #log: Logger | undefined;
  #bulk = true;
  #todo: Uint32Array = EMPTY;
  #cursor = 0;
  #rounds = 0;
  #sync = false;
  #gated = false;
  readonly #queue: number[] = [];
  #queueHead = 0;
  /** Blocks in the queue and not yet sent (a block rewritten meanwhile is sent once, with its latest content). */
  readonly #queued: Uint8Array;
  // synchronous bookkeeping
  /** Issue times of admitted writes not yet carried by a sent record, by block. */
  readonly #uncovered = new Map<number, number[]>();
  /** Sent records carrying pending writes, in sequence order. */
  readonly #groups: Group[] = [];
  #groupHead = 0;
  #pending = 0;
  #syncStartedAt: number | undefined;
  #writes = 0;
  #acked = 0;
  #local = 0;
  #refusals = 0;
  #maxPending = 0;
  #ackedSeq = 0;
  readonly #latency = new LatencyHistogram();

  constructor(disk: GuestDisk, opts: DiskSyncOptions = {}) {
    this.disk = disk;
    this.#threshold = opts.syncThreshold ?? 256;
    this.#maxRounds = opts.maxRounds ?? 8;
    this.replication = opts.replication ?? 'synchronous';
    this.#log = opts.logger;
    this.#queued = new Uint8Array(disk.blockCount);
  }

  /** Start logging writes; the bulk copy begins. */
  start(): void {
    this.disk.setWriteLogging(true);
  }

  /** Replication has begun (the bulk copy and the rounds are over). */
  get synchronous(): boolean {
    return this.#sync;
  }

  get rounds(): number {
    return this.#rounds;
  }

  /** Guest writes admitted and not yet complete. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * The next block of the asynchronous copy, or -1 when it is over: the disk
   * has switched to replication (gated from `now`) and the memory phase may begin.
   */
  nextCopyBlock(now: number): number {
    const len = this.#bulk ? this.disk.blockCount : this.#todo.length;
    if (this.#cursor < len) {
      const b = this.#bulk ? this.#cursor : (this.#todo[this.#cursor] ?? 0);
      this.#cursor++;
      return b;
    }
    const writes = this.disk.takeWrites();
    this.#rounds++;
    if (writes.length <= this.#threshold || this.#rounds > this.#maxRounds) {
      for (const b of writes) this.#enqueue(b);
      this.#sync = true;
      this.#syncStartedAt = now;
      this.#gated = true;
      this.disk.setWriteGate(this, now);
      this.#log?.debug({ rounds: this.#rounds, left: writes.length, replication: this.replication }, 'disk: replication begins');
      return -1;
    }
    this.#bulk = false;
    this.#todo = writes;
    this.#cursor = 0;
    return this.nextCopyBlock(now);
  }

  /** Whether the bulk copy (block by block, in order) is still running; `skipBulk` applies only then. */
  get inBulk(): boolean {
    return this.#bulk && !this.#sync;
  }

  /** Bulk copy: the next `n` blocks are covered otherwise (a chunk record): the copy moves past them. */
  skipBulk(n: number): void {
    if (this.inBulk) this.#cursor = Math.min(this.disk.blockCount, this.#cursor + n);
  }

  /** The gate (called by the guest's disk): admit a write of `block` at `now`, or refuse it (queue full). */
  admit(block: number, now: number): boolean {
    if (!this.#gated) return true;
    if (this.replication === 'asynchronous') {
      this.#writes++;
      this.#acked++;
      this.#latency.add(0);
      return true;
    }
    if (this.#pending >= this.disk.queueDepth) {
      this.#refusals++;
      return false;
    }
    this.#writes++;
    this.#pending++;
    if (this.#pending > this.#maxPending) this.#maxPending = this.#pending;
    const list = this.#uncovered.get(block);
    if (list === undefined) this.#uncovered.set(block, [now]);
    else list.push(now);
    return true;
  }

  /** Replication: queue the guest's new writes (to go out before anything else). */
  collectWrites(): void {
    if (!this.#sync) return;
    const w = this.disk.takeWrites();
    for (const b of w) this.#enqueue(b);
  }

  /** Blocks queued and not yet sent. */
  get queued(): number {
    return this.#queue.length - this.#queueHead;
  }

  #enqueue(b: number): void {
    if (this.#queued[b] === 1) return;
    this.#queued[b] = 1;
    this.#queue.push(b);
  }

  /** The next queued block, or -1. */
  nextQueuedBlock(): number {
    if (this.#queueHead >= this.#queue.length) {
      if (this.#queueHead > 0) { this.#queue.length = 0; this.#queueHead = 0; }
      return -1;
    }
    const b = this.#queue[this.#queueHead++] ?? -1;
    if (b >= 0) this.#queued[b] = 0;
    return b;
  }

  /**
   * The sender encoded block `block` as record `seq` at `now` (undefined: no
   * record was needed, the destination already holds that content). The
   * pending writes on that block are now carried by it.
   */
  onBlockSent(block: number, seq: number | undefined, now: number): void {
    const issued = this.#uncovered.get(block);
    if (issued === undefined) return;
    this.#uncovered.delete(block);
    if (seq === undefined || seq <= this.#ackedSeq) {
      this.#complete(issued, now, true);
      this.disk.writesCompleted(now);
      return;
    }
    this.#groups.push({ seq, sentAt: now, issued });
  }

  /** The destination has every disk record up to `seq` (cumulative). Returns how many writes completed. */
  onAck(seq: number, now: number): number {
    if (seq > this.#ackedSeq) this.#ackedSeq = seq;
    let n = 0;
    while (this.#groupHead < this.#groups.length) {
      const g = this.#groups[this.#groupHead];
      if (g === undefined || g.seq > seq) break;
      this.#groupHead++;
      n += this.#complete(g.issued, now, true);
    }
    if (this.#groupHead > 1024 && this.#groupHead * 2 > this.#groups.length) {
      this.#groups.splice(0, this.#groupHead);
      this.#groupHead = 0;
    }
    if (n > 0) this.disk.writesCompleted(now);
    return n;
  }

  /** When the oldest record still waiting for its ack was sent, or undefined. */
  oldestUnackedSentAt(): number | undefined {
    return this.#groups[this.#groupHead]?.sentAt;
  }

  /** Stop (end or abort): pending writes complete locally at `now`, the gate goes, logging stops. Idempotent. */
  stop(now: number): void {
    if (this.#gated) {
      this.#gated = false;
      for (let i = this.#groupHead; i < this.#groups.length; i++) this.#complete(this.#groups[i]?.issued ?? [], now, false);
      for (const issued of this.#uncovered.values()) this.#complete(issued, now, false);
      this.#groups.length = 0;
      this.#groupHead = 0;
      this.#uncovered.clear();
      this.disk.setWriteGate(undefined, now);
    }
    this.disk.setWriteLogging(false);
  }

  /**
   * Complete every write still pending because the destination confirmed the
   * whole image (the final ack covers every record), then stop.
   */
  finish(now: number): void {
    if (this.#gated) {
      for (let i = this.#groupHead; i < this.#groups.length; i++) this.#complete(this.#groups[i]?.issued ?? [], now, true);
      this.#groups.length = 0;
      this.#groupHead = 0;
    }
    this.stop(now);
  }

  stats(): DiskSyncStats {
    return {
      replication: this.replication,
      queueDepth: this.disk.queueDepth,
      syncStartedAt: this.#syncStartedAt,
      writes: this.#writes,
      acked: this.#acked,
      completedLocally: this.#local,
      refusals: this.#refusals,
      maxPending: this.#maxPending,
      latency: this.#latency.summary(),
    };
  }

  #complete(issued: readonly number[], now: number, acked: boolean): number {
    for (const t of issued) {
      if (acked) { this.#acked++; this.#latency.add(now - t); } else this.#local++;
    }
    this.#pending -= issued.length;
    return issued.length;
  }
}
