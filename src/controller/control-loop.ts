import type { Logger } from '../common/logger.ts';
import { formatMac } from '../common/mac.ts';
import type { DaemonFacts, RuleSpec } from '../control/daemon-control.ts';
import { factsFromWire, type HelloMessage } from '../control/control-protocol.ts';
import { negotiateFeatures } from '../control/control-features.ts';
import { PATCH_REFUSALS } from '../control/rule-patch.ts';
import type { TrafficReport } from '../topology/traffic-report.ts';
import { INITIAL_ADAPTATION, planFastPaths, vmNamesByMac, type AdaptationState } from './adaptation-planner.ts';
import { Applier } from './applier.ts';
import type { ControlHandler, ControlSession, SessionInput } from './control-server.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import type { PlacementMove } from './api-views.ts';
import type { SecurityReport } from './api-events.ts';
import { combineEffects, event, noEffects, type Effects } from './effects.ts';
import { NotFoundError } from './errors.ts';
import type { ControllerEventLog } from './event-log.ts';
import { LinkReports } from './link-reports.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { PlacementSource } from './placement-advisor.ts';
import { INITIAL_PLACEMENT_PLAN, placementDue, planPlacement, type PlacementPlanState } from './placement-planner.ts';
import { EMPTY_VERDICT, backboneSignature, planHubWatch, type BackboneVerdict } from './hub-status.ts';
import { SessionTable } from './session-table.ts';
import type { ControllerStore } from './store/store.ts';
import type { TopologyTracker } from './topology-tracker.ts';
import { planTopology } from './topology-planner.ts';
import { planVmLearning, storeVmLookup, type VmLookup } from './vm-learning.ts';
import { hostView, linkView, vmView, type LinkRate } from './views.ts';
import { MigrationDriver } from './migration-driver.ts';
import { DEFAULT_MIGRATION_TIMEOUTS, type MigrationTimeouts } from './migration-run.ts';
import { dialableFacts } from './dial-address.ts';
import type { ImageDistribution } from './image-distribution.ts';
import type { ImageManifest } from '../images/manifest.ts';
import { Reconciler } from './loop-reconcile.ts';
import { factsChanged } from './stored-facts.ts';
import type { LinkReportRecord } from './store/records.ts';

/**
 * The controller's loop: what daemons report and the update period go to the
 * planners, and what the planners return goes to the applier.
 *
 *   session opened  ─▶ host up, facts ─▶ hub watch ─▶ VM learning ─▶ reconcile
 *   facts           ─▶ link reports and rates (memory), facts stored if more than
 *                      counters changed ─▶ VM learning ─▶ reconcile if a VM moved
 *                   ─▶ hub watch (hub-status.ts) ─▶ reconcile if a spoke changed hub
 *   traffic report  ─▶ (valid: checked by the control server) buffered for the period
 *   ack             ─▶ session table, store ─▶ migrations waiting for acks
 *   migration report ─▶ migration coordinator (migration-coordinator.ts, via migration-driver.ts)
 *   hello with images, a publish ─▶ image-hold (image-distribution.ts)
 *   image progress  ─▶ image catalog (the site's replica row)
 *   update period   ─▶ the period's reports stored, in one write ─▶ topology (VTTIF) ─▶ adaptation
 *                   ─▶ placement advice (─▶ auto-migrate)
 *                   ─▶ traffic-updated ─▶ pruning ─▶ reconcile if dirty or not converged
 *                   ─▶ migration timeouts
 *   reconcile       ─▶ desired state, versions, pushes (reconcile-planner.ts)
 *
 * State here is what the planners hand back between calls (the session
 * table, adaptation's and placement's memories, the buffered reports) and
 * the leader's soft state, rebuilt from the daemons' next reports after a
 * leader change: link reports and rates (link-reports.ts), when each daemon
 * last reported. The registry is the store.
 */

export interface ControlLoopComponents {
  store: ControllerStore;
  events: ControllerEventLog;
  metrics: ControllerMetrics;
  topology: TopologyTracker;
  logger: Logger;
  /** Wall-clock milliseconds. */
  wallClock: () => number;
  /** Placement advice each update period (none: no proposals). */
  placement?: PlacementSource;
  /** Image propagation between the sites' chunk servers (none: image holds are never sent). */
  images?: ImageDistribution;
}

