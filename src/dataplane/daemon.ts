/**
 * The vnet daemon: one per host. It joins the host's VM ports to the overlay.
 * This file holds the daemon together — its ports, its rules, start and
 * shutdown — and hands each other concern to the file named for it:
 *
 *   data path     forwarding-loop.ts: every batch from a port or a link is
 *                 checked, learned, counted, resolved by the forwarding table
 *                 (forwarding-table.ts) and delivered.
 *   links         link-slots.ts: one link per peer; the backbone (a spoke
 *                 keeps one link to the hub and redials it with backoff; the
 *                 hub accepts every spoke) and inbound links.
 *   fast path     fast-path-links.ts: direct links added and removed at run
 *                 time as a versioned set (the lower host id dials).
 *   rules         replaced per origin as a whole; the controller's carry a
 *                 version.
 *   reporting     daemon-facts.ts: facts, traffic snapshots and events.
 *
 * Everything here is driven through `DaemonControl`: by the controller agent
 * (controller-agent.ts), the admin interface (admin-server.ts) and the
 * config file (daemon-runner.ts).
 */
import { componentLogger, type Logger } from '../common/logger.ts';
import { realClock, type Clock, type TimerHandle } from '../common/clock.ts';
import { formatMac } from '../common/mac.ts';
import { DaemonClosedError, DuplicatePortError, SpokeWithoutHubError } from './errors.ts';
import type { Port } from './port.ts';
import type { Link } from './link.ts';
import type { Transport, TransportListener as Listener } from './transport.ts';
import { ForwardingTable } from './forwarding-table.ts';
import { parseRules, type RuleOrigin } from './forwarding-rule.ts';
import { TrafficCounters } from './traffic-counters.ts';
import type { BackoffPolicy } from './backoff.ts';
import { ForwardingLoop, type ForwardingCounters } from './forwarding-loop.ts';
import { LinkSlots, type LinkSlot, type LinkSlotCounters } from './link-slots.ts';
import { FastPathLinks } from './fast-path-links.ts';
import { DaemonEvents, linkFacts, portFacts, takeTrafficSnapshot, type PortEntry } from './daemon-facts.ts';
import type {
  DaemonControl,
  DaemonEvent,
  DaemonFacts,
  DaemonRole,
  DesiredLink,
  ListenAddress,
  RuleSpec,
  TrafficSnapshot,
} from '../control/daemon-control.ts';

export interface DaemonComponents {
  logger: Logger;
  transport: Transport;
  clock?: Clock;
}

export interface DaemonInit {
  hostId: string;
  role: DaemonRole;
  site?: string | undefined;
  /** Accept links here (the hub must; spokes do to receive fast-path links). */
  listen?: { host: string; port: number } | undefined;
  /** The hub (spokes). */
  hub?: { host: string; port: number; id?: string | undefined } | undefined;
  reconnect?: BackoffPolicy;
  agingMs?: number;
}

export interface DaemonCounters extends ForwardingCounters, LinkSlotCounters {
  /** Ports removed because their device failed. */
  portFailures: number;
}

export class Daemon implements DaemonControl {
  readonly hostId: string;
  readonly role: DaemonRole;
  readonly site: string | undefined;
  readonly table: ForwardingTable<Port, LinkSlot>;
  readonly counters: TrafficCounters;
  readonly stats: DaemonCounters = { runtFrames: 0, droppedNoRoute: 0, linkFailures: 0, linkFailuresByCode: {}, decodeErrors: 0, portFailures: 0 };

  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #transport: Transport;
  readonly #init: DaemonInit;
  readonly #ports = new Map<string, PortEntry>();
  readonly #forwarding: ForwardingLoop;
  readonly #links: LinkSlots;
  readonly #fastPath: FastPathLinks;
  readonly #events: DaemonEvents;
  #listener: Listener | undefined;
  #rulesVersion = 0;
  #agingTimer: TimerHandle | undefined;
  #closed = false;

