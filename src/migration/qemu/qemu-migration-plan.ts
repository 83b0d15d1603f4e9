/**
 * QEMU's own live migration driven by the engine's stop rules (pure: numbers
 * in, QMP arguments out; the host's agent does the I/O).
 *
 *   settings   what to set before `migrate`: capabilities (`events`,
 *              `pause-before-switchover` always: the agent holds the VM's
 *              port and decides the switchover; `auto-converge` when the
 *              rule throttles) and parameters (`downtime-limit` from the
 *              rule, bandwidth unlimited on the overlay's channel)
 *   observe    every `query-migrate` answer: the progress report in the
 *              control protocol's shape and, each time QEMU finishes a
 *              dirty-sync round (`ram.dirty-sync-count` moves), the rule's
 *              decision on that round — stop → the downtime limit raised to
 *              QEMU's maximum so its next check switches over; a throttle →
 *              auto-converge's initial throttle set to it
 *
 * The time-bound rule sees the first pass as its full-RAM channel (done once
 * QEMU starts its second sync round) and the pages still dirty as what is
 * owed. QEMU's figures: `ram.transferred`, `remaining`, `total` bytes,
 * `dirty-pages-rate` pages/s, `mbps`, `dirty-sync-count`.
 */
import type { MigrationProgress } from '../../control/migration-control.ts';
import type { StopDecision, StopRule } from '../stop-rules/stop-rule.ts';
import { QEMU_STOP_DEFAULTS } from '../stop-rules/qemu-stop.ts';

const PAGE = 4096;
/** QEMU's largest downtime-limit (ms): MAX_MIGRATE_DOWNTIME_SECONDS = 2000. */
export const QEMU_MAX_DOWNTIME_MS = 2_000_000;
/** Bytes per second: as fast as the channel goes. */
const UNLIMITED_BANDWIDTH = 10 * 1024 ** 3;

export interface QemuMigrationSettings {
  readonly capabilities: { capability: string; state: boolean }[];
  readonly parameters: Record<string, number>;
}

/** One `query-migrate` answer, checked (absent or malformed figures read as 0). */
export interface QemuMigrateInfo {
  readonly status: string;
  readonly transferred: number;
  readonly remaining: number;
  readonly total: number;
  readonly dirtyPagesRate: number;
  readonly dirtySyncCount: number;
  readonly mbps: number;
  readonly downtimeMs: number | undefined;
  readonly errorDesc: string | undefined;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** Reads a `query-migrate` return value; never throws. */
export function parseQueryMigrate(v: unknown): QemuMigrateInfo {
  const r = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  const ram = typeof r.ram === 'object' && r.ram !== null ? (r.ram as Record<string, unknown>) : {};
  return {
    status: typeof r.status === 'string' ? r.status : 'none',
    transferred: num(ram.transferred),
    remaining: num(ram.remaining),
    total: num(ram.total),
    dirtyPagesRate: num(ram['dirty-pages-rate']),
    dirtySyncCount: num(ram['dirty-sync-count']),
    mbps: num(ram.mbps),
    downtimeMs: typeof r.downtime === 'number' ? r.downtime : undefined,
    errorDesc: typeof r['error-desc'] === 'string' ? r['error-desc'] : undefined,
  };
}

export function qemuMigrationSettings(rule: StopRule): QemuMigrationSettings {
  const throttles = rule.name === 'qemu' || rule.kind === 'time-bound';
  const downtime = rule.kind === 'time-bound' ? 300 : QEMU_STOP_DEFAULTS.downtimeLimitMs;
  return {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'pause-before-switchover', state: true },
      { capability: 'auto-converge', state: throttles },
    ],
    parameters: {
      'downtime-limit': downtime,
      'max-bandwidth': UNLIMITED_BANDWIDTH,
      'cpu-throttle-initial': QEMU_STOP_DEFAULTS.throttleInitial,
      'cpu-throttle-increment': QEMU_STOP_DEFAULTS.throttleIncrement,
    },
  };
}

export interface QemuObservation {
  readonly progress: MigrationProgress;
  /** Parameters to set now (migrate-set-parameters), if the rule changed something. */
  readonly setParameters: Record<string, number> | undefined;
  /** The rule's decision on a round that just ended, if one did. */
  readonly decision: StopDecision | undefined;
}

