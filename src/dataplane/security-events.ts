import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { formatMac } from '../common/mac.ts';
import type { DaemonEvent, PortLimit } from '../control/daemon-control.ts';
import type { MacConflict } from './source-learning.ts';

/**
 * What a VM did that the daemon refused, as log lines and events: MAC
 * conflicts (a MAC seen away from its home, mac-homes.ts) and port limits
 * (port-security.ts). Both can come at frame rate, so each kind of report —
 * per conflicting MAC, per port and limit — is logged and emitted at once
 * the first time, then at most once per `intervalMs` with the number of
 * frames since the previous report. The counters themselves (port facts,
 * the table's `macConflicts`) count every frame.
 */

export const DEFAULT_SECURITY_REPORT_INTERVAL_MS = 10_000;
/** Keys remembered for rate limiting; beyond this the oldest half is forgotten. */
const MAX_KEYS = 1024;

interface Pending {
  lastMs: number;
  /** Frames since the last report. */
  count: number;
}

export class SecurityEvents {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #emit: (event: DaemonEvent) => void;
  readonly #intervalMs: number;
  readonly #pending = new Map<string, Pending>();

  constructor(init: { logger: Logger; clock: Clock; emit: (event: DaemonEvent) => void; intervalMs?: number }) {
    this.#log = init.logger;
    this.#clock = init.clock;
    this.#emit = init.emit;
    this.#intervalMs = init.intervalMs ?? DEFAULT_SECURITY_REPORT_INTERVAL_MS;
  }

  conflict(c: MacConflict): void {
    const mac = formatMac(c.mac);
    const frames = this.#due(`c${c.mac}|${c.seenAt}`);
    if (frames === 0) return;
    this.#log.warn({ mac, seenAt: c.seenAt, home: c.home, by: c.by, frames }, 'MAC seen away from its home: not learned');
    this.#emit({ type: 'mac-conflict', mac, seenAt: c.seenAt, home: c.home, by: c.by, frames });
  }

  limit(port: string, limit: PortLimit): void {
    const frames = this.#due(`l${port}|${limit}`);
    if (frames === 0) return;
    this.#log.warn({ port, limit, frames }, 'port limit: frames dropped');
    this.#emit({ type: 'port-limit', port, limit, frames });
  }

  /** Count one frame under `key`; returns the frames to report now, or 0 while rate limited. */
  #due(key: string): number {
    const now = this.#clock.now();
    const p = this.#pending.get(key);
    if (p === undefined) {
      if (this.#pending.size >= MAX_KEYS) this.#forgetOldest();
      this.#pending.set(key, { lastMs: now, count: 0 });
      return 1;
    }
    p.count++;
    if (now - p.lastMs < this.#intervalMs) return 0;
    const frames = p.count;
    p.lastMs = now;
    p.count = 0;
    return frames;
  }

  #forgetOldest(): void {
    let n = this.#pending.size / 2;
    for (const key of this.#pending.keys()) {
      if (n-- <= 0) break;
      this.#pending.delete(key);
    }
  }
}
