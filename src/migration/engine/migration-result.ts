/**
 * What a finished (or aborted) migration reports, the same for virtual-time
 * and real-time runs.
 */
import type { Guest } from '../guest.ts';
import type { DiskSyncStats } from './disk-sync.ts';
import type { VnetError } from '../../common/errors.ts';

export interface MigrationResult {
  readonly ok: boolean;
  readonly error: VnetError | undefined;
  readonly rule: string;
  /** Start to destination resumed (or aborted). */
  readonly totalMs: number;
  /** Memory phase start to destination resumed (CloudNet's "memory migration time"). */
  readonly memoryMs: number;
  /** Source paused to destination resumed. */
  readonly downtimeMs: number;
  readonly iterations: number;
  readonly bytes: { readonly memory: number; readonly disk: number; readonly control: number; readonly total: number };
  readonly sender: SenderStats;
  /** For time-bound runs: whether total memory time stayed within the bound. */
  readonly deadlineMet: boolean | undefined;
  /** Source and destination digests agreed at the end. */
  readonly verified: boolean;
  readonly destination: Guest | undefined;
}

/** What the sender counted: bytes and records by kind, phases' times, the stop reason, the digests at pause. */
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
  /** Disk blocks the destination filled from its own image chunk store (chunk records), and the chunk records sent. */
  readonly diskImage?: { readonly chunks: number; readonly blocks: number };
  readonly startedAt: number;
  readonly memoryStartedAt: number | undefined;
  readonly pausedAt: number | undefined;
  readonly minThrottle: number;
  readonly stopReason: string;
  readonly memDigest: string | undefined;
  readonly diskDigest: string | undefined;
}
