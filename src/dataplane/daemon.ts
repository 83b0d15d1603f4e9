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
 *   hub failover  with a standby hub, a spoke's backbone link goes to the
 *                 primary or the standby, never both (hub-rotation.ts: the
 *                 other hub at once when the link is lost), and the standby
 *                 hub keeps one trunk link to the primary (it is configured
 *                 with the primary as its `hub`). Spokes, two hubs and one
 *                 trunk form a tree, so floods neither loop nor arrive twice,
 *                 whichever hub each spoke is on.
 *   fast path     fast-path-links.ts: direct links added and removed at run
 *                 time as a versioned set (the lower host id dials).
 *   rules         replaced per origin as a whole; the controller's carry a
 *                 version.
 *   port security port-security.ts: each port's guard (source lock, MAC
 *                 count and rate, flood rate); mac-homes.ts: a local port's
 *                 MAC is not learned anywhere else; security-events.ts: what
 *                 was refused, logged and reported (rate limited).
 *   native        with `nativeForwarding`, native-flows.ts hands established
 *                 flows between TAP ports and plain-TCP links to the native
 *                 forwarder's thread (native-forwarder.ts); its counts are
 *                 merged before every snapshot and facts.
 *   reporting     daemon-facts.ts: facts, traffic snapshots and events.
 *   migration     a port can be held (port-outlet.ts: its frames queued,
 *                 bounded) and released to itself or to a link; a VM that
 *                 resumed here is announced (announce.ts); frames relayed
 *                 for a VM that left are counted.
 *
 * Everything here is driven through `DaemonControl`: by the controller agent
 * (controller-agent.ts), the admin interface (admin-server.ts) and the
 * config file (daemon-runner.ts).
 */
import { componentLogger, type Logger } from '../common/logger.ts';
import { realClock, type Clock, type TimerHandle } from '../common/clock.ts';
import { formatMac, type Mac } from '../common/mac.ts';
import { announceFrames } from './announce.ts';
import { PortOutlet, type HoldStats, type Reclaim } from './port-outlet.ts';
import { DaemonClosedError, DuplicatePortError, SpokeWithoutHubError, UnknownPortError } from './errors.ts';
import type { Port } from './port.ts';
import type { Link } from './link-interface.ts';
import type { ListenerStats, Transport, TransportListener as Listener } from './transport.ts';
import { HostMembership } from './link-membership.ts';
import { ForwardingTable } from './forwarding-table.ts';
import { MAX_RULE_PRIORITY, MIN_RULE_PRIORITY, parseRules, type RuleOrigin } from './forwarding-rule.ts';
import { TrafficCounters } from './traffic-counters.ts';
import type { BackoffPolicy } from './backoff.ts';
import { ForwardingLoop, type ForwardingCounters } from './forwarding-loop.ts';
import { LinkSlots, type LinkSlot, type LinkSlotCounters } from './link-slots.ts';
import { FastPathLinks } from './fast-path-links.ts';
import type { HubRotation } from './hub-rotation.ts';
import { DaemonEvents, linkDetail, linkFacts, portFacts, takeTrafficSnapshot, type LinkDetail, type PortEntry } from './daemon-facts.ts';
import { PortGuard, portSecurityPolicy, type PortSecurityPolicy } from './port-security.ts';
import { SecurityEvents } from './security-events.ts';
import { VxlanEndpoint, type VxlanInit, type VxlanStats } from './vxlan-endpoint.ts';
import { NativeFlows, type NativeForwardingInit, type NativeForwardingState } from './native-flows.ts';
import type { PollStats } from './native-forwarder.ts';
import { resolveNativeForwarding } from './forwarder-choice.ts';
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
  /** The deployment's hosts, shared with the transport's handshake (link-membership.ts); the controller's list lands here. */
  membership?: HostMembership;
  /** Where VNET_NATIVE_FORWARDING is read for the native forwarder's default (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface DaemonInit {
  hostId: string;
  role: DaemonRole;
  site?: string | undefined;
  /** Accept links here (the hub must; spokes do to receive fast-path links). */
  listen?: { host: string; port: number } | undefined;
  /** The hub (spokes); on a standby hub, the primary hub it keeps a trunk link to. */
  hub?: { host: string; port: number; id?: string | undefined } | undefined;
  /** The standby hub a spoke fails over to when it loses the hub (its id must be given). */
  standbyHub?: { host: string; port: number; id: string } | undefined;
  reconnect?: BackoffPolicy;
  agingMs?: number;
  /** VXLAN tunnels to configured VTEPs (vxlan-endpoint.ts; trusted underlay only, docs/vxlan.md), beside the transport's links. */
  vxlan?: VxlanInit | undefined;
  /**
   * Carry established flows between TAP ports and plain-TCP links on the
   * native forwarder's thread (native-flows.ts). Absent: the default
   * (forwarder-choice.ts, resolveNativeForwarding: on where the addon can run
   * it, VNET_NATIVE_FORWARDING as for `vnet daemon`); false: off.
   */
  nativeForwarding?: NativeForwardingInit | false | undefined;
}

