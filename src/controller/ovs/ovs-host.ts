import type { Clock, TimerHandle } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import { CONTROL_PROTOCOL_VERSION, snapshotFromWire, type ControllerMessage, type HelloMessage, type WireFacts } from '../../control/control-protocol.ts';
import type { RuleSpec } from '../../control/daemon-control.ts';
import { OFPTT_ALL } from '../../openflow/messages.ts';
import type { SwitchConnection } from '../../openflow/switch-connection.ts';
import type { BridgePort } from '../../ovsdb/vswitch.ts';
import { validateReport } from '../../topology/report-validation.ts';
import type { ControlHandler } from '../control-server.ts';
import { OvsSession } from './ovs-session.ts';
import type { BridgeDb } from './bridge-db.ts';
import { bridgeFacts, classifyPorts, type ClassifiedPorts, type PortCounters } from './bridge-ports.ts';
import { BridgeSetupError, FlowInstallError, StatsTimeoutError } from './errors.ts';
import { counterDeltas, type PairCount } from './flow-counters.ts';
import { desiredFlows, planFlowSync, TABLE_CLASSIFY, VNET_COOKIE_TAG, VNET_COOKIE_TAG_MASK } from './flow-plan.ts';
import { planTunnels } from './tunnel-plan.ts';
import type { OvsBridgeConfig, VxlanConfig } from './ovs-deployment.ts';

/**
 * One Open vSwitch host of the deployment, the thin shell around the pure
 * parts (bridge-ports.ts, tunnel-plan.ts, flow-plan.ts, flow-counters.ts).
 * To the control loop it is a daemon's session: it opens while the switch's
 * OpenFlow connection is up, reports facts (the bridge's VM ports and
 * tunnels, from OVSDB's monitor), a traffic report every update period
 * (from the counting flows' statistics), and acknowledges the pushes it is
 * sent once they are in place:
 *
 *   OVSDB    bridge set up (created if missing, fail_mode secure, OpenFlow
 *            1.3, our datapath id, our controller) ─▶ ports read, watched
 *            ─▶ facts; lost: retried every `retryMs`
 *   OpenFlow switch ready ─▶ session opened (versions 0: the controller
 *            pushes its whole desired state, compared with the flows the
 *            switch kept) ─▶ closed with the connection
 *   set-links ─▶ tunnel ports (hub + fast-path peers) added / removed ─▶
 *            flows re-pointed ─▶ ack
 *   set-rules ─▶ flows: adds the switch lacks, BARRIER, stale cookies
 *            swept, BARRIER ─▶ ack (a refusal: a nack naming it)
 *
 * Work is serial: one pass at a time, a request during a pass runs another.
 */

export interface OvsHostComponents {
  handler: ControlHandler;
  logger: Logger;
  clock: Clock;
  /** Wall-clock milliseconds (traffic reports' intervals, as the controller's). */
  wallClock: () => number;
  /** Every VM MAC in the registry (the counted pairs' destinations). */
  vmMacs: () => readonly string[];
  /** A connection to the host's switch database. */
  connectDb: () => Promise<BridgeDb>;
  /** A VM port left the bridge (after the facts without it were reported). */
  portRemoved: (mac: string, host: string, why: string) => void;
  /** The MACs of the VMs the registry places on a host (those gone while the controller was away are removed at its first read). */
  vmsOn: (host: string) => readonly string[];
}

export interface OvsHostInit {
  host: string;
  site: string;
  bridge: OvsBridgeConfig;
  datapathId: bigint;
  hub: string | undefined;
  /** Every host's VTEP address (those that have one). */
  vteps: ReadonlyMap<string, string>;
  vxlan: VxlanConfig;
  /** The controller target written to the bridge (tcp:IP:PORT or ssl:IP:PORT). */
  controllerTarget: string;
  updatePeriodMs: number;
  /** OVSDB reconnection delay (default 2 s), doubled after each failure up to 30 s. */
  retryMs?: number;
}

