import type { Logger } from '../common/logger.ts';
import { formatMac } from '../common/mac.ts';
import { linkCounters, packetPortCounters, type DaemonEvent, type LinkFacts, type PortFacts, type TrafficSnapshot } from '../control/daemon-control.ts';
import type { LinkSlot } from './link-slots.ts';
import type { Port } from './port.ts';
import type { PortOutlet } from './port-outlet.ts';
import type { Ingress } from './forwarding-table.ts';
import type { PortGuard } from './port-security.ts';
import type { TrafficCounters } from './traffic-counters.ts';
import type { RecordKeyStatus } from './record-keys.ts';

/**
 * What a daemon reports about itself (to the controller agent and the admin
 * interface), in the shared control vocabulary (src/control/daemon-control.ts):
 *
 *   facts     a port's or a link's state and counters, read when asked.
 *   traffic   the local traffic matrix since the last snapshot, stamped with
 *             wall-clock times (the controller merges hosts' reports by time).
 *   events    ports and links coming and going, pushed to every subscriber
 *             as they happen; a subscriber that throws is logged and skipped.
 */

/** A port as the daemon holds it: the port and the IP address configured for its VM, if any. */
export interface PortEntry {
  port: Port;
  ip: string | undefined;
  /** What the forwarding table delivers to: the port, or its hold queue. */
  outlet: PortOutlet;
  ingress: Ingress;
  /** Its port security (port-security.ts). */
  guard: PortGuard;
}

/** A port's facts; `learnedMacs`: how many MACs are learned behind it now. */
export function portFacts(entry: PortEntry, learnedMacs: number): PortFacts {
  const { port, ip } = entry;
  const s = port.stats;
  return {
    name: port.name,
    kind: port.kind,
    mac: formatMac(port.mac),
    ip,
    mtu: port.mtu,
    rxFrames: s.rxFrames,
    rxBytes: s.rxBytes,
    txFrames: s.txFrames,
    txBytes: s.txBytes,
    txDropped: s.txDropped,
    security: entry.guard.facts(learnedMacs),
    ...(port.packetStats !== undefined ? { packet: packetPortCounters(port.packetStats) } : {}),
  };
}

export function linkFacts(slot: LinkSlot): LinkFacts {
  return {
    peer: slot.peer,
    kind: slot.kind,
    state: slot.link !== undefined ? 'up' : slot.dialer !== undefined ? 'connecting' : 'down',
    direction: slot.direction,
    ...linkCounters(slot.link?.stats),
    reconnects: slot.reconnects,
  };
}

/** A link as an operator looks at it (admin `GET /links`, `vnet status`, metrics): its facts and what only this daemon knows. */
export interface LinkDetail extends LinkFacts {
  /** Where this daemon dials the peer (outbound links). */
  address: { host: string; port: number } | undefined;
  /** Bytes queued on the socket, not yet written. */
  backlogBytes: number;
  keepalivesSent: number;
  keepalivesReceived: number;
  /** The link's round trip (echo request → reply), last and smoothed, ms; undefined until measured. */
  rttMs: number | undefined;
  srttMs: number | undefined;
  lastError: { code: string; message: string; atMs: number } | undefined;
  /** A TLS link on native records: version, key generations and what went under the current keys (docs/wire-protocol.md). */
  records: RecordKeyStatus | undefined;
}

export function linkDetail(slot: LinkSlot): LinkDetail {
  const s = slot.link?.stats;
  return {
    ...linkFacts(slot),
    address: slot.dialer?.address,
    backlogBytes: slot.link?.backlogBytes ?? 0,
    keepalivesSent: s?.keepalivesSent ?? 0,
    keepalivesReceived: s?.keepalivesReceived ?? 0,
    rttMs: s?.rttMs,
    srttMs: s?.srttMs,
    lastError: slot.lastError,
    records: slot.link?.recordKeys?.(),
  };
}

/** The traffic counted since the last snapshot, ending at `wallMs`; the counters start the next interval. */
export function takeTrafficSnapshot(host: string, counters: TrafficCounters, wallMs: number): TrafficSnapshot {
  const snap = counters.snapshotAndReset(wallMs);
  return { host, startMs: snap.startMs, endMs: snap.endMs, entries: snap.entries };
}

/** The daemon's event subscribers. */
export class DaemonEvents {
  readonly #handlers = new Set<(e: DaemonEvent) => void>();
  readonly #log: Logger;

  constructor(logger: Logger) {
    this.#log = logger;
  }

  /** Subscribe; returns the unsubscribe function. */
  subscribe(handler: (event: DaemonEvent) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  emit(event: DaemonEvent): void {
    for (const h of this.#handlers) {
      try {
        h(event);
      } catch (err) {
        this.#log.error({ err }, 'event handler threw');
      }
    }
  }
}
