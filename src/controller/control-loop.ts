import type { Logger } from '../common/logger.ts';
import type { DaemonFacts, TrafficSnapshot } from '../control/daemon-control.ts';
import { factsFromWire, snapshotFromWire, type HelloMessage } from '../control/control-protocol.ts';
import type { ControlHandler, ControlSession, SessionMessage } from './control-server.ts';
import type { ControllerEventLog } from './event-log.ts';
import type { ControllerMetrics } from './metrics.ts';
import { hostView, linkView, pairKey, vmView, type LinkRate } from './views.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import { desiredState, nextVersions, planPushes, ruleChanges, type HostDesiredState, type SessionProgress } from './reconcile.ts';
import type { ControllerStore } from './store/store.ts';
import type { VmRecord } from './store/records.ts';
import { NotFoundError } from './errors.ts';
import type { TopologyTracker } from './topology-tracker.ts';
import { planAdaptation } from './adaptation-planner.ts';
import { PENDING_NO_COORDINATOR, type PlacementAdvisor } from './placement-advisor.ts';
import { validateReport } from '../topology/report-validation.ts';
import type { SmoothedMatrix } from '../topology/smoothing.ts';
import type { RegistryIndex } from '../topology/vm-registry.ts';

/**
 * The controller shell around the pure reconcile: it keeps one record per
 * connected daemon (what it reported and acknowledged, what is in flight),
 * writes what daemons report to the store, and after every change — a
 * daemon connecting, a VM moving, an operator's link, the periodic tick —
 * runs `reconcile()`: desired state from the registry, versions bumped where
 * it changed (persisted with the rules, in one transaction), and the pushes
 * that bring each connected daemon to it.
 */

export interface ControllerCoreComponents {
  store: ControllerStore;
  events: ControllerEventLog;
  metrics: ControllerMetrics;
  topology: TopologyTracker;
  logger: Logger;
  /** Wall-clock milliseconds. */
  wallClock: () => number;
  /** Placement advice each update period (none: no proposals). */
  placement?: PlacementAdvisor;
}

export interface ControllerCoreInit {
  policy: Readonly<DeploymentPolicy>;
  /** Re-send a push that has had no ack for this long (default 3 update periods). */
  resendAfterMs?: number;
  /** Traffic samples older than this are pruned (default 10 × smoothing interval). */
  trafficRetentionMs?: number;
  /**
   * How often placement advice is recomputed (default 10 update periods): a
   * migration takes minutes, so advice every period buys nothing, and at
   * 10,000 VMs one computation costs a few hundred ms.
   */
  placementIntervalMs?: number;
}

interface SessionState {
  session: ControlSession;
  progress: SessionProgress;
}

interface CounterSample {
  atMs: number;
  txBytes: number;
  txFrames: number;
}

export class ControllerCore implements ControlHandler {
  readonly #c: ControllerCoreComponents;
  readonly #init: ControllerCoreInit;
  readonly #log: Logger;
  readonly #sessions = new Map<string, SessionState>();
  /** Last cumulative tx counters per (host, peer), for rates. */
  readonly #counters = new Map<string, CounterSample>();
  /** Per-direction rates, keyed host\0peer. */
  readonly #directed = new Map<string, LinkRate>();
  #reports: TrafficSnapshot[] = [];
  /** Host pairs adaptation last reported as held back by the budget (a decision is logged when this set changes). */
  #notChosenKey = '';
  /** When placement advice last ran (wall ms). */
  #placementAt = Number.NEGATIVE_INFINITY;
  /** Something desired state depends on changed since the last reconcile. */
  #dirty = true;

  constructor(components: ControllerCoreComponents, init: ControllerCoreInit) {
    this.#c = components;
    this.#init = init;
    this.#log = components.logger;
  }

  /** Link rates (both directions summed), keyed by pairKey(a, b). */
  linkRates(): Map<string, LinkRate> {
    const out = new Map<string, LinkRate>();
    for (const [key, r] of this.#directed) {
      const [host, peer] = key.split('\u0000') as [string, string];
      const k = pairKey(host, peer);
      const prev = out.get(k) ?? { bytesPerSec: 0, framesPerSec: 0 };
      out.set(k, { bytesPerSec: prev.bytesPerSec + r.bytesPerSec, framesPerSec: prev.framesPerSec + r.framesPerSec });
    }
    return out;
  }

  /** The daemon's version of each desired set, as far as we know (undefined if not connected). */
  appliedVersions(host: string): { linksVersion: number; rulesVersion: number } | undefined {
    const s = this.#sessions.get(host);
    return s === undefined ? undefined : { linksVersion: s.progress.linksVersion, rulesVersion: s.progress.rulesVersion };
  }