export class OvsHost {
  readonly #c: OvsHostComponents;
  readonly #init: OvsHostInit;
  readonly #log: Logger;
  #db: BridgeDb | undefined;
  #ports: ClassifiedPorts = { vmPorts: [], tunnels: [] };
  #conn: SwitchConnection | undefined;
  #session: OvsSession | undefined;
  #rules: { version: number; rules: RuleSpec[] } | undefined;
  #links: { version: number; peers: string[] } | undefined;
  #rulesApplied = 0;
  #linksApplied = 0;
  #lastFacts = '';
  /** The bridge's ports have been read once since this controller started. */
  #portsRead = false;
  /** Peers already warned of for lacking a vtep. */
  readonly #noVtepWarned = new Set<string>();
  #portCounters = new Map<number, PortCounters>();
  #counters = new Map<string, PairCount>();
  #lastPollMs: number | undefined;
  #polling = false;
  #busy = false;
  #again = false;
  #poller: TimerHandle | undefined;
  #retry: TimerHandle | undefined;
  #retries = 0;
  #closed = false;

  constructor(components: OvsHostComponents, init: OvsHostInit) {
    this.#c = components;
    this.#init = init;
    this.#log = components.logger.child({ ovsHost: init.host });
  }

  get host(): string {
    return this.#init.host;
  }

  get datapathId(): bigint {
    return this.#init.datapathId;
  }

  /** Whether the switch's OpenFlow connection is up. */
  get connected(): boolean {
    return this.#session !== undefined;
  }

  start(): void {
    this.#poller = this.#c.clock.setInterval(() => void this.#poll(), this.#init.updatePeriodMs);
    void this.#connectDb();
  }

