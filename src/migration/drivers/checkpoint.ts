/**
 * Live checkpoints (TLM): the migration engine pointed at a destination that
 * keeps the image instead of resuming it. The source keeps running once the
 * image is verified; the store holds a paused guest. Restoring is one more
 * migration, from the stored image (paused: one pass, no iterations) to a
 * fresh guest that resumes.
 *
 *   checkpointVirtual   time-bound checkpoint over an emulated link
 *   restoreVirtual      image -> new running guest, over an emulated link
 * Over sockets: `sendMigration({ ..., keep: true })` to a `receiveMigration`
 * store, then `sendMigration` from the stored guest to restore.
 */
import type { Guest, GuestFactory } from '../guest.ts';
import type { EmulatedLinkParams } from './emulated-link.ts';
import { runVirtualMigration } from './virtual-time.ts';
import { TimeBound } from '../stop-rules/time-bound.ts';
import { XenStop } from '../stop-rules/xen-stop.ts';
import type { MigrationResult } from '../engine/migration-result.ts';
import type { ProgressEvent } from '../engine/progress.ts';

export interface CheckpointResult {
  readonly result: MigrationResult;
  /** The stored image (paused), when the checkpoint succeeded. */
  readonly image: Guest | undefined;
}

export interface CheckpointOptions {
  readonly link: EmulatedLinkParams;
  /** Finish the checkpoint within this many ms (the time bound). */
  readonly deadlineMs: number;
  readonly downtimeTargetMs?: number;
  readonly factory?: GuestFactory;
  readonly onProgress?: (e: ProgressEvent) => void;
}

export async function checkpointVirtual(guest: Guest, opts: CheckpointOptions): Promise<CheckpointResult> {
  const rule = new TimeBound({ deadlineMs: opts.deadlineMs, ...(opts.downtimeTargetMs !== undefined ? { downtimeTargetMs: opts.downtimeTargetMs } : {}) });
  const result = await runVirtualMigration({ guest, rule, keep: true, ...(opts.factory !== undefined ? { factory: opts.factory } : {}), ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}) }, { link: opts.link });
  return { result, image: result.ok ? result.destination : undefined };
}

export interface RestoreResult {
  readonly result: MigrationResult;
  readonly guest: Guest | undefined;
}

/** Copy a stored (paused) image into a fresh guest, which resumes when verified. */
export async function restoreVirtual(image: Guest, opts: { link: EmulatedLinkParams; factory?: GuestFactory }): Promise<RestoreResult> {
  const result = await runVirtualMigration({ guest: image, rule: new XenStop({ encoding: 'optimized' }), ...(opts.factory !== undefined ? { factory: opts.factory } : {}) }, { link: opts.link });
  return { result, guest: result.ok ? result.destination : undefined };
}