export interface ControlLoopInit {
  policy: Readonly<DeploymentPolicy>;
  /** Re-send a push that has had no ack for this long (default 3 update periods). */
  resendAfterMs?: number;
  /** Traffic samples older than this are pruned (default 10 × smoothing interval). */
  trafficRetentionMs?: number;
  /** How often placement advice is recomputed (default 10 update periods). */
  placementIntervalMs?: number;
  /** The migration coordinator's timeouts (defaults: migration-run.ts; the link cleanup grace is 5 update periods). */
  migration?: Partial<MigrationTimeouts>;
  /** Migration ids (tests). */
  newMigrationId?: () => string;
  /** Hosts reached only over VXLAN (OVS bridges, docs/openflow.md): their fast paths are tunnel ports, not dialled links. */
  vxlanHosts?: ReadonlySet<string>;
}

export class ControlLoop implements ControlHandler {
  readonly #c: ControlLoopComponents;
  readonly #init: ControlLoopInit;
  readonly #sessions = new SessionTable();
  readonly #applier: Applier;
  readonly #migrations: MigrationDriver;
  /** The registry as VM learning reads it on every facts report: indexed lookups, no scan of every VM. */
  readonly #registry: VmLookup;
  /** What the daemons last reported of their links, and the rates: never stored (link-reports.ts). */
  readonly #links = new LinkReports();
  /** When each connected daemon last reported (stored when it connects or leaves, not per report). */
  readonly #lastSeen = new Map<string, number>();
  #backbone: BackboneVerdict = EMPTY_VERDICT;
  #adaptation: AdaptationState = INITIAL_ADAPTATION;
  #placement: PlacementPlanState = INITIAL_PLACEMENT_PLAN;
  #reports: TrafficReport[] = [];
  /** Desired state planned and pushed (loop-reconcile.ts). */
  readonly #reconciler: Reconciler;
  /** Something desired state depends on changed since the last reconcile. */
  #dirty = true;
  /** The period's traffic samples, written together at its end (later while a cutover is in flight), and since when the update period waits (at most one period). */
  #heldSamples: Effects['writes'] = [];
  #periodHeldSince: number | undefined;