  /** The switch of this host finished its handshake. */
  attach(conn: SwitchConnection): void {
    if (this.#closed) return conn.close();
    this.#detach('replaced by a new connection');
    const session = new OvsSession(this.#init.host, conn.remote, (m) => this.#receive(m));
    this.#conn = conn;
    this.#session = session;
    this.#counters = new Map();
    this.#lastPollMs = undefined;
    conn.once('close', (err) => {
      if (this.#conn === conn) this.#detach(err?.message ?? 'switch disconnected');
    });
    const hello: HelloMessage = { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: this.#init.host, facts: this.#facts() };
    this.#log.info({ datapath: conn.datapathId.toString(16), remote: conn.remote }, 'OVS switch connected');
    this.#c.handler.sessionOpened(session, hello);
    this.#schedule();
  }

  /** A push from the control loop (through the session). */
  #receive(message: ControllerMessage): void {
    if (message.type === 'set-rules') {
      this.#rules = { version: message.version, rules: message.rules.map((r) => ({ ...r })) };
      this.#schedule();
    } else if (message.type === 'set-links') {
      this.#links = { version: message.version, peers: message.links.map((l) => l.peer) };
      this.#schedule();
    } else if (message.type !== 'welcome') {
      this.#log.debug({ type: message.type }, 'message an OVS host does not act on: ignored');
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#poller?.cancel();
    this.#retry?.cancel();
    this.#detach('controller stopping');
    this.#db?.close();
    this.#db = undefined;
  }

  #detach(reason: string): void {
    const session = this.#session;
    const conn = this.#conn;
    this.#session = undefined;
    this.#conn = undefined;
    if (session === undefined) return;
    session.closed = true;
    conn?.close();
    this.#log.info({ reason }, 'OVS switch disconnected');
    this.#c.handler.sessionClosed(session, reason);
  }

  // ---- OVSDB ----------------------------------------------------------------

  async #connectDb(): Promise<void> {
    if (this.#closed) return;
    const { bridge } = this.#init;
    let db: BridgeDb | undefined;
    try {
      db = await this.#c.connectDb();
      if (this.#closed) return db.close();
      db.onLost((err) => {
        this.#log.warn({ err: new BridgeSetupError(this.#init.host, `OVSDB connection lost: ${err.message}`, { cause: err }) }, 'OVSDB lost: reconnecting (the switch keeps forwarding)');
        if (this.#db === db) this.#db = undefined;
        this.#retryDb();
      });
      await db.ensureBridge({
        bridge: bridge.bridge, datapathType: bridge.datapathType, datapathId: this.#init.datapathId, controller: this.#init.controllerTarget, host: this.#init.host,
      });
      await db.watch(() => this.#schedule());
      this.#db = db;
      this.#retries = 0;
      this.#log.info({ bridge: bridge.bridge, ovsdb: bridge.ovsdb }, 'OVS bridge set up');
      this.#schedule();
    } catch (err) {
      this.#log.warn({ err: new BridgeSetupError(this.#init.host, `bridge ${bridge.bridge} at ${bridge.ovsdb}: ${(err as Error).message}`, { cause: err }) }, 'OVS bridge not set up: retrying');
      if (db !== undefined && this.#db !== db) db.close();
      this.#retryDb();
    }
  }

  #retryDb(): void {
    if (this.#closed) return;
    const base = this.#init.retryMs ?? 2000;
    const delay = Math.min(Math.max(base, 30_000), base * 2 ** Math.min(this.#retries++, 10));
    this.#retry = this.#c.clock.setTimeout(() => void this.#connectDb(), delay);
  }

  // ---- the serial pass ------------------------------------------------------

  #schedule(): void {
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          await this.#pass();
        } while (this.#again && !this.#closed);
      } finally {
        this.#busy = false;
      }
    })();
  }

  /** Ports read, tunnels made what the links want, facts reported, flows brought in line, pushes acknowledged. */
  async #pass(): Promise<void> {
    const db = this.#db;
    if (db !== undefined) {
      try {
        let ports = await db.ports(this.#init.bridge.bridge);
        const plan = planTunnels(classifyPorts(ports).tunnels, this.#wantedPeers(), this.#init.vteps, this.#links !== undefined);
        for (const p of plan.missingVtep) {
          if (this.#noVtepWarned.has(p)) continue;
          this.#noVtepWarned.add(p);
          this.#log.warn({ peer: p }, 'no vtep for this peer in the deployment: no tunnel to it (its VMs are reached through the hub)');
        }
        for (const name of plan.remove) await db.removePort(this.#init.bridge.bridge, name);
        for (const t of plan.add) await db.addTunnel(this.#init.bridge.bridge, { ...t, vni: this.#init.vxlan.vni, dstPort: this.#init.vxlan.port });
        if (plan.add.length > 0 || plan.remove.length > 0) ports = await db.ports(this.#init.bridge.bridge);
        this.#setPorts(ports);
      } catch (err) {
        this.#log.warn({ err: new BridgeSetupError(this.#init.host, `ports of bridge ${this.#init.bridge.bridge}: ${(err as Error).message}`, { cause: err }) }, 'OVS bridge ports not read');
      }
    }
    await this.#syncFlows();
  }

  #wantedPeers(): string[] {
    const peers = new Set(this.#links?.peers ?? []);
    if (this.#init.hub !== undefined) peers.add(this.#init.hub);
    peers.delete(this.#init.host);
    return [...peers].sort();
  }

  #setPorts(ports: readonly BridgePort[]): void {
    const bridge = this.#init.bridge.bridge;
    const before = this.#portsRead
      ? this.#ports.vmPorts.map((p) => ({ mac: p.mac, why: `port ${p.name} left bridge ${bridge}` }))
      : this.#c.vmsOn(this.#init.host).map((mac) => ({ mac, why: `no port on bridge ${bridge} at the controller's start` }));
    this.#portsRead = true;
    this.#ports = classifyPorts(ports);
    const facts = this.#facts();
    const text = JSON.stringify(bridgeFacts({ id: this.#init.host, site: this.#init.site, hub: this.#init.hub }, this.#ports, { rulesVersion: 0, linksVersion: 0 }));
    if (text === this.#lastFacts) return;
    this.#lastFacts = text;
    if (this.#session !== undefined) this.#c.handler.messageReceived(this.#session, { type: 'facts', facts });
    const now = new Set(this.#ports.vmPorts.map((p) => p.mac));
    for (const p of before) if (!now.has(p.mac)) this.#c.portRemoved(p.mac, this.#init.host, p.why);
  }

  #facts(): WireFacts {
    return bridgeFacts({ id: this.#init.host, site: this.#init.site, hub: this.#init.hub }, this.#ports, { rulesVersion: this.#rulesApplied, linksVersion: this.#linksApplied }, this.#portCounters);
  }

  async #syncFlows(): Promise<void> {
    const conn = this.#conn;
    const session = this.#session;
    const rules = this.#rules;
    if (conn === undefined || session === undefined || rules === undefined) return;
    const links = this.#links;
    const tunnels = new Map(this.#ports.tunnels.filter((t) => t.ofport !== undefined).map((t) => [t.peer, t.ofport!] as const));
    const desired = desiredFlows({
      host: this.#init.host, vmPorts: this.#ports.vmPorts, tunnels, hub: this.#init.hub,
      rules: rules.rules, rulesVersion: rules.version, vmMacs: this.#c.vmMacs(),
    });
    try {
      const installed = await conn.flowStats({ tableId: OFPTT_ALL, cookie: VNET_COOKIE_TAG, cookieMask: VNET_COOKIE_TAG_MASK });
      const plan = planFlowSync(desired, installed);
      if (plan.adds.length > 0) await conn.apply(plan.adds);
      if (plan.sweep.length > 0) await conn.apply(plan.sweep);
      if (plan.adds.length > 0 || plan.sweep.length > 0) {
        this.#log.info({ version: rules.version, added: plan.adds.length, kept: plan.kept, swept: plan.staleCookies.length }, 'OVS flows in place');
      }
    } catch (err) {
      const error = new FlowInstallError(this.#init.host, `flows of rules version ${rules.version}: ${(err as Error).message}`, { cause: err });
      this.#log.warn({ err: error }, 'OVS flows not installed');
      if (this.#session === session && this.#rulesApplied !== rules.version) {
        this.#c.handler.messageReceived(session, { type: 'ack', kind: 'rules', version: rules.version, ok: false, error: { code: error.code, message: error.message.slice(0, 4096) } });
      }
      return;
    }
    if (this.#session !== session) return;
    for (const s of desired.skipped) this.#log.debug({ rule: s.rule, why: s.why }, 'rule without a flow');
    if (this.#rulesApplied !== rules.version) {
      this.#rulesApplied = rules.version;
      this.#c.handler.messageReceived(session, { type: 'ack', kind: 'rules', version: rules.version, ok: true });
    }
    // Links are in place once every wanted peer with a vtep has a numbered tunnel port.
    if (links !== undefined && this.#linksApplied !== links.version && links.peers.every((p) => tunnels.has(p) || !this.#init.vteps.has(p))) {
      this.#linksApplied = links.version;
      this.#c.handler.messageReceived(session, { type: 'ack', kind: 'links', version: links.version, ok: true });
    }
  }

  // ---- traffic ---------------------------------------------------------------

  /**
   * Every update period, as a daemon does: the counting flows' statistics ─▶
   * one traffic report (validated, as a daemon's is); the ports' statistics
   * ─▶ facts with their counters (the links' rates).
   */
  async #poll(): Promise<void> {
    const conn = this.#conn;
    const session = this.#session;
    if (conn === undefined || session === undefined || this.#polling) return;
    this.#polling = true;
    try {
      const stats = await this.#bounded(conn.flowStats({ tableId: TABLE_CLASSIFY, cookie: VNET_COOKIE_TAG, cookieMask: VNET_COOKIE_TAG_MASK }));
      const now = this.#c.wallClock();
      const { entries, next } = counterDeltas(this.#counters, stats);
      const start = this.#lastPollMs;
      this.#counters = next;
      this.#lastPollMs = now;
      if (start !== undefined && now > start && this.#session === session) {
        const valid = validateReport(snapshotFromWire(this.#init.host, { startMs: start, endMs: now, entries }));
        if (valid.ok) this.#c.handler.messageReceived(session, { type: 'traffic', report: valid.report });
        else this.#log.warn({ code: valid.error.code, detail: valid.error.message }, 'OVS traffic report rejected');
      }
      const portStats = await this.#bounded(conn.portStats());
      if (this.#session !== session) return;
      this.#portCounters = new Map(portStats.map((p) => [p.portNo, p] as const));
      this.#c.handler.messageReceived(session, { type: 'facts', facts: this.#facts() });
    } catch (err) {
      this.#log.debug({ err }, 'OVS flow statistics not read (the switch is going away?)');
    } finally {
      this.#polling = false;
    }
  }

  /** A switch's answer, or a rejection after STATS_PERIODS update periods (at least STATS_MIN_MS): one unanswered read never stops the polls. */
  #bounded<T>(p: Promise<T>): Promise<T> {
    const ms = Math.max(STATS_MIN_MS, STATS_PERIODS * this.#init.updatePeriodMs);
    return new Promise<T>((resolve, reject) => {
      const timer = this.#c.clock.setTimeout(() => reject(new StatsTimeoutError(this.#init.host, `statistics not answered within ${ms} ms`)), ms);
      p.then((v) => { timer.cancel(); resolve(v); }, (err: unknown) => { timer.cancel(); reject(err as Error); });
    });
  }
}

/** How long a statistics read may take before its period is given up (the next one asks again): 5 update periods, at least 10 s. */
const STATS_PERIODS = 5;
const STATS_MIN_MS = 10_000;
