/**
 * The migration stream's records (docs/migration-protocol.md): their kinds
 * on the wire, the stream's versions and limits, and one type per record.
 * How a record becomes bytes and back is stream-record-codec.ts; the framing
 * and the incremental decoder, stream-codec.ts.
 *
 *   record  := length u32be (of kind..end) | kind u8 | body
 *   kind    low 7 bits the record type, high bit set = a disk block (else a memory page)
 */
import type { PageContent, SynthContent } from '../guest.ts';
import type { ChunkHeldRecord, ChunkQueryRecord, ChunkRecord, DiskImageRecord } from './stream-image-records.ts';

export const STREAM_MAGIC = 0x564e4d47; // 'VNMG'
export const STREAM_VERSION = 4;
/** The version a stream without image chunk records or catch-up marks announces. */
export const PLAIN_STREAM_VERSION = 2;
/** The version a stream with image chunk records and no catch-up marks announces. */
export const IMAGE_STREAM_VERSION = 3;
/** Oldest version a receiver accepts (version 1 lacks only the sync and disk-ack records). */
export const MIN_STREAM_VERSION = 1;
export const MAX_DEVICE_STATE = 1 << 20;
export const MAX_RECORD = MAX_DEVICE_STATE + 64;
export const enum Kind {
  Hello = 0x01,
  Iteration = 0x02,
  Full = 0x10,
  Zero = 0x11,
  Ref = 0x12,
  Delta = 0x13,
  Device = 0x20,
  Pause = 0x21,
  Done = 0x22,
  Abort = 0x23,
  Sync = 0x24,
  Mark = 0x28,
  Ack = 0x30,
  DiskAck = 0x31,
  Applied = 0x33,
}
export type Space = 'mem' | 'disk';

export interface HelloRecord {
  readonly t: 'hello';
  readonly name: string;
  readonly pageCount: number;
  readonly blockCount: number;
  readonly rule: string;
  /** The destination keeps the image paused (checkpoint) instead of resuming. */
  readonly keep: boolean;
  /** The stream may carry zero, ref and delta records (else full pages only): the receiver keeps its cache. */
  readonly optimized: boolean;
  /** (v3) The stream may carry chunk records: disk spans the destination fills from its own image chunk store. */
  readonly images?: boolean;
  /** (v4) The sender sends catch-up marks: answer each with `applied`. */
  readonly catchUp?: boolean;
}
export interface IterationRecord { readonly t: 'iter'; readonly seq: number; readonly iteration: number; readonly phase: number }
export interface FullRecord { readonly t: 'full'; readonly seq: number; readonly space: Space; readonly index: number; readonly content: PageContent }
export interface ZeroRecord { readonly t: 'zero'; readonly seq: number; readonly space: Space; readonly index: number }
export interface RefRecord { readonly t: 'ref'; readonly seq: number; readonly space: Space; readonly index: number; readonly hi: number; readonly lo: number }
/**
 * A delta: `map` names the changed chunks; bytes streams carry `xor`, the
 * emulated synthetic stream carries `next` (the resulting descriptor) instead.
 */
export interface DeltaRecord {
  readonly t: 'delta';
  readonly seq: number;
  readonly space: Space;
  readonly index: number;
  readonly map: Uint32Array;
  readonly xor: Uint8Array | undefined;
  readonly next: SynthContent | undefined;
}
export interface DeviceRecord { readonly t: 'device'; readonly seq: number; readonly state: Uint8Array }
export interface PauseRecord { readonly t: 'pause'; readonly seq: number }
export interface DoneRecord { readonly t: 'done'; readonly seq: number; readonly memDigest: string; readonly diskDigest: string; readonly deviceDigest: string }
export interface AbortRecord { readonly t: 'abort'; readonly seq: number; readonly reason: string }
/** Receiver to sender: the image is verified (ok) or refused, with the error code. */
export interface AckRecord { readonly t: 'ack'; readonly ok: boolean; readonly code: string }
/** Sender to receiver (v2): from here on the disk is replicated synchronously; acknowledge every disk record applied. */
export interface SyncRecord { readonly t: 'sync'; readonly seq: number }
/** Receiver to sender (v2): every disk record with sequence number up to `seq` is applied (cumulative). */
export interface DiskAckRecord { readonly t: 'disk-ack'; readonly seq: number }
/** Sender to receiver (v4): answer with `applied` once every record up to this one is applied (the sender's catch-up before it pauses). */
export interface MarkRecord { readonly t: 'mark'; readonly seq: number }
/** Receiver to sender (v4): every record with sequence number up to `seq` (a mark's) is applied. */
export interface AppliedRecord { readonly t: 'applied'; readonly seq: number }

export type PageRecord = FullRecord | ZeroRecord | RefRecord | DeltaRecord;
export type MigrationRecord = HelloRecord | IterationRecord | PageRecord | DeviceRecord | PauseRecord | DoneRecord | AbortRecord | SyncRecord | MarkRecord | AckRecord | DiskAckRecord | AppliedRecord
  | ChunkRecord | ChunkQueryRecord | ChunkHeldRecord | DiskImageRecord;
