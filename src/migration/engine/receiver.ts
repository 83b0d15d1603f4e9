/**
 * The receiving side: builds the destination guest from the hello, applies
 * records in sequence order (whatever channel brought them; a bounded
 * reorder buffer), keeps its content cache in lock-step with the sender's,
 * and at `done` verifies memory, disk and device state against the source's
 * digests before resuming (migration) or keeping the image paused
 * (checkpoint). Total: every failure becomes a typed error and a refusing
 * ack, never a throw.
 *
 * Synchronous disk replication: after the sender's sync record, every disk
 * record applied makes a disk-ack due (cumulative: its sequence number);
 * drivers collect it with `takeDiskAck()` after feeding records and send it
 * back at once.
 *
 * Catch-up (v3): a mark record makes an `applied` answer due once it is
 * applied (so every record before it is too); drivers collect it with
 * `takeApplied()` the same way.
 */
import type { Logger } from 'pino';
import { isSynthContent, PAGE_SIZE, type Guest, type GuestFactory, type ContentRepresentation, type PageContent } from '../guest.ts';
import { bytesDigest, KeyTable, type ContentKeyer } from './content-key.ts';
import { PageCache } from './page-cache.ts';
import { ZERO_SYNTH, isZeroContent, synthDiffChunks } from './content-model.ts';
import { applyByteDelta } from './delta.ts';
import type { AckRecord, AppliedRecord, DiskAckRecord, HelloRecord, MigrationRecord, PageRecord } from './stream-records.ts';
import type { ChunkRecord } from './stream-image-records.ts';
import { CacheDesyncError, MigrationAbortedError, MigrationProtocolError, MigrationVerifyError } from '../errors.ts';
import { VnetError } from '../../common/errors.ts';

export interface ReceiverInit {
  readonly factory: GuestFactory;
  readonly keyer: ContentKeyer;
  /** Representation of the destination guest: 'bytes' for real streams; the emulated link may carry 'synthetic'. */
  readonly representation: ContentRepresentation;
  /** Records held waiting for an earlier sequence number (default 1,000,000). */
  readonly maxReorder?: number;
  readonly cacheCapacity?: number;
  /**
   * Largest memory (pages) and disk (blocks) a hello may announce (default
   * MAX_RECEIVE_PAGES): the destination allocates what the hello says, so a
   * bad stream must not make it allocate without bound.
   */
  readonly maxPages?: number;
  readonly logger?: Logger;
}

/** 4 GiB of 4 KiB pages: the largest guest memory, and disk, a receiver accepts by default. */
export const MAX_RECEIVE_PAGES = 1 << 20;

export type ReceiverState = 'waiting' | 'receiving' | 'done' | 'failed';

export class MigrationReceiver {
  readonly #init: ReceiverInit;
  readonly #maxReorder: number;
  readonly #maxPages: number;
  #state: ReceiverState = 'waiting';
  #hello: HelloRecord | undefined;
  #guest: Guest | undefined;
  #mem: PageCache | undefined;
  #disk: PageCache | undefined;
  /** The keys of the image's pages and blocks as applied (its digests at `done`, without a pass while paused). */
  #memKeys: KeyTable | undefined;
  #diskKeys: KeyTable | undefined;
  #expect = 1;
  readonly #held = new Map<number, MigrationRecord>();
  #error: VnetError | undefined;
  #pausedAt: number | undefined;
  #doneAt: number | undefined;
  #iteration = 0;
  readonly #key = new Uint32Array(2);
  #zeroBytes: Uint8Array | undefined;
  #syncDisk = false;
  #diskAckDue = 0;
  #appliedDue = 0;
  recordsApplied = 0;
  /** Disk blocks filled from the destination's own chunk store (chunk records). */
  chunkBlocks = 0;
  /** Disk-acks handed out by `takeDiskAck`. */
  diskAcks = 0;

  constructor(init: ReceiverInit) {
    this.#init = init;
    this.#maxReorder = init.maxReorder ?? 1_000_000;
    this.#maxPages = init.maxPages ?? MAX_RECEIVE_PAGES;
  }

