/**
 * The decision the forwarding table hands the daemon for one frame: the
 * concrete ports and links to send it to. Egress objects are immutable and
 * shared (interned per table generation), so the daemon may batch the frames
 * of one read by egress identity, and the hot path allocates nothing.
 */

export type EgressReason =
  /** A rule sent it to one port or link. */
  | 'rule'
  /** A rule with the flood action. */
  | 'rule-flood'
  /** A rule with the drop action. */
  | 'rule-drop'
  /** Unicast to where the destination MAC was learned. */
  | 'learned'
  /** Broadcast destination, flooded with split horizon. */
  | 'broadcast'
  /** Multicast destination, flooded with split horizon. */
  | 'multicast'
  /** Unicast to a MAC not (or no longer) learned, flooded with split horizon. */
  | 'unknown-unicast'
  /** Dropped: the target is the ingress the frame came from. */
  | 'hairpin'
  /** Dropped: learned at a link this frame may not be relayed to (link to link on a spoke, or off the backbone). */
  | 'split-horizon'
  /** Dropped: the ingress given is not a current port or link. */
  | 'unknown-ingress'
  /** Dropped: the ingress port's guard refused to learn one more source MAC (port-security.ts). */
  | 'port-limit';

export const EGRESS_REASONS: readonly EgressReason[] = [
  'rule',
  'rule-flood',
  'rule-drop',
  'learned',
  'broadcast',
  'multicast',
  'unknown-unicast',
  'hairpin',
  'split-horizon',
  'unknown-ingress',
  'port-limit',
];

/** P and L are whatever the daemon registered as port and link handles (names by default). */
export interface Egress<P = string, L = string> {
  readonly ports: readonly P[];
  readonly links: readonly L[];
  /** No target at all (a drop, or a flood with nowhere to go). */
  readonly drop: boolean;
  readonly reason: EgressReason;
  /** The rule that decided, if one did. */
  readonly ruleId: string | undefined;
}

export function makeEgress<P, L>(ports: readonly P[], links: readonly L[], reason: EgressReason, ruleId: string | undefined): Egress<P, L> {
  return Object.freeze({
    ports: Object.freeze([...ports]),
    links: Object.freeze([...links]),
    drop: ports.length + links.length === 0,
    reason,
    ruleId,
  });
}
