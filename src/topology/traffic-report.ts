import type { Mac } from '../common/mac.ts';

/**
 * A daemon's local traffic matrix for one update period: the frames that
 * entered the overlay at `host` (from its own VMs), counted per (source MAC,
 * destination MAC), between startMs (inclusive) and endMs (exclusive).
 */
export interface TrafficEntry {
  readonly src: Mac;
  readonly dst: Mac;
  readonly frames: number;
  readonly bytes: number;
}

export interface TrafficReport {
  readonly host: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly entries: readonly TrafficEntry[];
}
