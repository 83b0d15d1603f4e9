import { EGRESS_REASONS, type EgressReason } from './egress.ts';
import type { MacLearning } from './mac-learning.ts';

/**
 * The forwarding table's counters: cache hits and misses, invalidations,
 * drops by reason (counted on the hot path as plain field increments), and
 * the snapshot `ForwardingTable.stats` gives out with learning's counts.
 */

export interface ForwardingStats {
  hits: number;
  misses: number;
  /** Whole-cache invalidations (rule, port or link changes, cache overflow). */
  invalidations: number;
  /** Per-destination invalidations (a learned MAC appeared, moved or left). */
  macInvalidations: number;
  learnedMoves: number;
  learnedEvictions: number;
  learnedExpired: number;
  /** Frames whose source MAC was seen away from its home (not learned). */
  macConflicts: number;
  drops: Record<EgressReason, number>;
}

export class ForwardingCounters {
  hits = 0;
  misses = 0;
  invalidations = 0;
  macInvalidations = 0;
  readonly drops = Object.fromEntries(EGRESS_REASONS.map((r) => [r, 0])) as Record<EgressReason, number>;

  /** A copy of the counts, with learning's (`learning.counters`) and the conflicts seen. */
  snapshot(learning: MacLearning, macConflicts: number): ForwardingStats {
    const c = learning.counters;
    return {
      hits: this.hits,
      misses: this.misses,
      invalidations: this.invalidations,
      macInvalidations: this.macInvalidations,
      learnedMoves: c.moves,
      learnedEvictions: c.evictions,
      learnedExpired: c.expired,
      macConflicts,
      drops: { ...this.drops },
    };
  }
}
