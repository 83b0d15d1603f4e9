import type { Logger } from '../common/logger.ts';
import type { DesiredLink } from '../control/daemon-control.ts';
import type { LinkSlots } from './link-slots.ts';

/**
 * The fast-path links a daemon should have: direct links to other hosts that
 * bypass the hub, added and removed at run time as one versioned set (from
 * the controller, the admin interface or the config file).
 *
 *   apply  a new set replaces the old one. A peer that left the set loses its
 *          fast-path slot (dialling stops, the link is closed). A peer new to
 *          the set is dialled by one side only — the one the set says dials,
 *          by default the lower host id — and the other side accepts it as an
 *          inbound link (link-slots.ts). A peer we already have a slot for
 *          (up, dialling, or joined by the backbone) is left as it is.
 */
export class FastPathLinks {
  readonly #hostId: string;
  readonly #slots: LinkSlots;
  readonly #log: Logger;
  #desired = new Map<string, DesiredLink>();
  #version = 0;

  constructor(hostId: string, slots: LinkSlots, logger: Logger) {
    this.#hostId = hostId;
    this.#slots = slots;
    this.#log = logger;
  }

  /** Version of the set applied last (0 before any). */
  get version(): number {
    return this.#version;
  }

  /** Replace the fast-path links: dial the new ones we own, drop the ones no longer wanted. */
  apply(version: number, links: readonly DesiredLink[]): void {
    const next = new Map(links.map((l) => [l.peer, l] as const));
    for (const [peer] of this.#desired) {
      if (next.has(peer)) continue;
      const slot = this.#slots.get(peer);
      if (slot === undefined || slot.kind !== 'fast-path') continue;
      this.#slots.remove(slot, 'fast-path link removed');
      this.#log.info({ peer }, 'fast-path link removed');
    }
    for (const [peer, want] of next) {
      if (peer === this.#hostId) continue;
      if (this.#slots.get(peer) !== undefined) continue; // up, dialling, or a backbone link already joins us
      const dials = want.dial ?? this.#hostId < peer;
      if (dials) {
        this.#log.info({ peer, address: want.address, reason: want.reason }, 'dialling fast-path link');
        this.#slots.dial(peer, 'fast-path', want.address);
      }
    }
    this.#desired = next;
    this.#version = version;
  }
}
