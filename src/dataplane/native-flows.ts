import type { Clock, TimerHandle } from '../common/clock.ts';
import type { Mac } from '../common/mac.ts';
import type { Egress } from './egress.ts';
import type { ForwardingTable, Ingress } from './forwarding-table.ts';
import type { LinkSlot } from './link-slots.ts';
import { DEFAULT_ADAPTIVE_POLL, NativeForwarder, type AdaptivePollOptions, type NativeForwarderOptions } from './native-forwarder.ts';
import { NativeForwarderError } from './errors.ts';
import type { PortOutlet } from './port-outlet.ts';
import type { TrafficCounters } from './traffic-counters.ts';

/**
 * Which of the daemon's decisions the native forwarder may repeat on its own
 * thread (native-forwarder.ts), and keeping its copy current.
 *
 *   offer    the forwarding loop offers every frame it delivered; installed
 *            are decisions to exactly one target made by a rule or a learned
 *            MAC, from a port or a link that the forwarder serves, to a port
 *            that is not held or a link it serves — link to link (a hub's
 *            relay) only while no migration's relay watch counts such frames
 *            (forwarding-loop.ts flushes when one starts). Floods, drops and
 *            everything on TLS, VXLAN or memory stay here.
 *            An endpoint not yet attached is asked to attach (it does after
 *            this turn) and the next frame of the flow installs it.
 *   flush    every invalidation of the forwarding table (rules, ports, links,
 *            one learned MAC) flushes the forwarder's table in the same call.
 *   sync     the forwarder's counts are merged into the ports', links' and
 *            traffic counters before every snapshot and every SYNC_MS.
 */

/** Something the native forwarder can serve (TapPort, a plain-TCP link). */
interface NativeEndpoint {
  nativeEndpoint?(fwd: NativeForwarder): NativeEndpointId;
}

/** An endpoint's id in the forwarder; 'later' while it attaches (after this turn); 'never' when it cannot be served. */
export type NativeEndpointId = number | 'later' | 'never';

function endpointOf(x: NativeEndpoint | undefined, fwd: NativeForwarder): NativeEndpointId {
  return x?.nativeEndpoint?.(fwd) ?? 'never';
}

/** How the daemon asks for the forwarder (Daemon's `nativeForwarding`). */
export interface NativeForwardingInit extends NativeForwarderOptions {
  /** When the forwarder cannot start (the addon missing or too old, no thread): run on the event loop instead of failing. */
  fallback?: boolean | undefined;
}

/** Whether the forwarder runs (status, metrics, the daemon's start line); `reason` says why not. */
export type NativeForwardingState =
  | { running: true; busyPollUs: number; adaptivePoll: AdaptivePollOptions | false; flowTtlMs: number }
  | { running: false; reason: string };

/** How often the forwarder's counts are merged when nobody asks (link liveness sees native traffic through this). */
export const SYNC_MS = 250;

export class NativeFlows {
  readonly forwarder: NativeForwarder;
  readonly #table: ForwardingTable<PortOutlet, LinkSlot>;
  readonly #traffic: TrafficCounters;
  readonly #timer: TimerHandle;

  constructor(fwd: NativeForwarder, table: ForwardingTable<PortOutlet, LinkSlot>, traffic: TrafficCounters, clock: Clock) {
    this.forwarder = fwd;
    this.#table = table;
    this.#traffic = traffic;
    table.onInvalidate(() => fwd.flush());
    this.#timer = clock.setInterval(() => this.sync(), SYNC_MS);
  }

  /**
   * Start the forwarder as `init` asks: undefined when not asked for, or when
   * it cannot start and `init.fallback` allows the event loop (the state
   * says why); a NativeForwarderError otherwise.
   */
  static open(init: NativeForwardingInit | undefined, table: ForwardingTable<PortOutlet, LinkSlot>, traffic: TrafficCounters, clock: Clock): { flows: NativeFlows | undefined; state: NativeForwardingState } {
    if (init === undefined) return { flows: undefined, state: { running: false, reason: 'not asked for' } };
    const options = { busyPollUs: init.busyPollUs ?? 0, adaptivePoll: init.adaptivePoll ?? DEFAULT_ADAPTIVE_POLL, ttlMs: init.ttlMs ?? 1000 };
    let fwd: NativeForwarder;
    try {
      fwd = NativeForwarder.open(options);
    } catch (err) {
      if (init.fallback !== true || !(err instanceof NativeForwarderError)) throw err;
      return { flows: undefined, state: { running: false, reason: err.message } };
    }
    return { flows: new NativeFlows(fwd, table, traffic, clock), state: { running: true, busyPollUs: options.busyPollUs, adaptivePoll: options.adaptivePoll, flowTtlMs: options.ttlMs } };
  }

  /** A frame of (src, dst) from `ingress` went to `egress`: let the forwarder take the flow's next frames if it can. */
  offer(ingress: Ingress, src: Mac, dst: Mac, egress: Egress<PortOutlet, LinkSlot>, fromPort: boolean, relayWatched: boolean): void {
    if (egress.drop || (egress.reason !== 'rule' && egress.reason !== 'learned')) return;
    const ports = egress.ports;
    const links = egress.links;
    if (ports.length + links.length !== 1) return;
    const from = this.#table.locationOf(ingress);
    if (from === undefined || from.retired) return;
    const fwd = this.forwarder;
    let target: NativeEndpoint | undefined;
    if (ports.length === 1) {
      const outlet = ports[0]!;
      if (outlet.held) return;
      target = outlet.port as NativeEndpoint;
    } else {
      if (!fromPort && relayWatched) return; // the relay watch counts link-to-link frames here
      target = links[0]!.link;
    }
    const outId = endpointOf(target, fwd);
    if (outId === 'never') return; // the ingress is not asked to attach for a flow that must stay here anyway
    const source = from.kind === 'port' ? (from.handle as PortOutlet).port : (from.handle as LinkSlot).link;
    const inId = endpointOf(source as NativeEndpoint | undefined, fwd);
    if (typeof inId === 'number' && typeof outId === 'number') fwd.install(inId, src, dst, outId, fromPort);
  }

  /** Merge the forwarder's counts (before a traffic snapshot, facts, link details). */
  sync(): void {
    this.forwarder.syncCounters(this.#traffic);
  }

  close(): void {
    this.#timer.cancel();
    this.sync();
    this.forwarder.close();
  }
}
