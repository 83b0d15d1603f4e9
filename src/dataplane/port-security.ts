import type { Clock } from '../common/clock.ts';
import type { PortLimit, PortSecurityFacts } from '../control/daemon-control.ts';
import { isMulticastMac, type Mac } from '../common/mac.ts';
import type { EgressReason } from './egress.ts';
import { TokenBucket } from './token-bucket.ts';

/**
 * Port security: what one VM may put into the overlay, checked where its
 * frames enter (forwarding-loop.ts) and where its source MACs are learned
 * (forwarding-table.ts). Per port:
 *
 *   lock       only the port's own MAC and `allowedMacs` may be a frame's
 *              source; other frames are dropped before anything else looks
 *              at them (anti-spoofing, as OVS port security and OpenStack).
 *   maxMacs    at most this many MACs learned behind the port; a frame from
 *              one more is dropped, not learned (no other VM's entry is
 *              evicted, no cached decision is dropped for it).
 *   newMacs    at most `newMacsPerSecond` MACs newly learned a second
 *              (a token bucket), the same way.
 *   flood      frames the table floods (broadcast, multicast, unknown
 *              unicast, flood rules) are admitted by a token bucket of
 *              `floodFramesPerSecond`, `floodBurst` deep; the rest dropped.
 *
 * Each drop is counted per port (`PortSecurityCounters`) and reported
 * through `onLimit` (the daemon turns that into a rate-limited log line and
 * an event). Defaults are for a VM with one NIC and one MAC: locked, a
 * handful of MACs, floods at most a thousand a second.
 */

export interface PortSecurityPolicy {
  /** Drop frames whose source is not the port's MAC or one of `allowedMacs`. */
  readonly lock: boolean;
  /** MACs besides the port's own that it may send from (and that a lock admits). */
  readonly allowedMacs: readonly Mac[];
  readonly maxMacs: number;
  readonly newMacsPerSecond: number;
  readonly floodFramesPerSecond: number;
  readonly floodBurst: number;
}

export const DEFAULT_PORT_SECURITY: PortSecurityPolicy = Object.freeze({
  lock: true,
  allowedMacs: Object.freeze([]) as readonly Mac[],
  maxMacs: 8,
  newMacsPerSecond: 8,
  floodFramesPerSecond: 1000,
  floodBurst: 2000,
});

/** Frames dropped by each limit, since the port was added. */
export type PortSecurityCounters = Record<PortLimit, number>;

/** Whether the forwarding table floods a frame it decided for this reason. */
export function isFloodReason(reason: EgressReason): boolean {
  return reason === 'broadcast' || reason === 'multicast' || reason === 'unknown-unicast' || reason === 'rule-flood';
}

export class PortGuard {
  readonly port: string;
  readonly mac: Mac;
  readonly counters: PortSecurityCounters = { 'spoofed-source': 0, 'mac-limit': 0, 'mac-rate': 0, 'flood-rate': 0 };
  readonly #clock: Clock;
  readonly #onLimit: (port: string, limit: PortLimit) => void;
  #policy!: PortSecurityPolicy;
  #allowed!: ReadonlySet<Mac>;
  #newMacs!: TokenBucket;
  #floods!: TokenBucket;

  constructor(init: { port: string; mac: Mac; policy: PortSecurityPolicy; clock: Clock; onLimit: (port: string, limit: PortLimit) => void }) {
    this.port = init.port;
    this.mac = init.mac;
    this.#clock = init.clock;
    this.#onLimit = init.onLimit;
    this.setPolicy(init.policy);
  }

  get policy(): PortSecurityPolicy {
    return this.#policy;
  }

  /**
   * Apply another policy from now on (a configuration reload): the limits
   * and buckets are the new policy's, full; the drop counters carry on.
   */
  setPolicy(policy: PortSecurityPolicy): void {
    this.#policy = policy;
    this.#allowed = new Set(policy.allowedMacs);
    const now = this.#clock.now();
    this.#newMacs = new TokenBucket(policy.newMacsPerSecond, Math.max(1, Math.ceil(policy.newMacsPerSecond)), now);
    this.#floods = new TokenBucket(policy.floodFramesPerSecond, policy.floodBurst, now);
  }

  /** The hot-path check: may this port send from `src`? A refusal is counted. */
  admitsSource(src: Mac): boolean {
    if (src === this.mac || !this.#policy.lock) return true;
    if (!isMulticastMac(src) && this.#allowed.has(src)) return true;
    this.#refuse('spoofed-source');
    return false;
  }

  /** May one more MAC be learned behind the port, which has `learnedHere` now? A refusal is counted. */
  admitsNewMac(learnedHere: number): boolean {
    if (learnedHere >= this.#policy.maxMacs) {
      this.#refuse('mac-limit');
      return false;
    }
    if (!this.#newMacs.take(this.#clock.now())) {
      this.#refuse('mac-rate');
      return false;
    }
    return true;
  }

  /** May the port flood one more frame? A refusal is counted. */
  admitsFlood(): boolean {
    if (this.#floods.take(this.#clock.now())) return true;
    this.#refuse('flood-rate');
    return false;
  }

  facts(learnedMacs: number): PortSecurityFacts {
    return { locked: this.#policy.lock, learnedMacs, ...this.counters };
  }

  #refuse(limit: PortLimit): void {
    this.counters[limit]++;
    this.#onLimit(this.port, limit);
  }
}

/** A policy from the defaults and whatever a port's configuration overrides. */
export function portSecurityPolicy(overrides: Partial<PortSecurityPolicy> = {}): PortSecurityPolicy {
  const p = { ...DEFAULT_PORT_SECURITY, ...overrides };
  if (!Number.isInteger(p.maxMacs) || p.maxMacs < 1) throw new RangeError(`maxMacs must be an integer >= 1, got ${p.maxMacs}`);
  return Object.freeze({ ...p, allowedMacs: Object.freeze([...p.allowedMacs]) });
}