export interface DaemonCounters extends ForwardingCounters, LinkSlotCounters {
  /** Ports removed because their device failed. */
  portFailures: number;
}

export class Daemon implements DaemonControl {
  readonly hostId: string;
  readonly role: DaemonRole;
  readonly site: string | undefined;
  readonly table: ForwardingTable<PortOutlet, LinkSlot>;
  readonly counters: TrafficCounters;
  readonly stats: DaemonCounters = { runtFrames: 0, droppedNoRoute: 0, linkFailures: 0, linkFailuresByCode: {}, decodeErrors: 0, portFailures: 0 };

  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #transport: Transport;
  readonly #init: DaemonInit;
  readonly #ports = new Map<string, PortEntry>();
  readonly #forwarding: ForwardingLoop;
  readonly #native: NativeFlows | undefined;
  /** Whether the native forwarder runs, or why not. */
  readonly nativeForwarding: NativeForwardingState;
  readonly #links: LinkSlots;
  readonly #fastPath: FastPathLinks;
  readonly #events: DaemonEvents;
  readonly #security: SecurityEvents;
  readonly #membership: HostMembership;
  readonly #unsubscribeMembership: () => void;
  #listener: Listener | undefined;
  #vxlan: VxlanEndpoint | undefined;
  #hubs: HubRotation | undefined;
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
    this.#security = new SecurityEvents({ logger: this.#log, clock: this.#clock, emit: (event) => this.#events.emit(event) });
    this.table = new ForwardingTable<PortOutlet, LinkSlot>({
      role: init.role,
      clock: this.#clock,
      logger: this.#log,
      onConflict: (conflict) => this.#security.conflict(conflict),
      ...(init.agingMs !== undefined ? { agingMs: init.agingMs } : {}),
    });
    const resolved = resolveNativeForwarding(init.nativeForwarding, components.env ?? process.env);
    const native = NativeFlows.open(resolved.init, this.table, this.counters, this.#clock);
    this.#native = native.flows;
    this.nativeForwarding = resolved.init === undefined ? { running: false, reason: resolved.reason } : native.state;
    if (native.state.running) this.#transport.offerNativeRecords?.(true); // TLS links the forwarder can carry (tls-switch.ts)
    this.#forwarding = new ForwardingLoop(this.table, this.counters, this.stats, this.#native);
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
    this.#membership = components.membership ?? new HostMembership();
    this.#unsubscribeMembership = this.#membership.onChange(() => this.#dropNonMembers());
  }

