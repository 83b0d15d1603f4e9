/**
 * The vnet daemon: one per host. It joins the host's VM ports to the overlay.
 *
 * Data path, in stages (the per-frame work is in `#fromPort` and `#fromLink`):
 *
 *   port batch ─▶ check ─▶ learn src ─▶ count (src,dst) ─▶ resolve ─▶ deliver
 *   link batch ─▶ check ─▶ learn src ──────────────────────▶ resolve ─▶ deliver
 *
 *   check    a frame shorter than an Ethernet header is dropped and counted.
 *   learn    the source MAC lives behind the ingress (port or link).
 *   count    frames entering the overlay here feed the local traffic matrix.
 *   resolve  one cached forwarding-table lookup gives the egress set
 *            (controller rules first, then learned MACs, else flood along the
 *            backbone with split horizon).
 *   deliver  to ports (a port that cannot take GSO super-frames segments
 *            them itself) and to links (batched writes).
 *
 * Control path: the backbone (a spoke keeps one link to the hub and redials
 * it with backoff; the hub accepts every spoke), fast-path links added and
 * removed at run time (the lower host id dials), rules replaced as a whole
 * with a version. Everything here is driven through `DaemonControl`, by the
 * admin interface now and the controller agent later.
 */
import { componentLogger, type Logger } from '../common/logger.ts';
import { realClock, type Clock, type TimerHandle } from '../common/clock.ts';
import type { Frame } from '../common/frame.ts';
import { MIN_FRAME_BYTES } from '../common/frame.ts';
import { dstMacOf, formatMac, srcMacOf } from '../common/mac.ts';
import type { Port } from './port.ts';
import type { Link } from './link.ts';
import type { Transport, TransportListener as Listener } from './transport.ts';
import { ForwardingTable, type Ingress } from './forwarding-table.ts';
import type { Egress } from './egress.ts';
import { parseRules, type RuleOrigin } from './forwarding-rule.ts';
import { TrafficCounters } from './traffic-counters.ts';
import { Backoff, type BackoffPolicy } from './backoff.ts';
import {
  linkCounters,
  type DaemonControl,
  type DaemonEvent,
  type DaemonFacts,
  type DaemonRole,
  type DesiredLink,
  type LinkFacts,
  type LinkKind,
  type ListenAddress,
  type PortFacts,
  type RuleSpec,
  type TrafficSnapshot,
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

export interface DaemonCounters {
  /** Frames shorter than an Ethernet header, dropped. */
  runtFrames: number;
  /** Frames the forwarding table sent nowhere (drop rule, hairpin, split horizon, nowhere to flood). */
  droppedNoRoute: number;
  /** Links that ended with an error (decode error, timeout, peer vanished), by error code. */
  linkFailures: number;
  linkFailuresByCode: Record<string, number>;
  /** Bytes on links that did not decode (summed over links, closed ones included). */
  decodeErrors: number;
  /** Ports removed because their device failed. */
  portFailures: number;
}

interface LinkSlot {
  peer: string;
  kind: LinkKind;
  link: Link | undefined;
  direction: 'outbound' | 'inbound';
  reconnects: number;
  /** Outbound slots keep redialling until removed. */
  dialer: Dialer | undefined;
}

interface Dialer {
  address: { host: string; port: number };
  backoff: Backoff;
  timer: TimerHandle | undefined;
  abort: AbortController | undefined;
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
  readonly #ports = new Map<string, { port: Port; ip: string | undefined }>();
  /** Keyed by peer host id: at most one link per peer. */
  readonly #links = new Map<string, LinkSlot>();
  readonly #listeners = new Set<(e: DaemonEvent) => void>();
  #listener: Listener | undefined;
  #rulesVersion = 0;
  #linksVersion = 0;
  #desiredFastPath = new Map<string, DesiredLink>();
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
    this.table = new ForwardingTable<Port, LinkSlot>({
      role: init.role,
      clock: this.#clock,
      logger: this.#log,
      ...(init.agingMs !== undefined ? { agingMs: init.agingMs } : {}),
    });
  }

  /** Start listening (if configured) and, on a spoke, dialling the hub. */
  static async start(components: DaemonComponents, init: DaemonInit): Promise<Daemon> {
    const d = new Daemon(components, init);
    if (init.listen !== undefined) {
      d.#listener = await d.#transport.listen(init.listen, (link) => d.#adoptInbound(link));
    }
    if (init.role === 'spoke') {
      if (init.hub === undefined) throw new Error('a spoke needs the hub address');
      d.#dial(init.hub.id ?? 'hub', 'backbone', init.hub, init.hub.id === undefined);
    }
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
    if (this.#closed) throw new Error('daemon closed');
    if (this.#ports.has(port.name)) throw new Error(`port ${port.name} already exists on ${this.hostId}`);
    const ingress = this.table.addPort(port.name, port);
    this.#ports.set(port.name, { port, ip });
    port.onFailure((err) => {
      this.stats.portFailures++;
      this.#log.warn({ port: port.name, err: err.message, code: (err as { code?: string }).code }, 'port failed; removing it');
      void this.removePort(port.name, `failed: ${err.message}`);
    });
    port.start((frames) => this.#fromPort(ingress, frames));
    this.#log.info({ port: port.name, kind: port.kind, mac: formatMac(port.mac) }, 'port added');
    this.#emit({ type: 'port-added', port: this.#portFacts(port.name)! });
  }

  async removePort(name: string, reason = 'removed'): Promise<void> {
    const entry = this.#ports.get(name);
    if (entry === undefined) return;
    this.#ports.delete(name);
    this.table.removePort(name);
    await entry.port.close().catch(() => undefined);
    this.#log.info({ port: name, reason }, 'port removed');
    this.#emit({ type: 'port-removed', name, reason });
  }

  port(name: string): Port | undefined {
    return this.#ports.get(name)?.port;
  }

  // ------------------------------------------------------------ data path

  /** Frames from a VM: they enter the overlay here, so they are counted here. */
  #fromPort(ingress: Ingress, frames: readonly Frame[]): void {
    this.#forwardBatch(ingress, frames, this.counters);
  }

  /** Frames from another daemon: already counted where they entered. */
  #fromLink(ingress: Ingress, frames: readonly Frame[]): void {
    this.#forwardBatch(ingress, frames, undefined);
  }

  #forwardBatch(ingress: Ingress, frames: readonly Frame[], counters: TrafficCounters | undefined): void {
    const table = this.table;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const data = frame.data;
      if (data.length < MIN_FRAME_BYTES) {
        this.stats.runtFrames++;
        continue;
      }
      const src = srcMacOf(data);
      const dst = dstMacOf(data);
      counters?.add(src, dst, data.length);
      this.#deliver(table.forward(src, dst, ingress), frame);
    }
  }

  #deliver(egress: Egress<Port, LinkSlot>, frame: Frame): void {
    if (egress.drop) {
      this.stats.droppedNoRoute++;
      return;
    }
    const ports = egress.ports;
    for (let i = 0; i < ports.length; i++) ports[i]!.send(frame);
    const links = egress.links;
    for (let i = 0; i < links.length; i++) links[i]!.link?.send(frame);
  }

  // ---------------------------------------------------------------- links

  #adoptInbound(link: Link): void {
    if (this.#closed) {
      void link.close('daemon shutting down');
      return;
    }
    const peer = link.peerHost;
    const existing = this.#links.get(peer);
    if (existing?.link !== undefined) {
      // One link per peer. If both sides dialled at once, the lower host id's
      // outbound link wins on both ends, so the two sides agree.
      const keepInbound = existing.direction === 'outbound' ? peer < this.hostId : true;
      if (!keepInbound) {
        void link.close('duplicate link: keeping the one dialled by the lower host id');
        return;
      }
      this.#detach(existing, 'replaced by a new inbound link');
    }
    const slot: LinkSlot = existing ?? { peer, kind: link.kind, link: undefined, direction: 'inbound', reconnects: 0, dialer: undefined };
    if (existing !== undefined && existing.link === undefined && existing.dialer !== undefined) {
      // We were dialling this peer and it dialled us first: take its link and stop dialling.
      this.#stopDialer(existing);
    }
    slot.direction = 'inbound';
    slot.kind = link.kind;
    this.#links.set(peer, slot);
    this.#attach(slot, link);
  }

  #attach(slot: LinkSlot, link: Link): void {
    slot.link = link;
    const ingress = this.table.addLink(slot.peer, slot.kind, slot);
    link.onFrames((frames) => this.#fromLink(ingress, frames));
    link.onClose((err) => this.#onLinkClosed(slot, link, err));
    this.#log.info({ peer: slot.peer, kind: slot.kind, direction: slot.direction }, 'link up');
    this.#emit({ type: 'link-up', peer: slot.peer, kind: slot.kind });
  }

  #detach(slot: LinkSlot, reason: string): void {
    const link = slot.link;
    if (link === undefined) return;
    slot.link = undefined;
    this.table.removeLink(slot.peer);
    void link.close(reason);
    this.#emit({ type: 'link-down', peer: slot.peer, kind: slot.kind, reason });
  }

  #onLinkClosed(slot: LinkSlot, link: Link, err: Error | undefined): void {
    if (slot.link !== link) return; // an old link we already replaced
    slot.link = undefined;
    this.table.removeLink(slot.peer);
    const reason = err?.message ?? 'closed';
    this.stats.decodeErrors += link.stats.decodeErrors;
    if (err !== undefined) {
      const code = (err as { code?: string }).code ?? 'unknown';
      this.stats.linkFailures++;
      this.stats.linkFailuresByCode[code] = (this.stats.linkFailuresByCode[code] ?? 0) + 1;
    }
    this.#log.warn({ peer: slot.peer, kind: slot.kind, reason, code: (err as { code?: string } | undefined)?.code }, 'link down');
    this.#emit({ type: 'link-down', peer: slot.peer, kind: slot.kind, reason });
    if (this.#closed) return;
    if (slot.dialer !== undefined) this.#scheduleDial(slot);
    else if (this.#links.get(slot.peer) === slot) this.#links.delete(slot.peer);
  }

  /** Keep an outbound link to `peer` up until `#undial`. */
  #dial(peer: string, kind: LinkKind, address: { host: string; port: number }, peerUnknown = false): void {
    const slot: LinkSlot = {
      peer,
      kind,
      link: undefined,
      direction: 'outbound',
      reconnects: 0,
      dialer: { address, backoff: new Backoff(this.#init.reconnect ?? { initialMs: 200, maxMs: 10_000 }), timer: undefined, abort: undefined },
    };
    this.#links.set(peer, slot);
    void this.#attempt(slot, peerUnknown);
  }

  async #attempt(slot: LinkSlot, peerUnknown = false): Promise<void> {
    const dialer = slot.dialer;
    if (dialer === undefined || this.#closed) return;
    dialer.timer = undefined;
    dialer.abort = new AbortController();
    try {
      const link = await this.#transport.connect({
        host: dialer.address.host,
        port: dialer.address.port,
        kind: slot.kind,
        ...(peerUnknown ? {} : { expectedPeer: slot.peer }),
        signal: dialer.abort.signal,
      });
      if (slot.dialer !== dialer || this.#closed || slot.link !== undefined) {
        void link.close('no longer wanted');
        return;
      }
      if (peerUnknown && link.peerHost !== slot.peer) {
        // The hub's id was not configured: learn it from its hello.
        this.#links.delete(slot.peer);
        slot.peer = link.peerHost;
        this.#links.set(slot.peer, slot);
      }
      dialer.backoff.reset();
      this.#attach(slot, link);
    } catch (err) {
      if (slot.dialer !== dialer || this.#closed) return;
      this.#log.warn({ peer: slot.peer, address: dialer.address, err: (err as Error).message, code: (err as { code?: string }).code }, 'dial failed');
      this.#scheduleDial(slot, peerUnknown);
    } finally {
      dialer.abort = undefined;
    }
  }

  #scheduleDial(slot: LinkSlot, peerUnknown = false): void {
    const dialer = slot.dialer;
    if (dialer === undefined || dialer.timer !== undefined || this.#closed) return;
    const delay = dialer.backoff.next();
    slot.reconnects++;
    dialer.timer = this.#clock.setTimeout(() => void this.#attempt(slot, peerUnknown), delay);
  }

  #stopDialer(slot: LinkSlot): void {
    const d = slot.dialer;
    if (d === undefined) return;
    slot.dialer = undefined;
    d.timer?.cancel();
    d.abort?.abort();
  }

  /** Replace the fast-path links: dial the new ones we own, drop the ones no longer wanted. */
  applyFastPathLinks(version: number, links: readonly DesiredLink[]): void {
    const next = new Map(links.map((l) => [l.peer, l] as const));
    for (const [peer] of this.#desiredFastPath) {
      if (next.has(peer)) continue;
      const slot = this.#links.get(peer);
      if (slot === undefined || slot.kind !== 'fast-path') continue;
      this.#stopDialer(slot);
      this.#detach(slot, 'fast-path link removed');
      this.#links.delete(peer);
      this.#log.info({ peer }, 'fast-path link removed');
    }
    for (const [peer, want] of next) {
      if (peer === this.hostId) continue;
      const existing = this.#links.get(peer);
      if (existing !== undefined) continue; // up, dialling, or a backbone link already joins us
      const dials = want.dial ?? this.hostId < peer;
      if (dials) {
        this.#log.info({ peer, address: want.address, reason: want.reason }, 'dialling fast-path link');
        this.#dial(peer, 'fast-path', want.address);
      }
    }
    this.#desiredFastPath = next;
    this.#linksVersion = version;
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

  // ---------------------------------------------------------------- facts

  takeTrafficSnapshot(): TrafficSnapshot {
    const snap = this.counters.snapshotAndReset(this.#clock.wallNow());
    return { host: this.hostId, startMs: snap.startMs, endMs: snap.endMs, entries: snap.entries };
  }

  facts(): DaemonFacts {
    return {
      hostId: this.hostId,
      role: this.role,
      site: this.site,
      listen: this.listenAddress,
      ports: [...this.#ports.keys()].map((n) => this.#portFacts(n)!),
      links: [...this.#links.values()].map((s) => this.#linkFacts(s)),
      rulesVersion: this.#rulesVersion,
      linksVersion: this.#linksVersion,
    };
  }

  link(peer: string): Link | undefined {
    return this.#links.get(peer)?.link;
  }

  onEvent(handler: (event: DaemonEvent) => void): () => void {
    this.#listeners.add(handler);
    return () => this.#listeners.delete(handler);
  }

  #emit(event: DaemonEvent): void {
    for (const h of this.#listeners) {
      try {
        h(event);
      } catch (err) {
        this.#log.error({ err }, 'event handler threw');
      }
    }
  }

  #portFacts(name: string): PortFacts | undefined {
    const e = this.#ports.get(name);
    if (e === undefined) return undefined;
    const s = e.port.stats;
    return {
      name,
      kind: e.port.kind,
      mac: formatMac(e.port.mac),
      ip: e.ip,
      mtu: e.port.mtu,
      rxFrames: s.rxFrames,
      rxBytes: s.rxBytes,
      txFrames: s.txFrames,
      txBytes: s.txBytes,
      txDropped: s.txDropped,
    };
  }

  #linkFacts(slot: LinkSlot): LinkFacts {
    const s = slot.link?.stats;
    return {
      peer: slot.peer,
      kind: slot.kind,
      state: slot.link !== undefined ? 'up' : slot.dialer !== undefined ? 'connecting' : 'down',
      direction: slot.direction,
      ...linkCounters(s),
      reconnects: slot.reconnects,
    };
  }

  // ------------------------------------------------------------- shutdown

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#agingTimer?.cancel();
    for (const slot of this.#links.values()) {
      this.#stopDialer(slot);
      const link = slot.link;
      slot.link = undefined;
      if (link !== undefined) await link.close('daemon shutting down').catch(() => undefined);
    }
    this.#links.clear();
    await this.#listener?.close();
    for (const { port } of this.#ports.values()) await port.close().catch(() => undefined);
    this.#ports.clear();
    this.#log.info('daemon stopped');
  }
}
