/**
 * What the sender reports of its run: the moments and outcomes it records
 * as it goes (`SenderRun`), its statistics at any time (`senderStats`, the
 * result's `sender`), and the progress events a user follows
 * (`senderProgress`, progress.ts).
 */
import type { Guest } from '../guest.ts';
import type { StopRule } from '../stop-rules/stop-rule.ts';
import type { ContentEncoder } from './content-encoder.ts';
import type { SenderStats } from './migration-result.ts';
import type { MigrationPhase, ProgressEvent } from './progress.ts';
import type { SendLedger } from './send-ledger.ts';
import type { SenderDisk } from './sender-disk.ts';
import type { MemoryPhase } from './sender-memory.ts';

/** The sender's record of its run, filled in as it goes. */
export interface SenderRun {
  readonly startedAt: number;
  memoryStartedAt: number | undefined;
  pausedAt: number | undefined;
  /** The lowest CPU share the guest was throttled to. */
  minThrottle: number;
  stopReason: string;
  memDigest: string | undefined;
  diskDigest: string | undefined;
}

/** The sender's parts the reports read. */
export interface SenderParts {
  readonly guest: Guest;
  readonly rule: StopRule;
  readonly ledger: SendLedger;
  readonly mem: ContentEncoder;
  readonly disk: SenderDisk | undefined;
  /** The stream carries chunk records (version 3). */
  readonly imageStream: boolean;
  readonly memory: MemoryPhase | undefined;
}

export function newSenderRun(startedAt: number): SenderRun {
  return { startedAt, memoryStartedAt: undefined, pausedAt: undefined, minThrottle: 1, stopReason: '', memDigest: undefined, diskDigest: undefined };
}

export function senderStats(run: SenderRun, parts: SenderParts): SenderStats {
  const l = parts.ledger;
  const disk = parts.disk;
  return {
    rule: parts.rule.name,
    iterations: parts.memory?.iterations ?? 1,
    memoryBytes: l.memoryBytes,
    diskBytes: l.diskBytes,
    controlBytes: l.controlBytes,
    totalBytes: l.totalBytes,
    memoryPagesSent: l.memoryPages,
    records: { ...parts.mem.counts },
    diskRecords: disk !== undefined ? { ...disk.encoder.counts } : { full: 0, zero: 0, ref: 0, delta: 0, skip: 0 },
    redirtiedSkips: parts.memory?.redirtiedSkips ?? 0,
    syncDiskWrites: disk?.sync.stats().writes ?? 0,
    diskSync: disk?.sync.stats(),
    ...(disk !== undefined && parts.imageStream ? { diskImage: { ...disk.imageStats } } : {}),
    startedAt: run.startedAt,
    memoryStartedAt: run.memoryStartedAt,
    pausedAt: run.pausedAt,
    minThrottle: run.minThrottle,
    stopReason: run.stopReason,
    memDigest: run.memDigest,
    diskDigest: run.diskDigest,
  };
}

/** The progress event at `now`, in `phase`, with `pagesLeft` still owed to the destination. */
export function senderProgress(run: SenderRun, parts: SenderParts, phase: MigrationPhase, pagesLeft: number, now: number): ProgressEvent {
  const g = parts.guest;
  const l = parts.ledger;
  const rule = parts.rule;
  const elapsed = Math.max(1e-9, now - (run.memoryStartedAt ?? run.startedAt));
  const bw = l.bandwidth > 0 ? l.bandwidth : (l.memoryBytes + l.diskBytes) / elapsed;
  const dirtyRate = l.dirtiedPerSec > 0 && l.bandwidth > 0 ? l.dirtiedPerSec : 0;
  return {
    phase,
    iteration: parts.memory?.iteration ?? 0,
    rule: rule.name,
    elapsedMs: now - run.startedAt,
    bytesSent: l.totalBytes,
    pagesSent: l.memoryPages,
    pagesLeft,
    ramPages: g.memory.pageCount,
    dirtyRate,
    throttle: g.throttle,
    etaMs: bw > 0 ? (pagesLeft * l.bytesPerPage) / bw : Number.POSITIVE_INFINITY,
    deadlineMs: rule.kind === 'time-bound' ? rule.deadlineMs : undefined,
  };
}