  constructor(components: ControlLoopComponents, init: ControlLoopInit) {
    this.#c = components;
    this.#init = init;
    this.#registry = storeVmLookup(components.store);
    this.#applier = new Applier({ store: components.store, events: components.events, sessions: this.#sessions, metrics: components.metrics, logger: components.logger });
    this.#reconciler = new Reconciler({ store: components.store, sessions: this.#sessions, applier: this.#applier, metrics: components.metrics, wallClock: components.wallClock }, {
      resendAfterMs: init.resendAfterMs ?? 3 * init.policy.updatePeriodMs,
      ...(init.vxlanHosts !== undefined ? { vxlanHosts: init.vxlanHosts } : {}),
    });
    this.#migrations = new MigrationDriver({
      store: components.store, sessions: this.#sessions, applier: this.#applier, wallClock: components.wallClock,
      reconcile: (why) => this.reconcile(why), linkUp: (a, b) => this.#links.up(a, b),
      ...(init.newMigrationId !== undefined ? { newId: init.newMigrationId } : {}),
    }, { ...DEFAULT_MIGRATION_TIMEOUTS, cleanupGraceMs: 5 * init.policy.updatePeriodMs, ...init.migration });
  }

  /** The migration coordinator: start, cancel, its runs (the operator's commands go through the service). */
  get migrations(): MigrationDriver {
    return this.#migrations;
  }

  /** Link rates (both directions summed), keyed by pairKey(a, b). */
  linkRates(): Map<string, LinkRate> {
    return this.#links.rates();
  }

  /** What each end of the link between `a` and `b` last reported of it. */
  linkEnds(a: string, b: string): LinkReportRecord[] {
    return this.#links.ends(a, b);
  }

  /** When a connected daemon last reported (undefined: not connected here; the store has when it connected or left). */
  lastSeen(host: string): number | undefined {
    return this.#lastSeen.get(host);
  }

  /** The daemon's version of each desired set, as far as we know (undefined if not connected). */
  appliedVersions(host: string): { linksVersion: number; rulesVersion: number } | undefined {
    return this.#sessions.appliedVersions(host);
  }

  connectedHosts(): string[] {
    return this.#sessions.connectedHosts();
  }

  // ---- ControlHandler ------------------------------------------------------

  sessionOpened(session: ControlSession, hello: HelloMessage): void {
    this.sessionsOpened([{ session, hello }]);
  }

  /** Daemons welcomed in one batch (control-server.ts): each as `sessionOpened`, with one reconcile for them all. */
  sessionsOpened(opened: ReadonlyArray<{ session: ControlSession; hello: HelloMessage }>): void {
    const now = this.#c.wallClock();
    for (const { session, hello } of opened) {
      const facts = dialableFacts(factsFromWire(hello.facts), session.remoteAddress);
      this.#sessions.open(session, facts, negotiateFeatures(hello.features).has('rule-patches'));
      this.#c.metrics.recordFacts(facts);
      this.#links.report(session.hostId, facts.links, now);
      this.#lastSeen.set(session.hostId, now);
      const up = noEffects();
      up.writes.push({ op: 'host-connected', host: session.hostId, connected: true, atMs: now }, { op: 'host-facts', facts, atMs: now });
      const learned = this.#learn(facts, now);
      this.#applier.apply(up);
      this.#applier.apply(learned);
    }
    // One hub watch for the batch: it reads every host, so one per welcome made a mass connect O(hosts²).
    this.#hostsChanged(opened.map(({ session }) => session.hostId));
    this.reconcile(opened.length === 1 ? 'daemon connected' : `${opened.length} daemons connected`);
    for (const { session, hello } of opened) {
      this.#migrations.connected(session.hostId);
      const holds = this.#c.images?.sessionOpened(session.hostId, hello.images, negotiateFeatures(hello.features).has('image-keep')) ?? [];
      if (holds.length > 0) this.#applier.apply({ ...noEffects(), messages: holds });
    }
  }

  /** Image versions were deleted (durably): every site's chunk server is told to release them. */
  imagesDeleted(deleted: ReadonlyArray<{ manifest: ImageManifest; originSite: string }>): void {
    const holds = this.#c.images?.deleted(deleted) ?? [];
    if (holds.length > 0) this.#applier.apply({ ...noEffects(), messages: holds });
  }

  /** A new image version is durable: every site's chunk server is asked to hold it. */
  imagePublished(manifest: ImageManifest, originSite: string): void {
    const holds = this.#c.images?.published(manifest, originSite) ?? [];
    if (holds.length > 0) this.#applier.apply({ ...noEffects(), messages: holds });
  }

  messageReceived(session: ControlSession, message: SessionInput): void {
    if (!this.#sessions.current(session)) return;
    const host = session.hostId;
    const now = this.#c.wallClock();
    switch (message.type) {
      case 'facts': {
        const facts = dialableFacts(factsFromWire(message.facts), session.remoteAddress);
        const previous = this.#c.store.getHost(host);
        const before = previous?.addresses[0];
        if (facts.listen !== undefined && JSON.stringify(facts.listen) !== JSON.stringify(before)) this.#dirty = true;
        this.#c.metrics.recordFacts(facts);
        this.#links.report(host, facts.links, now);
        this.#lastSeen.set(host, now);
        this.#sessions.reported(host, facts);
        const stored = noEffects();
        // Counters alone changing stay in memory: a report costs a store write only when it says something new.
        if (factsChanged(previous?.facts, facts)) stored.writes.push({ op: 'host-facts', facts, atMs: now });
        const learned = this.#learn(facts, now);
        this.#applier.apply(combineEffects(stored, { ...learned, reconcile: undefined }));
        // The hub watch reads every host: only when this host's backbone changed, so a report costs what it carries.
        const hubs = backboneSignature(previous?.facts) === backboneSignature(facts) ? { reconcile: undefined } : this.#watchHubs();
        const why = learned.reconcile ?? hubs.reconcile;
        if (why !== undefined) this.reconcile(why);
        this.#migrations.tick();
        return;
      }
      case 'traffic': {
        const r = message.report;
        this.#reports.push(r);
        this.#lastSeen.set(host, now);
        // Stored with the period's other reports, in the period's one write (tick): a report costs no store
        // transaction of its own — at 1,000 hosts that was 1,000 transactions (etcd flushes) a second.
        this.#heldSamples.push({
          op: 'traffic-samples',
          samples: r.entries.map((x) => ({ host, startMs: r.startMs, endMs: r.endMs, src: formatMac(x.src), dst: formatMac(x.dst), frames: x.frames, bytes: x.bytes })),
        });
        return;
      }
      case 'ack': {
        if (message.ok) {
          this.#sessions.acknowledged(host, message.kind, message.version);
          const e = noEffects();
          e.writes.push({ op: 'ack', host, kind: message.kind, version: message.version });
          if (message.kind === 'rules') e.events.push(event('rules-changed', { host, version: message.version }));
          this.#applier.apply(e);
          this.#migrations.tick();
        } else {
          this.#c.metrics.nacks.inc({ kind: message.kind });
          this.#c.logger.warn({ host, kind: message.kind, version: message.version, code: message.error?.code, detail: message.error?.message }, 'daemon refused a change');
          // A rule-set patch the daemon could not take: the whole set goes at once.
          if (message.kind === 'rules' && PATCH_REFUSALS.has(message.error?.code ?? '')) {
            this.#sessions.patchRefused(host, message.version);
            this.reconcile('a rule-set patch refused');
          }
        }
        return;
      }
      case 'event': {
        const ev = message.event;
        this.#c.logger.debug({ host, event: ev.type }, 'daemon event');
        if (ev.type === 'mac-conflict' || ev.type === 'port-limit') {
          const e = noEffects();
          const { type, ...rest } = ev;
          e.events.push(event('security', { host, report: { kind: type, ...rest } as SecurityReport }));
          this.#applier.apply(e);
        }
        return;
      }
      case 'migration': {
        this.#migrations.report(host, message);
        return;
      }
      case 'image-progress': {
        this.#c.images?.progress(host, message).catch((err: unknown) => {
          this.#c.logger.warn({ host, image: message.imageId, version: message.version, err }, 'image progress not recorded');
        });
        return;
      }
      case 'image-boot-trace': {
        this.#c.images?.bootTrace(host, message);
        return;
      }
      case 'image-uses': {
        this.#c.images?.uses(host, message);
        return;
      }
    }
  }

  sessionClosed(session: ControlSession, _reason: string): void {
    if (!this.#sessions.close(session)) return;
    this.#c.images?.sessionClosed(session.hostId);
    this.#links.hostGone(session.hostId);
    this.#lastSeen.delete(session.hostId);
    const now = this.#c.wallClock();
    const e = noEffects();
    e.writes.push({ op: 'host-connected', host: session.hostId, connected: false, atMs: now });
    this.#applier.apply(e);
    this.#hostChanged(session.hostId);
    this.#migrations.tick();
  }

  /** A host connected or left: its `host-changed` event, after the hub watch has seen it. */
  #hostChanged(id: string): void {
    this.#hostsChanged([id]);
  }

  /** Hosts that connected (a batch) or left: their `host-changed` events, after one hub watch has seen them all. */
  #hostsChanged(ids: readonly string[]): void {
    this.#watchHubs();
    const e = noEffects();
    for (const id of ids) {
      const host = this.#c.store.getHost(id);
      if (host !== undefined) e.events.push(event('host-changed', { host: hostView(host, this.#backbone) }));
    }
    if (e.events.length > 0) this.#applier.apply(e);
  }

  /** Hubs and which hub each spoke is on, from the stored facts (hub-status.ts): events, metrics; returns why to reconcile, if a spoke moved. */
  #watchHubs(): { reconcile: string | undefined } {
    const planned = planHubWatch(this.#backbone, this.#c.store.listHosts());
    const before = this.#backbone;
    this.#backbone = planned.state;
    this.#c.metrics.recordHubs(before, planned.state);
    this.#applier.apply({ ...planned.effects, reconcile: undefined });
    return { reconcile: planned.effects.reconcile };
  }

  /**
   * Put a VM on a host (the migration cutover, or an operator correcting the
   * registry) and reconcile at once: every host's rule for the VM is
   * re-pointed in this same call. `state` 'migrating' pins the VM where it is
   * against what daemons report until the cutover sets it 'running'.
   */
  setVmLocation(mac: string, host: string, state: 'running' | 'migrating' | 'stopped', why: string): void {
    const { store } = this.#c;
    const vm = store.getVm(mac);
    if (vm === undefined) throw new NotFoundError(`VM ${JSON.stringify(mac)}`);
    if (store.getHost(host) === undefined) throw new NotFoundError(`host ${JSON.stringify(host)}`);
    const moved = { ...vm, host, state, updatedMs: this.#c.wallClock() };
    const e = noEffects();
    e.writes.push({ op: 'upsert-vm', vm: moved });
    e.events.push(event('vm-changed', { vm: vmView(moved) }));
    this.#applier.apply(e);
    this.reconcile(`VM ${mac} on ${host} (${state}): ${why}`);
  }

  /**
   * A learned VM whose port left a host that owns its VMs' ports (an OVS
   * bridge: the port is the VM) is removed from the registry; one the
   * deployment file names stays, stopped (VM learning).
   */
  removeVm(mac: string, host: string, why: string): void {
    const vm = this.#c.store.getVm(mac);
    if (vm === undefined || vm.host !== host || vm.source !== 'learned' || vm.state === 'migrating') return;
    const e = noEffects();
    e.writes.push({ op: 'remove-vm', mac });
    e.events.push(event('vm-removed', { mac }));
    this.#applier.apply(e);
    this.reconcile(`VM ${mac} removed from ${host}: ${why}`);
  }

  // ---- reconcile -------------------------------------------------------------

  /** Note that the registry changed behind the loop's back (a direct store write): the next period reconciles. */
  markDirty(): void {
    this.#dirty = true;
  }

  /** A host's desired rules as the reconcile computes them (the store keeps their version and digest, not the rules). */
  desiredRules(host: string): RuleSpec[] {
    return this.#reconciler.desiredRules(host);
  }

  /** Compute desired state, persist new versions, push what each connected daemon lacks (loop-reconcile.ts). */
  reconcile(why: string): void {
    this.#dirty = false;
    this.#reconciler.reconcile(why);
  }

  #writeHeldSamples(): void {
    if (this.#heldSamples.length === 0) return;
    const e = noEffects();
    e.writes.push(...this.#heldSamples);
    this.#heldSamples = [];
    this.#applier.apply(e);
  }

  /**
   * One update period: topology inference on the buffered reports,
   * adaptation, placement, traffic events, pruning, reconcile. While a
   * migration's cutover is in flight (the pause until both sides answered
   * the commit) only the migrations' timeouts run: the rest waits for the
   * cutover's end, one period at most.
   */
  tick(): void {
    const { store } = this.#c;
    const { policy } = this.#init;
    const now = this.#c.wallClock();
    if (this.#migrations.cutoverInFlight() && now - (this.#periodHeldSince ??= now) < policy.updatePeriodMs) {
      this.#migrations.tick();
      return;
    }
    this.#periodHeldSince = undefined;
    this.#writeHeldSamples();
    const reports = this.#reports;
    this.#reports = [];
    const vms = store.listVms();
    const out = this.#c.topology.step(vms, reports, now);
    if (out.rejected.length > 0) this.#c.metrics.malformedMessages.inc({ reason: 'traffic-report' }, out.rejected.length);
    const topo = planTopology(out, now);
    let adapt = noEffects();
    let place = noEffects();
    let moves: PlacementMove[] = [];
    if (out.raw !== undefined) {
      const hosts = store.listHosts();
      const adapted = planFastPaths(this.#adaptation, {
        matrix: out.raw.matrix, registry: out.raw.registry, links: store.listLinks(), hubId: hosts.find((h) => h.role === 'hub')?.id,
        linkReports: this.#links.list(), rates: this.linkRates(), vmNames: vmNamesByMac(vms),
      }, policy, now);
      this.#adaptation = adapted.state;
      adapt = adapted.effects;
    }
    const advisor = this.#c.placement;
    if (advisor !== undefined && (out.raw !== undefined || !advisor.needsTraffic) && placementDue(this.#placement, policy, now, this.#init.placementIntervalMs)) {
      const hadMoves = advisor.view.moves.length > 0;
      const matrix = out.raw?.matrix ?? { ids: [], rates: new Map<number, number>() };
      const placed = planPlacement(advisor.step({ matrix, vms, hosts: store.listHosts() }, now), hadMoves, policy, now);
      this.#placement = placed.state;
      place = placed.effects;
      moves = advisor.view.moves;
    }
    this.#applier.apply(combineEffects(topo, adapt, place));
    if (adapt.reconcile !== undefined) this.#dirty = true;
    if (policy.autoMigrate && moves.length > 0) this.#migrations.autoMigrate(moves, policy);
    const rates = this.linkRates();
    const period = noEffects();
    period.events.push(event('traffic-updated', {
      at: now,
      links: store.listLinks().map((l) => {
        const v = linkView(l, this.#links.ends(l.a, l.b), rates);
        return { a: v.a, b: v.b, bytes: v.bytes, frames: v.frames, bytesPerSec: v.bytesPerSec, framesPerSec: v.framesPerSec };
      }),
      ...(out.due && out.topology.weightsAt !== null ? { topology: { weightsAt: out.topology.weightsAt, edges: out.topology.edges } } : {}),
    }));
    period.writes.push({ op: 'prune-traffic', beforeMs: now - (this.#init.trafficRetentionMs ?? 10 * policy.smoothingIntervalMs) });
    this.#applier.apply(period);
    // Full reconcile only when something changed, or a daemon is not at the desired versions (resends).
    if (this.#dirty || !this.#sessions.converged((h) => store.getVersions(h))) this.reconcile('update period');
    this.#migrations.tick();
  }

  /** VM learning on a daemon's facts, against the registry as stored. */
  #learn(facts: DaemonFacts, now: number): Effects {
    return planVmLearning({ facts, registry: this.#registry }, now);
  }
}
