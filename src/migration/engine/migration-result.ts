/**
 * What a finished (or aborted) migration reports, the same for virtual-time
 * and real-time runs.
 */
import type { Guest } from '../guest.ts';
import type { SenderStats } from './sender.ts';
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
