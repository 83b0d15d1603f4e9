/**
 * What the migration agent needs of the local daemon: its ports, and holding
 * a port's frames around a cutover (src/dataplane/daemon.ts). An interface
 * so the agent can be driven against a fake, and so the agent does not
 * depend on the rest of the daemon.
 *
 *   addPort(port, ip, {held})  a port whose frames are queued from the start
 *   holdPort(name)             start queueing frames to the port
 *   releasePort(name, to)      deliver the queue, in order, to the port or
 *                              onto the link towards a peer host; stop holding
 *   watchDeliveries(name)      log what is delivered to the port, so that a
 *                              release can reclaim what a guest that stopped
 *                              on its own never took (`reclaim`)
 *   announce(name)             gratuitous ARP (if the port has an IPv4) and
 *                              RARP from the port's MAC; frames sent
 *   relayedFrames(mac)         frames to `mac` that came in on a link and left
 *                              on a link (the source's relay after cutover)
 *   forgetRelay(mac)           stop counting them
 */
import type { Mac } from '../common/mac.ts';
import type { Port } from '../dataplane/port.ts';
import type { HoldStats, Reclaim } from '../dataplane/port-outlet.ts';

export type { HoldStats, Reclaim };

export type PortRelease = 'port' | { readonly link: string };

export interface MigrationDaemon {
  readonly hostId: string;
  addPort(port: Port, ip?: string, opts?: { held?: boolean }): void;
  removePort(name: string, reason?: string): Promise<void>;
  port(name: string): Port | undefined;
  holdPort(name: string): void;
  /**
   * `firstFrom`: frames that came over the link from that host go first (the source's flush at the destination).
   * `reclaim`: what a QEMU guest that stopped on its own never took goes before everything (the source's flush; port-outlet.ts).
   */
  releasePort(name: string, to: PortRelease, opts?: { firstFrom?: string; reclaim?: Reclaim }): HoldStats;
  watchDeliveries(name: string): void;
  unwatchDeliveries(name: string): void;
  announce(name: string): number;
  holdStats(name: string): HoldStats | undefined;
  relayedFrames(mac: Mac): number;
  /** Stop counting relays to `mac` (its migration is over and forgotten). */
  forgetRelay(mac: Mac): void;
}
