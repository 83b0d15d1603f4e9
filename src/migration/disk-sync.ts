/**
 * Disk transfer, as CloudNet does it with DRBD: a bulk asynchronous copy of
 * every block with the guest's writes logged meanwhile (the dirty-block map),
 * rounds over the blocks written during the previous pass until a round is
 * small, then synchronous replication: from then on every guest write is
 * sent ahead of memory as soon as it is seen, and the last ones go out while
 * the guest is paused. This drives the order; the sender encodes and emits.
 *
 * Model limit: the guest does not wait for its synchronous writes; the
 * number of such writes is counted (each would cost a round trip).
 */
import type { Logger } from 'pino';
import type { GuestDisk } from './guest.ts';

export interface DiskSyncOptions {
  /** Switch to synchronous replication once a round has at most this many blocks (default 256). */
  readonly syncThreshold?: number;
  /** At most this many rounds after the bulk copy (default 8). */
  readonly maxRounds?: number;
  readonly logger?: Logger;
}

const EMPTY = new Uint32Array(0);

export class DiskSync {
  readonly disk: GuestDisk;
  readonly #threshold: number;
  readonly #maxRounds: number;
  readonly #log: Logger | undefined;
  #bulk = true;
  #todo: Uint32Array = EMPTY;
  #cursor = 0;
  #rounds = 0;
  #sync = false;
  readonly #queue: number[] = [];
  #queueHead = 0;
  syncWrites = 0;

  constructor(disk: GuestDisk, opts: DiskSyncOptions = {}) {
    this.disk = disk;
    this.#threshold = opts.syncThreshold ?? 256;
    this.#maxRounds = opts.maxRounds ?? 8;
    this.#log = opts.logger;
  }

  /** Start logging writes; the bulk copy begins. */
  start(): void {
    this.disk.setWriteLogging(true);
  }

  get synchronous(): boolean {
    return this.#sync;
  }

  get rounds(): number {
    return this.#rounds;
  }

  /**
   * The next block of the asynchronous copy, or -1 when it is over and the
   * disk has switched to synchronous replication (the memory phase may begin).
   */
  nextCopyBlock(): number {
    const len = this.#bulk ? this.disk.blockCount : this.#todo.length;
    if (this.#cursor < len) {
      const b = this.#bulk ? this.#cursor : (this.#todo[this.#cursor] ?? 0);
      this.#cursor++;
      return b;
    }
    const writes = this.disk.takeWrites();
    this.#rounds++;
    if (writes.length <= this.#threshold || this.#rounds > this.#maxRounds) {
      for (const b of writes) this.#queue.push(b);
      this.#sync = true;
      this.#log?.debug({ rounds: this.#rounds, left: writes.length }, 'disk: synchronous replication');
      return -1;
    }
    this.#bulk = false;
    this.#todo = writes;
    this.#cursor = 0;
    return this.nextCopyBlock();
  }

  /** Synchronous mode: queue the guest's new writes (to go out before anything else). */
  collectWrites(): void {
    if (!this.#sync) return;
    const w = this.disk.takeWrites();
    this.syncWrites += w.length;
    for (const b of w) this.#queue.push(b);
  }

  /** The next queued block, or -1. */
  nextQueuedBlock(): number {
    if (this.#queueHead >= this.#queue.length) {
      if (this.#queueHead > 0) { this.#queue.length = 0; this.#queueHead = 0; }
      return -1;
    }
    return this.#queue[this.#queueHead++] ?? -1;
  }

  /** Stop logging (end or abort). */
  stop(): void {
    this.disk.setWriteLogging(false);
  }
}
