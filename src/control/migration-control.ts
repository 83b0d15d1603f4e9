import { z } from 'zod';
import { formatMac, isMacString, parseMac } from '../common/mac.ts';
import { hostIdSchema } from './rule-spec.ts';

/**
 * Live migration between two daemons, as the controller's coordinator drives
 * it over the control channel (docs/control-protocol.md, "Migration"). The
 * migration's bytes never pass through the controller: they go daemon to
 * daemon over a mutual-TLS channel of their own (the deployment's host
 * certificates), which the destination opens for one migration id and one
 * source host.
 *
 *   controller                      destination                 source
 *   migrate-prepare ──────────────▶ held port, channel open
 *                  ◀────────────── migration {prepared, address}
 *   migrate-start ─────────────────────────────────────────────▶ engine runs
 *                  ◀─────────────────────────────────────────── migration {progress…}
 *                  ◀─────────────────────────────────────────── migration {paused}     (guest stopped, frames held)
 *                  ◀────────────── migration {ready}            (verified copy, NOT running)
 *   [commit point recorded durably; new rules pushed to every daemon; acks awaited]
 *   migrate-commit ───────────────▶ port released, resume, announce
 *   migrate-commit ────────────────────────────────────────────▶ held frames flushed to the destination, port removed
 *                  ◀────────────── migration {resumed, stats}
 *                  ◀─────────────────────────────────────────── migration {released, stats}
 *
 * Exactly one copy runs: the destination resumes only on `migrate-commit`; the
 * source, once it has paused the guest, resumes only on `migrate-abort` —
 * never on its own, not even when the engine fails after the pause (it then
 * reports `stalled` and waits for the verdict). Before the pause a failure
 * leaves the guest running on the source (`failed`). `migrate-query` asks a
 * daemon where a migration stands (after a lost report or a controller
 * restart); a daemon that does not know the id answers `unknown`.
 */

const migrationId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'a migration id is 1-64 letters, digits, "_" or "-"');
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const macString = z.string().max(17).refine(isMacString, 'not a MAC address').transform((s) => formatMac(parseMac(s)));
const address = z.strictObject({ host: z.string().min(1).max(255), port: z.number().int().min(1).max(65535) });

export const STOP_RULES = ['smart-stop', 'xen', 'qemu', 'time-bound'] as const;
export type StopRuleName = (typeof STOP_RULES)[number];

/** The VM being moved, as both daemons name it. */
const migrationVm = z.strictObject({
  mac: macString,
  /** The VM's port (TAP device or memory port) on the source; the destination creates one of the same name. */
  port: z.string().min(1).max(64),
  ip: z.string().max(64).optional(),
  name: z.string().max(64).optional(),
  /** `stream` for a QEMU VM (its port QEMU's `-netdev stream`): QEMU's own migration moves it, and the destination starts the same machine on a stream port. Absent for the others. */
  portKind: z.enum(['stream', 'packet']).optional(),
});

export const migratePrepareSchema = z.strictObject({
  type: z.literal('migrate-prepare'),
  id: migrationId,
  vm: migrationVm,
  /** The source host: the only certificate the destination's migration channel accepts for this id. */
  from: hostIdSchema,
});

export const migrateStartSchema = z.strictObject({
  type: z.literal('migrate-start'),
  id: migrationId,
  vm: migrationVm,
  to: hostIdSchema,
  /** The destination's migration channel (from its `prepared` report). */
  address,
  rule: z.enum(STOP_RULES),
  /** For time-bound: the bound on the memory phase. */
  deadlineMs: z.number().int().min(1).max(86_400_000).optional(),
});

export const migrateVerdictSchema = z.strictObject({
  type: z.enum(['migrate-commit', 'migrate-abort', 'migrate-query']),
  id: migrationId,
  reason: z.string().max(1024).optional(),
});

/** Controller → daemon messages of a migration (added to the control protocol's union). */
export const migrationControllerMessages = [migratePrepareSchema, migrateStartSchema, migrateVerdictSchema] as const;

export const MIGRATION_REPORT_STATES = [
  'prepared', 'progress', 'paused', 'ready', 'resumed', 'released', 'failed', 'stalled', 'aborted', 'unknown',
] as const;
export type MigrationReportState = (typeof MIGRATION_REPORT_STATES)[number];

const progress = z.strictObject({
  /** The engine's phase: starting, disk, memory, paused, verifying, done, aborted. */
  phase: z.string().max(32),
  iteration: count,
  bytesSent: count,
  pagesLeft: count,
  ramPages: count,
  /** Pages dirtied per second, last measured. */
  dirtyRate: z.number().min(0).max(1e12),
  etaMs: z.number().min(0).max(1e12).nullable(),
  elapsedMs: count,
});

/** What happened to the VM's frames around the cutover, on one side. */
const cutoverStats = z.strictObject({
  /** Frames queued for the VM while it could not take them (source: paused; destination: not yet resumed). */
  held: count,
  /** Of those, delivered afterwards (source: flushed to the destination; destination: to the resumed VM). */
  flushed: count,
  /** Frames relayed to the destination after the flush (source only). */
  relayed: count,
  /** Frames lost: the hold queue was full, or there was nowhere to send them. */
  lost: count,
  /** Announcements sent for the VM (gratuitous ARP, RARP; destination only). */
  announced: count,
});

const wallMs = z.number().int().min(0).max(8.64e15);

/**
 * When the daemon reached the cutover's steps (its wall clock, ms since the
 * epoch), for the migration's spans (docs/control-protocol.md, "Cutover
 * spans"): the source's `paused` and `released` carry `pausedAt` and (once
 * the engine handed its last record to the channel) `finalSentAt`; the
 * destination's `ready` carries `appliedAt` (the copy received, applied and
 * verified), its `resumed` `appliedAt` and `resumedAt`.
 */
const cutoverTiming = z.strictObject({
  pausedAt: wallMs.optional(),
  finalSentAt: wallMs.optional(),
  appliedAt: wallMs.optional(),
  resumedAt: wallMs.optional(),
});

export const migrationReportSchema = z.strictObject({
  type: z.literal('migration'),
  id: migrationId,
  state: z.enum(MIGRATION_REPORT_STATES),
  /** `prepared`: where the destination's migration channel listens. */
  address: address.optional(),
  progress: progress.optional(),
  stats: cutoverStats.optional(),
  timing: cutoverTiming.optional(),
  /** `failed` / `stalled` / `aborted`: why. */
  error: z.strictObject({ code: z.string().max(128), message: z.string().max(4096) }).optional(),
});

export type MigratePrepare = z.output<typeof migratePrepareSchema>;
export type MigrateStart = z.output<typeof migrateStartSchema>;
export type MigrateVerdict = z.output<typeof migrateVerdictSchema>;
export type MigrationCommand = MigratePrepare | MigrateStart | MigrateVerdict;
export type MigrationReport = z.output<typeof migrationReportSchema>;
export type MigrationProgress = z.output<typeof progress>;
export type CutoverStats = z.output<typeof cutoverStats>;
export type CutoverTiming = z.output<typeof cutoverTiming>;

/**
 * The daemon's side of migrations, as the controller agent drives it: the
 * host's migration agent (`src/host/`) implements it; the agent forwards the
 * controller's commands and sends back every report. Implementations never
 * throw: a command they cannot carry out becomes a `failed` report.
 */
export interface MigrationControl {
  handle(command: MigrationCommand): void;
  /** Reports to send to the controller, in order. Returns the unsubscribe function. */
  onReport(handler: (report: MigrationReport) => void): () => void;
}