  /** Start listening (if configured) and, on a spoke, dialling the hub (on a standby hub, the primary). */
  static async start(components: DaemonComponents, init: DaemonInit): Promise<Daemon> {
    if (init.role === 'spoke' && init.hub === undefined) throw new SpokeWithoutHubError(init.hostId);
    const d = new Daemon(components, init);
    if (init.listen !== undefined) {
      d.#listener = await d.#transport.listen(init.listen, (link) => d.#links.adoptInbound(link));
    }
    if (init.vxlan !== undefined) {
      try {
        d.#vxlan = await VxlanEndpoint.open({ logger: d.#log }, init.vxlan);
      } catch (err) {
        await d.close();
        throw err;
      }
      for (const link of d.#vxlan.links()) d.#links.attachConfigured(link);
    }
    if (init.role === 'spoke' && init.hub !== undefined) {
      const hubs = [{ id: init.hub.id, host: init.hub.host, port: init.hub.port }];
      if (init.standbyHub !== undefined) hubs.push({ ...init.standbyHub });
      d.#hubs = d.#links.dialHubs(hubs);
    }
    // A standby hub's trunk to the primary: spokes on either hub reach each other through it.
    if (init.role === 'hub' && init.hub !== undefined) d.#links.dial(init.hub.id ?? 'hub', 'backbone', init.hub, init.hub.id === undefined);
    const agingEvery = Math.min(10_000, Math.max(250, (init.agingMs ?? 300_000) / 10));
    d.#agingTimer = d.#clock.setInterval(() => d.table.expire(d.#clock.now()), agingEvery);
    d.#log.info({ role: init.role, listen: d.listenAddress, hub: init.hub }, 'daemon started');
    return d;
  }

  /** Connections the listener refused during the handshake (bad version, certificate, proof, not a member, deadline, evicted). */
  get refusedConnections(): number {
    return this.#listener?.stats.refused ?? 0;
  }

  /** The tunnel listener's counters: accepted, refused by reason, pending (undefined when not listening). */
  get listenerStats(): Readonly<ListenerStats> | undefined {
    return this.#listener?.stats;
  }

  /** The VXLAN endpoint's drops (unknown source, wrong VNI, malformed, oversize) and where it is bound; undefined without VXLAN. */
  get vxlan(): { stats: Readonly<VxlanStats>; address: { host: string; port: number }; vni: number } | undefined {
    const v = this.#vxlan;
    return v === undefined ? undefined : { stats: v.stats, address: v.address, vni: v.vni };
  }

  /** Frames the native forwarder has carried (merged now); undefined when it does not run. */
  /** The native forwarder's busy polling since the start (undefined when it does not run). */
  get nativePollStats(): PollStats | undefined {
    return this.#native?.forwarder.pollStats();
  }

  get nativeCarriedFrames(): number | undefined {
    this.#native?.sync();
    return this.#native?.forwarder.carriedFrames;
  }

  /** Where we accept links (the real port when started on port 0). */
  get listenAddress(): ListenAddress | undefined {
    if (this.#listener === undefined || this.#init.listen === undefined) return undefined;
    return { transport: this.#transport.kind, host: this.#init.listen.host, port: this.#listener.port };
  }

  // ---------------------------------------------------------------- ports

  /**
   * Add a VM's port; `held`: its frames are queued until `releasePort` (a
   * migration's destination); `security`: what differs from the default
   * port security (port-security.ts: locked to the port's MAC, a few MACs,
   * floods rate limited).
   */
  addPort(port: Port, ip?: string, opts: { held?: boolean; security?: Partial<PortSecurityPolicy> } = {}): void {
    if (this.#closed) throw new DaemonClosedError(this.hostId, `add port ${port.name}`);
    if (this.#ports.has(port.name)) throw new DuplicatePortError(port.name, this.hostId);
    const guard = new PortGuard({
      port: port.name, mac: port.mac, policy: portSecurityPolicy(opts.security), clock: this.#clock,
      onLimit: (name, limit) => this.#security.limit(name, limit),
    });
    const outlet = new PortOutlet(port, { held: opts.held === true });
    const ingress = this.table.addPort(port.name, outlet, guard);
    const entry: PortEntry = { port, ip, outlet, ingress, guard };
    this.#ports.set(port.name, entry);
    port.onFailure((err) => {
      this.stats.portFailures++;
      this.#log.warn({ port: port.name, err: err.message, code: (err as { code?: string }).code }, 'port failed; removing it');
      void this.removePort(port.name, `failed: ${err.message}`);
    });
    this.#pinPorts();
    port.start((frames) => this.#forwarding.fromPort(ingress, frames, guard));
    this.#log.info({ port: port.name, kind: port.kind, mac: formatMac(port.mac), locked: guard.policy.lock }, 'port added');
    this.#events.emit({ type: 'port-added', port: portFacts(entry, this.table.learnedAt(ingress)) });
  }

  async removePort(name: string, reason = 'removed'): Promise<void> {
    const entry = this.#ports.get(name);
    if (entry === undefined) return;
    this.#ports.delete(name);
    this.table.removePort(name);
    this.#pinPorts();
    await entry.port.close().catch(() => undefined);
    this.#log.info({ port: name, reason }, 'port removed');
    this.#events.emit({ type: 'port-removed', name, reason });
  }

  port(name: string): Port | undefined {
    return this.#ports.get(name)?.port;
  }

  /** Replace a port's security policy (a configuration reload); the port, its learned MACs and its counters stay. */
  setPortSecurity(name: string, security: Partial<PortSecurityPolicy> = {}): void {
    const entry = this.#entry(name);
    entry.guard.setPolicy(portSecurityPolicy(security));
    this.#native?.forwarder.flush(); // installed flows were admitted under the old policy
    this.#log.info({ port: name, locked: entry.guard.policy.lock }, 'port security changed');
  }

  // ------------------------------------------------------------ migration

  /** Queue the frames to this port instead of delivering them (its VM paused); relays to its MAC are counted from now on. */
  holdPort(name: string): void {
    const entry = this.#entry(name);
    entry.outlet.hold();
    this.#pinPorts();
    this.#forwarding.watchRelay(entry.port.mac);
    this.#log.info({ port: name }, 'port held');
  }

  /**
   * Log the frames delivered to this port (with this daemon's wall clock)
   * until it is released: what a guest that stops on its own (QEMU at its
   * switchover) never took can be reclaimed at the release (port-outlet.ts).
   */
  watchDeliveries(name: string): void {
    this.#entry(name).outlet.watchDeliveries(() => this.#clock.wallNow());
  }

  unwatchDeliveries(name: string): void {
    this.#ports.get(name)?.outlet.unwatchDeliveries();
  }

  /**
   * Stop holding: the queued frames, oldest first, go to the port itself or
   * to the link to `peer` (lost if that link is not up), then frames flow as
   * usual. `firstFrom`: frames that came over the link from that host (a
   * migration's source, flushing what it held) go before the others.
   * `reclaim`: what the port's guest, stopped on its own, never took (its
   * STOP, and the frames read back from its device: port-outlet.ts) goes
   * first of all. Returns the port's hold figures.
   */
  releasePort(name: string, to: 'port' | { link: string }, opts: { firstFrom?: string; reclaim?: Reclaim } = {}): HoldStats {
    const entry = this.#entry(name);
    const first = opts.firstFrom === undefined ? undefined : this.table.linkIngress(opts.firstFrom);
    const stats = entry.outlet.release(to === 'port'
      ? (frame) => { entry.port.send(frame); return true; }
      : (frame) => {
        const link = this.#links.get(to.link)?.link;
        if (link === undefined) return false;
        link.send(frame);
        return true;
      }, first, opts.reclaim);
    this.#pinPorts();
    this.#log.info({ port: name, to: to === 'port' ? 'port' : `link ${to.link}`, ...stats }, 'port released');
    return stats;
  }

  holdStats(name: string): HoldStats | undefined {
    return this.#ports.get(name)?.outlet.stats;
  }

  /** Announce the port's VM at this host (RARP, and a gratuitous ARP if its IPv4 is known), as if the VM sent them; returns the frames sent. */
  announce(name: string): number {
    const entry = this.#entry(name);
    const frames = announceFrames(entry.port.mac, entry.ip);
    this.#forwarding.fromPort(entry.ingress, frames, entry.guard);
    return frames.length;
  }

  /** Frames to `mac` that came in on a link and left on a link since the port with that MAC was held here. */
  relayedFrames(mac: Mac): number {
    return this.#forwarding.relayed(mac);
  }

  /** Stop counting relays to `mac` (the migration that moved it is over). */
  forgetRelay(mac: Mac): void {
    this.#forwarding.forgetRelay(mac);
  }

  /**
   * Frames to a local port's MAC go to that port, whatever was learned
   * elsewhere: one rule per port (origin `ports`, id `port:NAME`) at the
   * lowest priority, so every explicit rule still wins — except while the
   * port is held, when it takes the highest, so that nothing for a paused or
   * not-yet-resumed VM overtakes its hold queue.
   *
   * The MACs of the ports that are not held are also homes (mac-homes.ts):
   * never learned anywhere else. A held port's is not: its VM is paused, or
   * still running at the migration's source.
   */
  #pinPorts(): void {
    this.table.setLocalMacs(new Map([...this.#ports.values()].filter((e) => !e.outlet.held).map((e) => [e.port.mac, e.port.name] as const)));
    const pins: RuleSpec[] = [...this.#ports.values()].map(({ port, outlet }) => ({
      id: `port:${port.name}`, priority: outlet.held ? MAX_RULE_PRIORITY : MIN_RULE_PRIORITY, src: 'any', dst: formatMac(port.mac), action: { port: port.name },
    }));
    this.table.setRules('ports', parseRules(pins, 'ports'));
  }

  #entry(name: string): PortEntry {
    const entry = this.#ports.get(name);
    if (entry === undefined) throw new UnknownPortError(name, this.hostId);
    return entry;
  }

  // ---------------------------------------------------------------- links

  /** Replace the fast-path links: dial the new ones we own, drop the ones no longer wanted. */
  applyFastPathLinks(version: number, links: readonly DesiredLink[]): void {
    this.#fastPath.apply(version, links);
  }

  link(peer: string): Link | undefined {
    return this.#links.get(peer)?.link;
  }

  /** A spoke's hub now (the one its backbone link is up to, or being dialled), and how often it failed over. */
  get hub(): { id: string | undefined; up: boolean; failovers: number } | undefined {
    const rotation = this.#hubs;
    if (rotation === undefined) return undefined;
    const id = rotation.current.id;
    return { id, up: id !== undefined && this.#links.get(id)?.link !== undefined, failovers: rotation.failovers };
  }

  /** The controller's list of the deployment's hosts: later links are checked against it, and links to hosts outside it close now. */
  setDeploymentHosts(hostIds: readonly string[]): void {
    if (this.#membership.setFromController(hostIds)) this.#log.info({ hosts: hostIds.length }, 'deployment membership updated');
  }

  /** The deployment's host ids as this daemon knows them (undefined: no list yet). */
  get deploymentHosts(): string[] | undefined {
    return this.#membership.hosts;
  }

  #dropNonMembers(): void {
    for (const slot of [...this.#links.values()]) {
      // The spoke's own backbone link to its configured hub stays: the operator chose it.
      if (slot.link === undefined || this.#membership.admits(slot.peer) || (slot.direction === 'outbound' && slot.kind === 'backbone')) continue;
      this.#log.warn({ peer: slot.peer, kind: slot.kind }, 'closing the link of a host that is not a member of the deployment');
      this.#links.remove(slot, 'not a member of the deployment');
    }
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
    // Logged on the next turn: the controller's acknowledgement (sent once this returns) does not wait for the log write.
    setImmediate(() => this.#log.info({ origin, rules: rules.length, ...changes }, 'rules applied'));
  }

  get rulesVersion(): number {
    return this.#rulesVersion;
  }

  // ------------------------------------------------------------ reporting

  takeTrafficSnapshot(): TrafficSnapshot {
    this.#native?.sync();
    return takeTrafficSnapshot(this.hostId, this.counters, this.#clock.wallNow());
  }

  facts(): DaemonFacts {
    this.#native?.sync();
    return {
      hostId: this.hostId,
      role: this.role,
      site: this.site,
      listen: this.listenAddress,
      ports: [...this.#ports.values()].map((e) => portFacts(e, this.table.learnedAt(e.ingress))),
      links: [...this.#links.values()].map(linkFacts),
      rulesVersion: this.#rulesVersion,
      linksVersion: this.#fastPath.version,
      macConflicts: this.table.stats.macConflicts,
    };
  }

  /** Every link with its queue, keepalives, dialled address and last error (what `facts` does not carry to the controller). */
  linkDetails(): LinkDetail[] {
    this.#native?.sync();
    return [...this.#links.values()].map(linkDetail);
  }

  onEvent(handler: (event: DaemonEvent) => void): () => void {
    return this.#events.subscribe(handler);
  }

  // ------------------------------------------------------------- shutdown

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribeMembership();
    this.#agingTimer?.cancel();
    await this.#links.close('daemon shutting down');
    await this.#listener?.close();
    await this.#vxlan?.close();
    for (const { port } of this.#ports.values()) await port.close().catch(() => undefined);
    this.#ports.clear();
    this.#native?.close();
    this.#log.info('daemon stopped');
  }
}
