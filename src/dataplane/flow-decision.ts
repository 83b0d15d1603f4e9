import type { Egress } from './egress.ts';
import { LearnedEntry, NOWHERE } from './mac-learning.ts';

/**
 * What the forwarding table caches per (src, dst, ingress): a decision and
 * what it depends on (forwarding-table.ts's header says when it goes stale).
 */

/**
 * A cached decision for one (src, dst, ingress). It stays valid while its
 * destination dependency lives (`dstDep.location !== NOWHERE`): the learned
 * entry it was decided from, a token for "dst not learned", or INDEPENDENT
 * for decisions that do not look at learning (rules, floods of group MACs).
 */
export class Hit<P, L> {
  readonly egress: Egress<P, L>;
  readonly dstDep: LearnedEntry;
  /** The source MAC's learned entry (to refresh), or null when the source is never learned. */
  srcEntry: LearnedEntry | null;

  constructor(egress: Egress<P, L>, dstDep: LearnedEntry, srcEntry: LearnedEntry | null) {
    this.egress = egress;
    this.dstDep = dstDep;
    this.srcEntry = srcEntry;
  }
}

/** The dependency of decisions that learning cannot change. */
export const INDEPENDENT = new LearnedEntry(-1, -2, 0);
/** Stands for "source not learned at this ingress": forces the learning path on the next hit. */
export const DETACHED = new LearnedEntry(-1, NOWHERE, 0);
/** Location of an "unknown destination" token while it is valid. */
export const PENDING = -3;

