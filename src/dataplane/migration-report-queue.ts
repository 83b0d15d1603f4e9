import type { MigrationReport } from '../control/migration-control.ts';

/** Migration reports kept while the control channel is down (the oldest progress reports go first). */
export const DEFAULT_MAX_QUEUED_REPORTS = 1024;

/**
 * Migration reports waiting for the control channel, in order, bounded:
 * when full, the oldest `progress` report goes first (the states after it
 * say more), else the oldest report.
 */
export class MigrationReportQueue {
  readonly #max: number;
  #reports: MigrationReport[] = [];

  constructor(max = DEFAULT_MAX_QUEUED_REPORTS) {
    this.#max = Math.max(1, max);
  }

  get length(): number {
    return this.#reports.length;
  }

  /** Queue `report`; true when another was dropped to make room. */
  push(report: MigrationReport): boolean {
    let dropped = false;
    if (this.#reports.length >= this.#max) {
      const i = this.#reports.findIndex((r) => r.state === 'progress');
      this.#reports.splice(i === -1 ? 0 : i, 1);
      dropped = true;
    }
    this.#reports.push(report);
    return dropped;
  }

  /** Hand reports to `send` in order while it takes them (true); the first it refuses stays first. */
  drain(send: (report: MigrationReport) => boolean): number {
    let sent = 0;
    while (this.#reports.length > 0 && send(this.#reports[0]!)) {
      this.#reports.shift();
      sent++;
    }
    return sent;
  }
}
