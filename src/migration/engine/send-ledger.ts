/**
 * The sender's ledger: every record leaves through `emit`, which gives it
 * its channel and counts its bytes by class (memory, disk, control). The
 * next sequence number lives here too, so that the memory and disk stages
 * number their records from one counter. The rates the stop rules and the
 * progress events read (bytes per page, bandwidth, dirty rate) are the
 * memory phase's latest measurements.
 */
import type { MigrationRecord } from './stream-records.ts';
import { FULL_RECORD_SIZE, recordSize } from './stream-record-codec.ts';

export interface OutRecord {
  readonly rec: MigrationRecord;
  /** 0: control, disk, pre-copy memory and TLM's mtx; 1: TLM's dtx. */
  readonly ch: 0 | 1;
  readonly size: number;
}

export type RecordClass = 'memory' | 'disk' | 'control';

export class SendLedger {
  /** The sequence number the next record takes. */
  seq = 1;
  memoryBytes = 0;
  diskBytes = 0;
  controlBytes = 0;
  /** Memory pages sent (any record kind). */
  memoryPages = 0;
  /** During the live memory phase: memory bytes and pages, and replicated disk bytes. */
  liveBytes = 0;
  livePages = 0;
  liveDiskBytes = 0;
  /** Latest measurements: record bytes per page, bytes per ms, pages dirtied per second. */
  bytesPerPage = FULL_RECORD_SIZE;
  bandwidth = 0;
  dirtiedPerSec = 0;

  get totalBytes(): number {
    return this.memoryBytes + this.diskBytes + this.controlBytes;
  }

  /** Queue `rec` on channel `ch`; returns its size in bytes. */
  emit(out: OutRecord[], rec: MigrationRecord, ch: 0 | 1, what: RecordClass): number {
    const size = recordSize(rec);
    out.push({ rec, ch, size });
    if (what === 'memory') this.memoryBytes += size;
    else if (what === 'disk') this.diskBytes += size;
    else this.controlBytes += size;
    return size;
  }
}