  connectedHosts(): string[] {
    return [...this.#sessions.keys()].sort();
  }

  // ---- ControlHandler ------------------------------------------------------

  sessionOpened(session: ControlSession, hello: HelloMessage): void {
    const facts = factsFromWire(hello.facts);
    const now = this.#c.wallClock();
    this.#sessions.set(session.hostId, {
      session,
      progress: { linksVersion: facts.linksVersion, rulesVersion: facts.rulesVersion, linksInFlight: undefined, rulesInFlight: undefined },
    });
    this.#c.store.transaction(() => {
      this.#c.store.setHostConnected(session.hostId, true, now);
      this.#c.store.recordHostFacts(facts, now);
    });
    this.#c.metrics.recordFacts(facts);
    this.#emitHost(session.hostId);
    this.#learnVms(facts, now);
    this.reconcile('daemon connected');
  }

  messageReceived(session: ControlSession, message: SessionMessage): void {
    const state = this.#sessions.get(session.hostId);
    if (state === undefined || state.session !== session) return;
    const now = this.#c.wallClock();
    switch (message.type) {
      case 'facts': {
        const facts = factsFromWire(message.facts);
        const before = this.#c.store.getHost(session.hostId)?.addresses[0];
        this.#c.store.recordHostFacts(facts, now);
        if (facts.listen !== undefined && JSON.stringify(facts.listen) !== JSON.stringify(before)) this.#dirty = true;
        this.#c.metrics.recordFacts(facts);
        this.#updateRates(facts, now);
        // What the daemon runs now is what counts; a push in flight stays in flight.
        state.progress = { ...state.progress, linksVersion: facts.linksVersion, rulesVersion: facts.rulesVersion };
        if (this.#learnVms(facts, now)) this.reconcile('VM location learned');
        return;
      }
      case 'traffic': {
        const snap = snapshotFromWire(session.hostId, message.snapshot);
        const valid = validateReport(snap);
        if (!valid.ok) {
          this.#c.metrics.malformedMessages.inc({ reason: 'traffic-report' });
          this.#log.warn({ host: session.hostId, code: valid.error.code, msg: valid.error.message }, 'traffic report rejected');
          session.send({ type: 'error', code: valid.error.code, message: valid.error.message.slice(0, 4096), fatal: false, inReplyTo: 'traffic' });
          return;
        }
        this.#reports.push(snap);
        this.#c.store.insertTrafficSamples(message.snapshot.entries.map((e) => ({
          host: session.hostId, startMs: snap.startMs, endMs: snap.endMs, src: e.src, dst: e.dst, frames: e.frames, bytes: e.bytes,
        })));
        this.#c.store.touchHost(session.hostId, now);
        return;
      }
      case 'ack': {
        const key = message.kind === 'links' ? 'linksInFlight' : 'rulesInFlight';
        if (message.ok) {
          this.#c.store.recordAck(session.hostId, message.kind, message.version);
          state.progress = {
            ...state.progress,
            ...(message.kind === 'links' ? { linksVersion: message.version } : { rulesVersion: message.version }),
            ...(state.progress[key]?.version === message.version ? { [key]: undefined } : {}),
          };
          if (message.kind === 'rules') this.#c.events.emit('rules-changed', { host: session.hostId, version: message.version });
        } else {
          this.#c.metrics.nacks.inc({ kind: message.kind });
          this.#log.warn({ host: session.hostId, kind: message.kind, version: message.version, code: message.error?.code, msg: message.error?.message }, 'daemon refused a change');
        }
        return;
      }
      case 'event': {
        this.#log.debug({ host: session.hostId, event: message.event.type }, 'daemon event');
        return;
      }
    }
  }

  sessionClosed(session: ControlSession, _reason: string): void {
    const state = this.#sessions.get(session.hostId);
    if (state?.session !== session) return;
    this.#sessions.delete(session.hostId);
    for (const key of [...this.#directed.keys()]) if (key.startsWith(`${session.hostId}\u0000`)) this.#directed.delete(key);
    this.#c.store.setHostConnected(session.hostId, false, this.#c.wallClock());
    this.#emitHost(session.hostId);
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
    const now = this.#c.wallClock();
    store.upsertVm({ ...vm, host, state, updatedMs: now });
    this.#c.events.emit('vm-changed', { vm: vmView(store.getVm(mac)!) });
    this.reconcile(`VM ${mac} on ${host} (${state}): ${why}`);
  }

  // ---- reconcile -------------------------------------------------------------

  /** Note that the registry changed behind the core's back (a direct store write): the next period reconciles. */
  markDirty(): void {
    this.#dirty = true;
  }

  /** Compute desired state, persist new versions, push what each connected daemon lacks. */
  reconcile(why: string): void {
    const started = performance.now();
    this.#dirty = false;
    const { store } = this.#c;
    const now = this.#c.wallClock();
    const hosts = store.listHosts();
    const desired = desiredState({
      hubId: hosts.find((h) => h.role === 'hub')?.id,
      hosts: hosts.map((h) => ({ id: h.id, role: h.role, addresses: h.addresses })),
      vms: store.listVms().map((v) => ({ mac: v.mac, host: v.host })),
      links: store.listLinks(),
    });
    for (const [host, want] of desired) {
      const state = this.#sessions.get(host);
      const prev = store.getVersions(host);
      const plan = nextVersions(prev, want, state?.progress);
      if (plan.linksChanged || plan.rulesChanged) {
        const changes = plan.rulesChanged ? ruleChanges(store.listRules(host), want.rules) : undefined;
        store.transaction(() => {
          if (changes !== undefined) {
            const upsert = new Set([...changes.added, ...changes.changed]);
            store.updateRules(host, want.rules.filter((r) => upsert.has(r.id)), changes.removed);
          }
          store.putVersions(plan.versions);
        });
        if (changes !== undefined) {
          const version = plan.versions.rulesVersion;
          this.#c.events.emit('rules-changed', { host, version });
          this.#c.events.decide('rules-pushed', `rules of ${host} at version ${version} (+${changes.added.length} ~${changes.changed.length} -${changes.removed.length}): ${why}`, {
            host, version, added: sample(changes.added), changed: sample(changes.changed), removed: sample(changes.removed),
            counts: { added: changes.added.length, changed: changes.changed.length, removed: changes.removed.length },
          });
        }
      }
      if (state !== undefined) this.#push(state, plan.versions, want, now);
    }
    this.#c.metrics.reconcileSeconds.observe((performance.now() - started) / 1000);
  }

  #push(state: SessionState, versions: ReturnType<typeof nextVersions>['versions'], want: HostDesiredState, now: number): void {
    const resendAfter = this.#init.resendAfterMs ?? 3 * this.#init.policy.updatePeriodMs;
    const plan = planPushes(versions, want, state.progress, now, resendAfter);
    state.progress = plan.progress;
    for (const m of plan.messages) {
      if (state.session.send(m)) {
        this.#c.metrics.pushes.inc({ kind: m.type === 'set-links' ? 'links' : 'rules' });
        this.#log.debug({ host: state.session.hostId, type: m.type }, 'pushed desired state');
      }
    }
  }

  /** One update period: topology inference on the buffered reports, traffic events, pruning, reconcile. */
  tick(): void {
    const now = this.#c.wallClock();
    const reports = this.#reports;
    this.#reports = [];
    const vms = this.#c.store.listVms();
    const out = this.#c.topology.step(vms, reports, now);
    for (const r of out.rejected) {
      this.#c.metrics.malformedMessages.inc({ reason: 'traffic-report' });
      this.#log.warn({ host: r.host, code: r.code, msg: r.message }, 'traffic report rejected');
    }
    if (out.changed !== undefined) {
      this.#c.store.insertTopology({ atMs: now, kind: out.topology.class, changed: true, body: out.topology });
      this.#c.events.emit('topology-changed', { topology: out.topology });
      this.#c.events.decide('topology-changed', `topology is now ${out.topology.class} (confidence ${out.topology.confidence.toFixed(2)})`, {
        class: out.topology.class, previous: out.changed.previous?.class ?? null, distance: out.changed.distance, periods: out.changed.periods,
      });
    }
    if (out.raw !== undefined) {
      this.#adapt(out.raw, now);
      this.#advisePlacement(out.raw.matrix, vms, now);
    }
    const rates = this.linkRates();
    const links = this.#c.store.listLinks();
    const reportsNow = this.#c.store.listLinkReports();
    this.#c.events.emit('traffic-updated', {
      at: now,
      links: links.map((l) => {
        const v = linkView(l, reportsNow, rates);
        return { a: v.a, b: v.b, bytes: v.bytes, frames: v.frames, bytesPerSec: v.bytesPerSec, framesPerSec: v.framesPerSec };
      }),
    });
    const retention = this.#init.trafficRetentionMs ?? 10 * this.#init.policy.smoothingIntervalMs;
    this.#c.store.pruneTraffic(now - retention);
    // Full reconcile only when something changed, or a daemon is not at the desired versions (resends).
    if (this.#dirty || !this.#converged()) this.reconcile('update period');
  }

  #converged(): boolean {
    for (const [host, s] of this.#sessions) {
      const v = this.#c.store.getVersions(host);
      if (s.progress.linksVersion !== v.linksVersion || s.progress.rulesVersion !== v.rulesVersion) return false;
    }
    return true;
  }

  /** Fast-path links adaptation wants, from the smoothed matrix: added and removed with their reasons. */
  #adapt(raw: { matrix: SmoothedMatrix; registry: RegistryIndex }, now: number): void {
    const { store, events } = this.#c;
    const hub = store.listHosts().find((h) => h.role === 'hub');
    if (hub === undefined) return;
    const plan = planAdaptation({ matrix: raw.matrix, registry: raw.registry, links: store.listLinks(), hubId: hub.id }, this.#init.policy);
    if (plan.add.length > 0 || plan.remove.length > 0) this.#dirty = true;
    const notChosenKey = plan.notChosen.map((d) => `${d.link.a}|${d.link.b}`).sort().join(',');
    if (notChosenKey !== this.#notChosenKey) {
      this.#notChosenKey = notChosenKey;
      if (plan.notChosen.length > 0) {
        events.decide('no-change', `fast-path budget (${this.#init.policy.fastPathBudget}) full: ${plan.notChosen.map((d) => d.reason).join('; ')}`, {
          budget: this.#init.policy.fastPathBudget,
          notChosen: plan.notChosen.map((d) => ({ a: d.link.a, b: d.link.b, bytesPerSec: d.benefitBytesPerSecond, vmPairs: d.vmPairs })),
        });
        this.#log.info({ budget: this.#init.policy.fastPathBudget, notChosen: plan.notChosen.length }, 'fast-path budget holds back links that would pay off');
      }
    }
    for (const d of plan.remove) {
      if (!store.deleteLink(d.link.a, d.link.b, 'fast-path')) continue;
      events.emit('link-removed', { a: d.link.a, b: d.link.b, kind: 'fast-path', actor: 'adaptation', reason: d.reason });
      events.decide('fast-path-removed', d.reason, { a: d.link.a, b: d.link.b, bytesPerSec: d.benefitBytesPerSecond, vmPairs: d.vmPairs });
      this.#log.info({ a: d.link.a, b: d.link.b, reason: d.reason }, 'adaptation removes a fast-path link');
    }
    for (const d of plan.add) {
      store.putLink({ a: d.link.a, b: d.link.b, kind: 'fast-path', requestedBy: 'adaptation', reason: d.reason }, now);
      const rec = store.listLinks('fast-path').find((l) => l.a === d.link.a && l.b === d.link.b);
      if (rec !== undefined) events.emit('link-changed', { link: linkView(rec, store.listLinkReports(), this.linkRates()) });
      events.decide('fast-path-added', d.reason, { a: d.link.a, b: d.link.b, bytesPerSec: d.benefitBytesPerSecond, vmPairs: d.vmPairs });
      this.#log.info({ a: d.link.a, b: d.link.b, reason: d.reason }, 'adaptation adds a fast-path link');
    }
  }

  /**
   * Placement advice on the smoothed matrix: a new proposal (or its end) is
   * a `placement-changed` event and a decision with its reason. With
   * `policy.autoMigrate` each proposed move is recorded as the migration the
   * controller would start — pending, since no migration coordinator exists
   * yet to run it; nothing is migrated.
   */
  #advisePlacement(matrix: SmoothedMatrix, vms: readonly VmRecord[], now: number): void {
    const advisor = this.#c.placement;
    if (advisor === undefined) return;
    if (now - this.#placementAt < (this.#init.placementIntervalMs ?? 10 * this.#init.policy.updatePeriodMs)) return;
    this.#placementAt = now;
    const { events } = this.#c;
    const hadMoves = advisor.view.moves.length > 0;
    let out;
    try {
      out = advisor.step({ matrix, vms, hosts: this.#c.store.listHosts() }, now);
    } catch (err) {
      this.#log.error({ err }, 'placement advice failed');
      return;
    }
    if (!out.changed) return;
    const { view, advice } = out;
    if (view.moves.length === 0) {
      if (!hadMoves) return;
      events.emit('placement-changed', { placement: view });
      events.decide('no-change', `placement: proposal withdrawn: ${advice.reason}`, { score: view.score, threshold: view.threshold });
      this.#log.info({ reason: advice.reason }, 'placement proposal withdrawn');
      return;
    }
    const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
    events.emit('placement-changed', { placement: view });
    events.decide('migration-proposed', `placement: ${advice.reason} (${pct(out.relativeGain)} of the traffic × latency cost, T = ${pct(this.#init.policy.placementThreshold)}): ${view.moves.map((m) => m.reason).join('; ')}`, {
      moves: view.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to, gain: m.gain })),
      score: view.score, proposedScore: view.proposedScore, threshold: view.threshold, relativeGain: out.relativeGain,
      autoMigrate: this.#init.policy.autoMigrate,
    });
    this.#log.info({ moves: view.moves.length, gain: advice.gain, threshold: view.threshold }, 'placement moves proposed');
    if (!this.#init.policy.autoMigrate) return;
    for (const m of view.moves) {
      events.decide('migration-proposed', `auto-migrate: would migrate ${m.vm} ${m.from}→${m.to} now; ${PENDING_NO_COORDINATOR}`, {
        vm: m.vm, from: m.from, to: m.to, gain: m.gain, autoMigrate: true, state: PENDING_NO_COORDINATOR,
      });
      this.#log.warn({ vm: m.vm, from: m.from, to: m.to }, `auto-migrate: migration not started (${PENDING_NO_COORDINATOR})`);
    }
  }

  // ---- facts → registry ------------------------------------------------------

  /** VMs seen on a daemon's ports: new ones registered, moved ones re-homed. Returns whether placement changed. */
  #learnVms(facts: DaemonFacts, now: number): boolean {
    const { store } = this.#c;
    let moved = false;
    const changed: string[] = [];
    store.transaction(() => {
      const seen = new Set<string>();
      for (const p of facts.ports) {
        seen.add(p.mac);
        const vm = store.getVm(p.mac);
        if (vm === undefined) {
          store.upsertVm({ mac: p.mac, name: p.name, ip: p.ip, host: facts.hostId, state: 'running', source: 'learned', updatedMs: now });
          changed.push(p.mac);
          moved = true;
        } else if (vm.host !== facts.hostId && vm.state !== 'migrating' && !this.#reportsPort(vm.host, p.mac)) {
          // Seen here and no longer where the registry has it: it moved (a migration we were not told of).
          this.#log.info({ vm: p.mac, from: vm.host, to: facts.hostId }, 'VM seen on another host: re-homed');
          store.upsertVm({ ...vm, ip: vm.ip ?? p.ip, host: facts.hostId, state: 'running', updatedMs: now });
          changed.push(p.mac);
          moved = true;
        } else if (vm.host === facts.hostId && vm.state !== 'running' && vm.state !== 'migrating') {
          store.upsertVm({ ...vm, ip: vm.ip ?? p.ip, state: 'running', updatedMs: now });
          changed.push(p.mac);
        }
      }
      for (const vm of store.listVms()) {
        if (vm.host === facts.hostId && !seen.has(vm.mac) && vm.state === 'running') {
          store.upsertVm({ ...vm, state: 'stopped', updatedMs: now });
          changed.push(vm.mac);
        }
      }
    });
    for (const mac of changed) {
      const vm = store.getVm(mac);
      if (vm !== undefined) this.#c.events.emit('vm-changed', { vm: vmView(vm) });
    }
    return moved;
  }

  /** Whether `host`'s last reported facts have a port with this MAC (both ends hold the VM around a cutover). */
  #reportsPort(host: string | undefined, mac: string): boolean {
    if (host === undefined) return false;
    return this.#c.store.getHost(host)?.facts?.ports.some((p) => p.mac === mac) === true;
  }

  #updateRates(facts: DaemonFacts, now: number): void {
    for (const l of facts.links) {
      const key = `${facts.hostId}\u0000${l.peer}`;
      const prev = this.#counters.get(key);
      this.#counters.set(key, { atMs: now, txBytes: l.txBytes, txFrames: l.txFrames });
      if (prev === undefined || now <= prev.atMs || l.txBytes < prev.txBytes) continue;
      const secs = (now - prev.atMs) / 1000;
      this.#directed.set(key, { bytesPerSec: (l.txBytes - prev.txBytes) / secs, framesPerSec: (l.txFrames - prev.txFrames) / secs });
    }
  }

  #emitHost(id: string): void {
    const h = this.#c.store.getHost(id);
    if (h !== undefined) this.#c.events.emit('host-changed', { host: hostView(h) });
  }
}

/** At most 20 ids of a list, for decision details. */
function sample(ids: readonly string[]): string[] {
  return ids.slice(0, 20);
}