/** Follows one QEMU migration: feed it every `query-migrate` answer. */
export class QemuRuleDriver {
  readonly #rule: StopRule;
  readonly #startedAt: number;
  #lastSync = 0;
  #roundStart: { at: number; transferred: number };
  #forced = false;
  #throttle = 1;
  #firstPassBytes = 0;

  constructor(rule: StopRule, startedAt: number) {
    this.#rule = rule;
    this.#startedAt = startedAt;
    this.#roundStart = { at: startedAt, transferred: 0 };
  }

  /** Whether the rule has decided to stop (the downtime limit was raised). */
  get forced(): boolean {
    return this.#forced;
  }

  observe(info: QemuMigrateInfo, now: number): QemuObservation {
    const elapsedMs = Math.max(0, now - this.#startedAt);
    const ramPages = Math.round(info.total / PAGE);
    const pagesLeft = Math.round(info.remaining / PAGE);
    const bandwidth = info.mbps > 0 ? (info.mbps * 1e6) / 8 / 1000 : 0; // bytes per ms
    const etaMs = bandwidth > 0 ? info.remaining / bandwidth : null;
    const progress: MigrationProgress = {
      phase: phaseOf(info.status),
      iteration: info.dirtySyncCount,
      bytesSent: Math.round(info.transferred),
      pagesLeft,
      ramPages,
      dirtyRate: Math.min(1e12, info.dirtyPagesRate),
      etaMs: etaMs === null ? null : Math.min(1e12, Math.round(etaMs)),
      elapsedMs: Math.round(elapsedMs),
    };
    let decision: StopDecision | undefined;
    if (info.status === 'active' && !this.#forced) {
      if (this.#rule.kind === 'time-bound') {
        if (info.dirtySyncCount <= 1) this.#firstPassBytes = info.transferred;
        decision = this.#rule.decide({
          now, elapsedMs,
          mtxFraction: info.total > 0 ? Math.min(1, this.#firstPassBytes / info.total) : 0,
          mtxDone: info.dirtySyncCount >= 2,
          remainingPages: pagesLeft,
          bytesPerPage: PAGE,
          bandwidth,
          dirtyRateFullShare: info.dirtyPagesRate / 1000 / Math.max(0.01, this.#throttle),
          throttle: this.#throttle,
        });
      } else if (info.dirtySyncCount > this.#lastSync && this.#lastSync > 0) {
        const iterationMs = Math.max(1, now - this.#roundStart.at);
        const bytes = Math.max(0, info.transferred - this.#roundStart.transferred);
        decision = this.#rule.afterIteration({
          iteration: this.#lastSync - 1, now, elapsedMs, iterationMs,
          pagesSent: Math.round(bytes / PAGE), bytesSent: bytes,
          dirtied: pagesLeft,
          totalPagesSent: Math.round(info.transferred / PAGE), totalBytesSent: info.transferred,
          ramPages, bandwidth: bytes / iterationMs, bytesPerPage: PAGE, throttle: this.#throttle,
        });
      }
      if (info.dirtySyncCount > this.#lastSync) {
        this.#lastSync = info.dirtySyncCount;
        this.#roundStart = { at: now, transferred: info.transferred };
      }
    }
    return { progress, decision, setParameters: decision === undefined ? undefined : this.#apply(decision) };
  }

  #apply(d: StopDecision): Record<string, number> | undefined {
    if (d.stop) {
      this.#forced = true;
      return { 'downtime-limit': QEMU_MAX_DOWNTIME_MS };
    }
    if (d.throttle !== undefined && d.throttle !== this.#throttle) {
      this.#throttle = d.throttle;
      return { 'cpu-throttle-initial': Math.min(99, Math.max(1, Math.round((1 - d.throttle) * 100))) };
    }
    return undefined;
  }
}

function phaseOf(status: string): string {
  switch (status) {
    case 'setup': return 'starting';
    case 'active': return 'memory';
    case 'pre-switchover':
    case 'device': return 'paused';
    case 'completed': return 'done';
    case 'failed':
    case 'cancelling':
    case 'cancelled': return 'aborted';
    default: return status.slice(0, 32);
  }
}
