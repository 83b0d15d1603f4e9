/**
 * Progress of a migration as events a user can follow (TLM: "users should be
 * able to keep track of the progress"), and a pure one-line formatter that
 * `vnet ctl` shows as a progress bar.
 */

export type MigrationPhase = 'starting' | 'disk' | 'memory' | 'paused' | 'verifying' | 'done' | 'aborted';

export interface ProgressEvent {
  readonly phase: MigrationPhase;
  /** Pre-copy iteration (0 = first full pass); 0 for time-bound. */
  readonly iteration: number;
  readonly rule: string;
  readonly elapsedMs: number;
  readonly bytesSent: number;
  readonly pagesSent: number;
  /** Pages still owed to the destination if the guest paused now (estimate). */
  readonly pagesLeft: number;
  readonly ramPages: number;
  /** Pages dirtied per second, last measured. */
  readonly dirtyRate: number;
  readonly throttle: number;
  /** Estimated milliseconds to finish at the measured bandwidth. */
  readonly etaMs: number;
  /** The time bound, for time-bound migrations. */
  readonly deadlineMs: number | undefined;
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function secs(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  return ms >= 10_000 ? `${Math.round(ms / 1000)}s` : `${(ms / 1000).toFixed(1)}s`;
}

/**
 * One line, exactly `width` characters (padded or cut):
 *   memory it 3 [#########.........] 52% 1.2 GiB 12.0s eta 8.1s 4120 pg/s cpu 25%
 * The bar's share is RAM pages already at the destination (1 - left/RAM);
 * at 'done' it is full.
 */
export function formatProgressBar(e: ProgressEvent, width: number): string {
  const w = Math.max(0, Math.floor(width));
  const done = e.phase === 'done' ? 1 : e.ramPages > 0 ? Math.min(1, Math.max(0, 1 - e.pagesLeft / e.ramPages)) : 0;
  const pct = `${Math.floor(done * 100)}%`;
  const head = `${e.phase}${e.phase === 'memory' && e.rule !== 'time-bound' ? ` it ${e.iteration}` : ''}`;
  const tail = [
    pct,
    human(e.bytesSent),
    secs(e.elapsedMs),
    e.phase === 'done' || e.phase === 'aborted' ? '' : `eta ${secs(e.etaMs)}`,
    e.deadlineMs !== undefined ? `bound ${secs(e.deadlineMs)}` : '',
    e.dirtyRate > 0 ? `${Math.round(e.dirtyRate)} pg/s` : '',
    e.throttle < 1 ? `cpu ${Math.round(e.throttle * 100)}%` : '',
  ].filter((s) => s !== '').join(' ');
  const barRoom = w - head.length - tail.length - 4;
  let line: string;
  if (barRoom >= 3) {
    const filled = Math.round(done * barRoom);
    line = `${head} [${'#'.repeat(filled)}${'.'.repeat(barRoom - filled)}] ${tail}`;
  } else {
    line = `${head} ${tail}`;
  }
  return line.length >= w ? line.slice(0, w) : line.padEnd(w);
}
