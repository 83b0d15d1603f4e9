/**
 * What a Patterns worker reports at the end of its run (also the JSON that
 * `vnet patterns worker --json` prints, one object per worker). Times are in
 * milliseconds of the worker's clock; worker 0's round times are the run's.
 */
import type { PatternKind } from '../topology/patterns.ts';
import type { RoundSummary } from './round-stats.ts';

export interface PatternsReport {
  readonly index: number;
  readonly workers: number;
  readonly pattern: PatternKind;
  /** Width of the neighbour pattern; present for `neighbour` only. */
  readonly k?: number;
  readonly messageBytes: number;
  readonly rounds: number;
  /** This worker's pattern neighbours, ascending; its degree is their count. */
  readonly neighbours: readonly number[];
  /** This worker's place in the barrier tree (BFS tree of the pattern graph rooted at worker 0). */
  readonly barrier: { readonly parent: number | null; readonly children: readonly number[]; readonly height: number };
  /** Data messages this worker sent and received (degree × rounds each on a completed run). */
  readonly sentMessages: number;
  readonly receivedMessages: number;
  /** Data payload bytes sent and received. */
  readonly sentBytes: number;
  readonly receivedBytes: number;
  /** From the start of the run to the last neighbour connection up. */
  readonly setupMs: number;
  /** Time of each round at this worker: release of barrier r−1 to release of barrier r. */
  readonly roundMs: readonly number[];
  readonly summary: RoundSummary;
  readonly throughput: {
    /** This worker's payload bytes sent plus received, per second of the rounds. */
    readonly workerBytesPerSecond: number;
    /** Payload bytes all workers sent (each message once), per second of the rounds, as seen by this worker. */
    readonly aggregateBytesPerSecond: number;
  };
  /** Per round r (index r−1): round start, exchange finished (all neighbours' messages in); released: barrier 0..R releases (index r). */
  readonly timeline: { readonly start: readonly number[]; readonly exchanged: readonly number[]; readonly released: readonly number[] };
}