  get state(): ReceiverState { return this.#state; }
  get guest(): Guest | undefined { return this.#guest; }
  get error(): VnetError | undefined { return this.#error; }
  get hello(): HelloRecord | undefined { return this.#hello; }
  /** When the receiver saw the sender's pause record (its own clock). */
  get pausedAt(): number | undefined { return this.#pausedAt; }
  /** When the image was verified and the guest resumed (or kept). */
  get doneAt(): number | undefined { return this.#doneAt; }
  get iteration(): number { return this.#iteration; }

  /**
   * The disk-ack to send now, if synchronously replicated disk records were
   * applied since the last call (one cumulative ack covers them all).
   */
  takeDiskAck(): DiskAckRecord | undefined {
    if (this.#diskAckDue === 0 || this.#state !== 'receiving') return undefined;
    const seq = this.#diskAckDue;
    this.#diskAckDue = 0;
    this.diskAcks++;
    return { t: 'disk-ack', seq };
  }

  /**
   * The answer to the sender's latest mark, once every record up to it is
   * applied (the sender's catch-up before it pauses; v3).
   */
  takeApplied(): AppliedRecord | undefined {
    if (this.#appliedDue === 0 || this.#state !== 'receiving') return undefined;
    const seq = this.#appliedDue;
    this.#appliedDue = 0;
    return { t: 'applied', seq };
  }

  /** Take one record. Returns the ack to send back when the migration ends here (done, or refused). */
  accept(rec: MigrationRecord, now: number): AckRecord | undefined {
    if (this.#state === 'done' || this.#state === 'failed') return undefined;
    try {
      if (rec.t === 'hello') return this.#onHello(rec);
      if (rec.t === 'ack' || rec.t === 'disk-ack' || rec.t === 'chunk-held' || rec.t === 'applied') return this.#fail(new MigrationProtocolError(`${rec.t} record sent to a receiver`));
      // The driver answers a chunk-query (it reads the local chunk store); one that reaches here has no store behind it.
      if (rec.t === 'chunk-query') return this.#fail(new MigrationProtocolError('chunk-query to a receiver without an image chunk store'));
      // What the disk is made from: the driver keeps it for the VM's runtime; nothing to apply.
      if (rec.t === 'disk-image') return undefined;
      // An abort takes effect at once, whatever its sequence number.
      if (rec.t === 'abort') return this.#fail(new MigrationAbortedError('peer', `sender aborted: ${rec.reason}`));
      if (this.#held.size >= this.#maxReorder) return this.#fail(new MigrationProtocolError(`more than ${this.#maxReorder} records out of order`));
      if (rec.seq < this.#expect || this.#held.has(rec.seq)) return this.#fail(new MigrationProtocolError(`duplicate sequence number ${rec.seq}`));
      if (this.#hello !== undefined && rec.seq === this.#expect && this.#held.size === 0) {
        // In order (the common case): apply without the reorder buffer.
        this.#expect++;
        return this.#apply(rec, now);
      }
      this.#held.set(rec.seq, rec);
      if (this.#hello === undefined) return undefined;
      return this.#drain(now);
    } catch (err) {
      return this.#fail(err instanceof VnetError ? err : new MigrationProtocolError(`receiver failed: ${String(err)}`));
    }
  }

  /** The stream broke (link cut, decode error, peer gone): discard the image. */
  fail(error: VnetError): void {
    this.#fail(error);
  }

  #fail(error: VnetError): AckRecord {
    if (this.#state !== 'failed' && this.#state !== 'done') {
      this.#state = 'failed';
      this.#error = error;
      this.#held.clear();
      this.#init.logger?.debug({ code: error.code, err: error.message }, 'migration receive failed');
    }
    return { t: 'ack', ok: false, code: error.code };
  }

  #onHello(h: HelloRecord): AckRecord | undefined {
    if (this.#hello !== undefined) return this.#fail(new MigrationProtocolError('second hello'));
    if (h.pageCount > this.#maxPages || h.blockCount > this.#maxPages) {
      return this.#fail(new MigrationProtocolError(`hello announces ${h.pageCount} pages and ${h.blockCount} disk blocks: above this receiver's limit of ${this.#maxPages} each`));
    }
    const rep = this.#init.representation;
    const guest = this.#init.factory({ name: h.name, pageCount: h.pageCount, blockCount: h.blockCount, representation: rep });
    if (guest.memory.pageCount !== h.pageCount || guest.memory.representation !== rep) {
      return this.#fail(new MigrationProtocolError('destination guest does not match the announced geometry'));
    }
    if (h.blockCount > 0 && (guest.disk === undefined || guest.disk.blockCount !== h.blockCount)) {
      return this.#fail(new MigrationProtocolError('destination guest has no disk of the announced size'));
    }
    this.#hello = h;
    this.#guest = guest;
    const keyer = this.#init.keyer;
    this.#memKeys = KeyTable.of(h.pageCount, (i) => guest.memory.readPage(i), keyer);
    this.#diskKeys = KeyTable.of(h.blockCount, (i) => guest.disk!.readBlock(i), keyer);
    const cap = this.#init.cacheCapacity ?? h.pageCount;
    if (h.optimized) {
      this.#mem = new PageCache(h.pageCount, cap);
      if (h.blockCount > 0) this.#disk = new PageCache(h.blockCount, Math.min(cap, h.blockCount));
    }
    this.#state = 'receiving';
    return undefined;
  }

  #drain(now: number): AckRecord | undefined {
    for (;;) {
      const rec = this.#held.get(this.#expect);
      if (rec === undefined) return undefined;
      this.#held.delete(this.#expect);
      this.#expect++;
      const ack = this.#apply(rec, now);
      if (ack !== undefined) return ack;
    }
  }

  #apply(rec: MigrationRecord, now: number): AckRecord | undefined {
    const guest = this.#guest;
    if (guest === undefined) return this.#fail(new MigrationProtocolError('record before hello'));
    this.recordsApplied++;
    switch (rec.t) {
      case 'full': case 'zero': case 'ref': case 'delta': {
        const err = this.#applyPage(guest, rec);
        if (err !== undefined) return this.#fail(err);
        if (this.#syncDisk && rec.space === 'disk') this.#diskAckDue = rec.seq;
        return undefined;
      }
      case 'chunk': {
        const err = this.#applyChunk(guest, rec);
        if (err !== undefined) return this.#fail(err);
        if (this.#syncDisk) this.#diskAckDue = rec.seq;
        return undefined;
      }
      case 'sync':
        if (this.#hello?.blockCount === 0) return this.#fail(new MigrationProtocolError('sync record in a stream without a disk'));
        this.#syncDisk = true;
        return undefined;
      case 'iter': this.#iteration = rec.iteration; return undefined;
      case 'mark': this.#appliedDue = rec.seq; return undefined;
      case 'pause': this.#pausedAt = now; return undefined;
      case 'device': guest.writeDeviceState(rec.state); return undefined;
      case 'abort': return this.#fail(new MigrationAbortedError('peer', `sender aborted: ${rec.reason}`));
      case 'done': return this.#finish(guest, rec.memDigest, rec.diskDigest, rec.deviceDigest, now);
      default: return this.#fail(new MigrationProtocolError(`unexpected ${rec.t} record`));
    }
  }

  #finish(guest: Guest, mem: string, disk: string, device: string, now: number): AckRecord {
    const gotMem = this.#memKeys!.digest();
    if (gotMem !== mem) return this.#fail(new MigrationVerifyError('memory', mem, gotMem));
    const gotDisk = this.#diskKeys!.digest();
    if (gotDisk !== disk) return this.#fail(new MigrationVerifyError('disk', disk, gotDisk));
    const gotDevice = bytesDigest(guest.readDeviceState());
    if (gotDevice !== device) return this.#fail(new MigrationVerifyError('device', device, gotDevice));
    this.#state = 'done';
    this.#doneAt = now;
    if (this.#hello?.keep !== true) guest.resume(now);
    return { t: 'ack', ok: true, code: '' };
  }

  #zero(): PageContent {
    if (this.#init.representation === 'synthetic') return ZERO_SYNTH;
    this.#zeroBytes ??= new Uint8Array(PAGE_SIZE);
    return this.#zeroBytes;
  }

  #read(guest: Guest, disk: boolean, i: number): PageContent {
    return disk ? (guest.disk?.readBlock(i) ?? this.#zero()) : guest.memory.readPage(i);
  }

  /**
   * A span filled from the destination's own chunk store (the driver read and
   * verified the chunk, `rec.blocks`). The content cache is not touched: the
   * sender's encoder never saw these blocks either, so both stay in lock-step.
   */
  #applyChunk(guest: Guest, rec: ChunkRecord): VnetError | undefined {
    if (this.#hello?.images !== true) return new MigrationProtocolError('chunk record in a stream that did not announce images');
    const disk = guest.disk;
    if (disk === undefined || rec.first + rec.count > disk.blockCount) return new MigrationProtocolError(`chunk record for blocks ${rec.first}..${rec.first + rec.count - 1}, outside the disk`);
    const blocks = rec.blocks;
    if (blocks === undefined || blocks.length !== rec.count) return new MigrationProtocolError(`chunk ${rec.digest}: its blocks were not read from a local chunk store`);
    const k = this.#key;
    for (let i = 0; i < rec.count; i++) {
      const content = blocks[i]!;
      if (isSynthContent(content) !== (this.#init.representation === 'synthetic')) return new MigrationProtocolError('chunk blocks in the wrong representation');
      disk.writeBlock(rec.first + i, content);
      this.#init.keyer.key(content, k);
      this.#diskKeys!.set(rec.first + i, k[0] ?? 0, k[1] ?? 0);
    }
    this.chunkBlocks += rec.count;
    return undefined;
  }

  #applyPage(guest: Guest, rec: PageRecord): VnetError | undefined {
    const disk = rec.space === 'disk';
    const count = disk ? (guest.disk?.blockCount ?? 0) : guest.memory.pageCount;
    if (rec.index >= count) return new MigrationProtocolError(`${rec.space} index ${rec.index} out of range`);
    const synth = this.#init.representation === 'synthetic';
    const cache = disk ? this.#disk : this.#mem;
    let content: PageContent;
    if (rec.t === 'full') {
      if (isSynthContent(rec.content) !== synth) return new MigrationProtocolError('full page in the wrong representation');
      content = rec.content;
    } else if (cache === undefined) {
      return new MigrationProtocolError(`${rec.t} record in a stream of full pages`);
    } else if (rec.t === 'zero') {
      content = this.#zero();
    } else if (rec.t === 'ref') {
      const holder = cache.holder(rec.hi, rec.lo);
      if (holder < 0) return new CacheDesyncError(rec.index, 'reference to content the destination does not hold');
      const c = this.#read(guest, disk, holder);
      content = isSynthContent(c) ? c : c.slice();
    } else {
      if (!cache.known(rec.index)) return new CacheDesyncError(rec.index, 'delta against a page the destination never received');
      const cur = this.#read(guest, disk, rec.index);
      if (isSynthContent(cur)) {
        if (rec.next === undefined) return new MigrationProtocolError('synthetic delta without its result');
        const map = synthDiffChunks(cur, rec.next);
        if (map === undefined || map[0] !== rec.map[0] || map[1] !== rec.map[1] || map[2] !== rec.map[2] || map[3] !== rec.map[3]) {
          return new CacheDesyncError(rec.index, 'delta does not apply to the destination copy');
        }
        content = rec.next;
      } else {
        if (rec.xor === undefined) return new MigrationProtocolError('byte delta without its bytes');
        const copy = cur.slice();
        if (!applyByteDelta(copy, rec.map, rec.xor)) return new MigrationProtocolError('delta length does not match its chunk map');
        content = copy;
      }
    }
    if (disk) guest.disk?.writeBlock(rec.index, content);
    else guest.memory.writePage(rec.index, content);
    const k = this.#key;
    this.#init.keyer.key(content, k);
    (disk ? this.#diskKeys : this.#memKeys)!.set(rec.index, k[0] ?? 0, k[1] ?? 0);
    if (cache === undefined) return undefined;
    if (rec.t === 'ref' && (k[0] !== rec.hi >>> 0 || k[1] !== rec.lo >>> 0)) return new CacheDesyncError(rec.index, 'referenced page no longer holds that content');
    cache.record(rec.index, k[0] ?? 0, k[1] ?? 0, !isZeroContent(content));
    return undefined;
  }
}