  private constructor(components: DaemonComponents, init: DaemonInit) {
    this.hostId = init.hostId;
    this.role = init.role;
    this.site = init.site;
    this.#init = init;
    this.#clock = components.clock ?? realClock;
    this.counters = new TrafficCounters({ startMs: this.#clock.wallNow() });
    this.#transport = components.transport;
    this.#log = componentLogger(components.logger, 'daemon', { host: init.hostId });
    this.#events = new DaemonEvents(this.#log);
    this.table = new ForwardingTable<Port, LinkSlot>({
      role: init.role,
      clock: this.#clock,
      logger: this.#log,
      ...(init.agingMs !== undefined ? { agingMs: init.agingMs } : {}),
    });
    this.#forwarding = new ForwardingLoop(this.table, this.counters, this.stats);
    this.#links = new LinkSlots(
      {
        hostId: init.hostId,
        transport: this.#transport,
        clock: this.#clock,
        logger: this.#log,
        table: this.table,
        stats: this.stats,
        onFrames: (ingress, frames) => this.#forwarding.fromLink(ingress, frames),
        emit: (event) => this.#events.emit(event),
      },
      init.reconnect,
    );
    this.#fastPath = new FastPathLinks(init.hostId, this.#links, this.#log);
  }

  /** Start listening (if configured) and, on a spoke, dialling the hub. */
  static async start(components: DaemonComponents, init: DaemonInit): Promise<Daemon> {
    if (init.role === 'spoke' && init.hub === undefined) throw new SpokeWithoutHubError(init.hostId);
    const d = new Daemon(components, init);
    if (init.listen !== undefined) {
      d.#listener = await d.#transport.listen(init.listen, (link) => d.#links.adoptInbound(link));
    }
    if (init.role === 'spoke' && init.hub !== undefined) d.#links.dial(init.hub.id ?? 'hub', 'backbone', init.hub, init.hub.id === undefined);
    const agingEvery = Math.min(10_000, Math.max(250, (init.agingMs ?? 300_000) / 10));
    d.#agingTimer = d.#clock.setInterval(() => d.table.expire(d.#clock.now()), agingEvery);
    d.#log.info({ role: init.role, listen: d.listenAddress, hub: init.hub }, 'daemon started');
    return d;
  }

  /** Connections the listener refused during the handshake (bad version, certificate, garbage). */
  get refusedConnections(): number {
    return this.#listener?.stats.refused ?? 0;
  }

  /** Where we accept links (the real port when started on port 0). */
  get listenAddress(): ListenAddress | undefined {
    if (this.#listener === undefined || this.#init.listen === undefined) return undefined;
    return { transport: this.#transport.kind, host: this.#init.listen.host, port: this.#listener.port };
  }

  // ---------------------------------------------------------------- ports

  addPort(port: Port, ip?: string): void {
    if (this.#closed) throw new DaemonClosedError(this.hostId, `add port ${port.name}`);
    if (this.#ports.has(port.name)) throw new DuplicatePortError(port.name, this.hostId);
    const ingress = this.table.addPort(port.name, port);
    const entry: PortEntry = { port, ip };
    this.#ports.set(port.name, entry);
    port.onFailure((err) => {
      this.stats.portFailures++;
      this.#log.warn({ port: port.name, err: err.message, code: (err as { code?: string }).code }, 'port failed; removing it');
      void this.removePort(port.name, `failed: ${err.message}`);
    });
    port.start((frames) => this.#forwarding.fromPort(ingress, frames));
    this.#log.info({ port: port.name, kind: port.kind, mac: formatMac(port.mac) }, 'port added');
    this.#events.emit({ type: 'port-added', port: portFacts(entry) });
  }

  async removePort(name: string, reason = 'removed'): Promise<void> {
    const entry = this.#ports.get(name);
    if (entry === undefined) return;
    this.#ports.delete(name);
    this.table.removePort(name);
    await entry.port.close().catch(() => undefined);
    this.#log.info({ port: name, reason }, 'port removed');
    this.#events.emit({ type: 'port-removed', name, reason });
  }

  port(name: string): Port | undefined {
    return this.#ports.get(name)?.port;
  }

  // ---------------------------------------------------------------- links

  /** Replace the fast-path links: dial the new ones we own, drop the ones no longer wanted. */
  applyFastPathLinks(version: number, links: readonly DesiredLink[]): void {
    this.#fastPath.apply(version, links);
  }

  link(peer: string): Link | undefined {
    return this.#links.get(peer)?.link;
  }

  // ---------------------------------------------------------------- rules

  /** The controller's rules (they win over learning). */
  applyRules(version: number, rules: readonly RuleSpec[]): void {
    this.setRules('controller', rules);
    this.#rulesVersion = version;
  }

  /** Replace the rules of one origin (config file, admin interface, controller); all or nothing. */
  setRules(origin: RuleOrigin, rules: readonly RuleSpec[]): void {
    const parsed = parseRules(rules, origin);
    const changes = this.table.setRules(origin, parsed);
    this.#log.info({ origin, rules: rules.length, ...changes }, 'rules applied');
  }

  get rulesVersion(): number {
    return this.#rulesVersion;
  }

  // ------------------------------------------------------------ reporting

  takeTrafficSnapshot(): TrafficSnapshot {
    return takeTrafficSnapshot(this.hostId, this.counters, this.#clock.wallNow());
  }

  facts(): DaemonFacts {
    return {
      hostId: this.hostId,
      role: this.role,
      site: this.site,
      listen: this.listenAddress,
      ports: [...this.#ports.values()].map(portFacts),
      links: [...this.#links.values()].map(linkFacts),
      rulesVersion: this.#rulesVersion,
      linksVersion: this.#fastPath.version,
    };
  }

  onEvent(handler: (event: DaemonEvent) => void): () => void {
    return this.#events.subscribe(handler);
  }

  // ------------------------------------------------------------- shutdown

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#agingTimer?.cancel();
    await this.#links.close('daemon shutting down');
    await this.#listener?.close();
    for (const { port } of this.#ports.values()) await port.close().catch(() => undefined);
    this.#ports.clear();
    this.#log.info('daemon stopped');
  }
}
