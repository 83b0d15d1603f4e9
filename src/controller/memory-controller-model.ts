import {
  ConflictError, MigrationCommittedError, MigrationFinishedError, MigrationHostDownError, MigrationInProgressError, MigrationNotFoundError,
  MigrationRequestError, MigrationSameHostError, MigrationUnknownHostError, MigrationUnknownVmError, NotFoundError,
} from './errors.ts';
import { linkKey } from './api-model.ts';
import type { ControllerModel, StartMigrationOptions } from './api-model.ts';
import type {
  DecisionView,
  HostRulesView,
  HostView,
  LinkView,
  MatrixView,
  MigrationView,
  PlacementView,
  RuleView,
  TopologyView,
  VmView,
} from './api-views.ts';
import type { EventHandler, EventPage, EventPayloads, EventQuery, EventSubscribeOptions, EventType, EventView, LinkRateView } from './api-events.ts';

/**
 * The controller model held in memory: the twin of the SQLite-backed model,
 * for the API tests, the browser test and anything that wants a controller
 * without a database. Setters (`putHost`, `putLink`, `setTraffic`…) play the
 * part of the reconcile loop and the daemons; each emits the matching event.
 */

const DEFAULT_MAX_EVENTS = 10_000;
const MAX_EVENT_PAGE = 1000;

export interface MemoryControllerModelInit {
  /** Wall-clock source for event times and audit records (default Date.now). */
  now?: () => number;
  /** Events retained for history and replay (default 10 000). */
  maxEvents?: number;
}

const pairId = (a: string, b: string): string => {
  const k = linkKey(a, b);
  return `${k.a}\u0000${k.b}`;
};

export class MemoryControllerModel implements ControllerModel {
  readonly #now: () => number;
  readonly #maxEvents: number;
  readonly #hosts = new Map<string, HostView>();
  readonly #vms = new Map<string, VmView>();
  readonly #links = new Map<string, LinkView>();
  readonly #rules = new Map<string, HostRulesView>();
  readonly #migrations = new Map<string, MigrationView>();
  readonly #decisions: DecisionView[] = [];
  readonly #events: EventView[] = [];
  readonly #handlers = new Set<EventHandler>();
  #matrix: MatrixView = { at: null, periodMs: 1000, vms: [], edges: [] };
  #topology: TopologyView = { class: 'none', centre: null, confidence: 0, edges: [], detectedAt: null, weightsAt: null };
  #placement: PlacementView = { computedAt: null, score: 0, proposedScore: 0, threshold: 0, moves: [] };
  #seq = 0;
  #migrationSeq = 0;

  constructor(init: MemoryControllerModelInit = {}) {
    this.#now = init.now ?? Date.now;
    this.#maxEvents = Math.max(1, init.maxEvents ?? DEFAULT_MAX_EVENTS);
  }

  // ---- queries -------------------------------------------------------------

  listHosts(): HostView[] {
    return [...this.#hosts.values()].sort((x, y) => (x.id < y.id ? -1 : 1));
  }

  getHost(id: string): HostView | undefined {
    return this.#hosts.get(id);
  }

  listVms(): VmView[] {
    return [...this.#vms.values()].sort((x, y) => (x.mac < y.mac ? -1 : 1));
  }

  getVm(mac: string): VmView | undefined {
    return this.#vms.get(mac.toLowerCase());
  }

  listLinks(): LinkView[] {
    return [...this.#links.values()].sort((x, y) => (x.a === y.a ? (x.b < y.b ? -1 : 1) : x.a < y.a ? -1 : 1));
  }

  getLink(a: string, b: string): LinkView | undefined {
    return this.#links.get(pairId(a, b));
  }

  getRules(host: string): HostRulesView | undefined {
    if (!this.#hosts.has(host)) return undefined;
    return this.#rules.get(host) ?? { host, version: 0, appliedVersion: null, rules: [] };
  }

  getMatrix(): MatrixView {
    return this.#matrix;
  }

  getTopology(): TopologyView {
    return this.#topology;
  }

  listMigrations(): MigrationView[] {
    return [...this.#migrations.values()].sort((x, y) => x.startedAt - y.startedAt);
  }

  getMigration(id: string): MigrationView | undefined {
    return this.#migrations.get(id);
  }

  listEvents(query: EventQuery): EventPage {
    const since = query.since ?? 0;
    const limit = Math.min(Math.max(1, query.limit ?? MAX_EVENT_PAGE), MAX_EVENT_PAGE);
    const types = query.types === undefined ? undefined : new Set<EventType>(query.types);
    const events: EventView[] = [];
    for (const e of this.#events) {
      if (events.length >= limit) break;
      if (e.seq <= since) continue;
      if (types !== undefined && !types.has(e.type)) continue;
      events.push(e);
    }
    return { events, oldestSeq: this.#events[0]?.seq ?? 0, latestSeq: this.#seq };
  }

  getPlacement(): PlacementView {
    return this.#placement;
  }

  listDecisions(query: { limit?: number }): DecisionView[] {
    const limit = Math.max(0, query.limit ?? 100);
    return this.#decisions.slice(Math.max(0, this.#decisions.length - limit));
  }

  // ---- commands ------------------------------------------------------------

  async addFastPathLink(a: string, b: string, reason: string, actor: string): Promise<LinkView> {
    if (!this.#hosts.has(a)) throw new NotFoundError(`host ${JSON.stringify(a)}`);
    if (!this.#hosts.has(b)) throw new NotFoundError(`host ${JSON.stringify(b)}`);
    if (a === b) throw new ConflictError(`a link needs two different hosts (got ${JSON.stringify(a)} twice)`);
    const existing = this.getLink(a, b);
    if (existing !== undefined) throw new ConflictError(`a ${existing.kind} link between ${existing.a} and ${existing.b} already exists`);
    const link: LinkView = {
      ...linkKey(a, b),
      kind: 'fast-path',
      state: 'pending',
      requestedBy: 'operator',
      actor,
      reason,
      bytes: 0,
      frames: 0,
      bytesPerSec: 0,
      framesPerSec: 0,
    };
    this.#links.set(pairId(a, b), link);
    this.emit('operator-action', { actor, action: 'add-fast-path-link', detail: { a: link.a, b: link.b, reason } });
    this.emit('link-changed', { link });
    return link;
  }

  async removeFastPathLink(a: string, b: string, actor: string): Promise<void> {
    const link = this.getLink(a, b);
    if (link === undefined) throw new NotFoundError(`link between ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
    if (link.kind !== 'fast-path') throw new ConflictError(`the link between ${link.a} and ${link.b} is a backbone link; only fast-path links can be removed`);
    this.#links.delete(pairId(a, b));
    this.emit('operator-action', { actor, action: 'remove-fast-path-link', detail: { a: link.a, b: link.b } });
    this.emit('link-removed', { a: link.a, b: link.b, kind: link.kind, actor, reason: 'removed by operator' });
  }

  /**
   * A fake migration: validated like the real controller's (VM by MAC or
   * name, known destination, not the same host, not already migrating, a
   * destination that is up), then recorded in its prepare step. The test
   * moves it on with `putMigration`; nothing runs.
   */
  async startMigration(vm: string, to: string, actor: string, options: StartMigrationOptions = {}): Promise<MigrationView> {
    const v = this.getVm(vm) ?? this.listVms().find((x) => x.name === vm);
    if (v === undefined) throw new MigrationUnknownVmError(vm);
    const dest = this.#hosts.get(to);
    if (dest === undefined) throw new MigrationUnknownHostError(to);
    if (v.host === null) throw new MigrationSameHostError(`VM ${v.mac} is not placed on any host`);
    if (v.host === to) throw new MigrationSameHostError(`VM ${v.mac} already runs on ${to}`);
    const running = this.listMigrations().find((m) => m.vm === v.mac && m.state === 'running');
    if (running !== undefined) throw new MigrationInProgressError(v.mac, running.id);
    if (dest.state !== 'up') throw new MigrationHostDownError(to, `destination ${to} is down (no connected daemon)`);
    const rule = options.rule ?? 'smart-stop';
    if (rule === 'time-bound' && options.deadlineS === undefined) throw new MigrationRequestError('the time-bound rule needs a deadline (deadlineS)');
    let id = `m${++this.#migrationSeq}`;
    while (this.#migrations.has(id)) id = `m${++this.#migrationSeq}`;
    const migration: MigrationView = {
      id,
      vm: v.mac,
      from: v.host,
      to,
      phase: 'prepare',
      progress: 0,
      bytesSent: 0,
      bytesTotal: null,
      etaMs: null,
      state: 'running',
      startedAt: this.#now(),
      finishedAt: null,
      error: null,
      step: 'prepare',
      rule,
      requestedBy: actor,
      enginePhase: null,
      iteration: null,
      pagesLeft: null,
      dirtyRate: null,
      cutover: null,
    };
    this.emit('operator-action', { actor, action: 'start-migration', detail: { vm: v.mac, from: v.host, to, rule } });
    this.putMigration(migration);
    return migration;
  }

  /** Cancel a fake migration: before its commit point (steps prepare, transfer, paused) it ends cancelled. */
  async cancelMigration(id: string, actor: string): Promise<MigrationView> {
    const m = this.#migrations.get(id);
    if (m === undefined) throw new MigrationNotFoundError(id);
    if (m.state !== 'running') throw new MigrationFinishedError(id, m.step);
    if (!['prepare', 'transfer', 'paused'].includes(m.step)) throw new MigrationCommittedError(id, m.step);
    const cancelled: MigrationView = { ...m, state: 'cancelled', step: 'aborted', finishedAt: this.#now(), error: `cancelled by ${actor}` };
    this.emit('operator-action', { actor, action: 'cancel-migration', detail: { id } });
    this.putMigration(cancelled);
    return cancelled;
  }

  // ---- event source --------------------------------------------------------

  subscribe(handler: EventHandler, options: EventSubscribeOptions = {}): () => void {
    if (options.since !== undefined) {
      for (const e of this.#events) if (e.seq > options.since) handler(e);
    }
    this.#handlers.add(handler);
    return () => {
      this.#handlers.delete(handler);
    };
  }

  latestSeq(): number {
    return this.#seq;
  }

  // ---- setters (the reconcile loop's and the daemons' part) ----------------

  putHost(host: HostView): void {
    this.#hosts.set(host.id, host);
    this.emit('host-changed', { host });
  }

  removeHost(id: string): void {
    if (this.#hosts.delete(id)) this.emit('host-removed', { id });
  }

  putVm(vm: VmView): void {
    const v = { ...vm, mac: vm.mac.toLowerCase() };
    this.#vms.set(v.mac, v);
    this.emit('vm-changed', { vm: v });
  }

  removeVm(mac: string): void {
    const m = mac.toLowerCase();
    if (this.#vms.delete(m)) this.emit('vm-removed', { mac: m });
  }

  /** Add or replace a link (any kind); `a`/`b` are normalised. */
  putLink(link: LinkView): void {
    const l = { ...link, ...linkKey(link.a, link.b) };
    this.#links.set(pairId(l.a, l.b), l);
    this.emit('link-changed', { link: l });
  }

  /** Counters and rates for existing links, as one update period's traffic report. */
  setTraffic(at: number, rates: readonly LinkRateView[]): void {
    const applied: LinkRateView[] = [];
    for (const r of rates) {
      const link = this.getLink(r.a, r.b);
      if (link === undefined) continue;
      const next = { ...link, bytes: r.bytes, frames: r.frames, bytesPerSec: r.bytesPerSec, framesPerSec: r.framesPerSec };
      this.#links.set(pairId(r.a, r.b), next);
      applied.push({ a: next.a, b: next.b, bytes: r.bytes, frames: r.frames, bytesPerSec: r.bytesPerSec, framesPerSec: r.framesPerSec });
    }
    this.emit('traffic-updated', { at, links: applied });
  }

  setRules(host: string, version: number, rules: readonly RuleView[], appliedVersion: number | null = null): void {
    this.#rules.set(host, { host, version, appliedVersion, rules: [...rules] });
    this.emit('rules-changed', { host, version });
  }

  setMatrix(matrix: MatrixView): void {
    this.#matrix = matrix;
  }

  setTopology(topology: TopologyView): void {
    this.#topology = topology;
    this.emit('topology-changed', { topology });
  }

  putMigration(migration: MigrationView): void {
    this.#migrations.set(migration.id, migration);
    this.emit('migration-changed', { migration });
  }

  setPlacement(placement: PlacementView): void {
    this.#placement = placement;
    this.emit('placement-changed', { placement });
  }

  addDecision(decision: Omit<DecisionView, 'id' | 'time'> & { time?: number }): DecisionView {
    const d: DecisionView = { ...decision, id: (this.#decisions.at(-1)?.id ?? 0) + 1, time: decision.time ?? this.#now() };
    this.#decisions.push(d);
    if (this.#decisions.length > this.#maxEvents) this.#decisions.shift();
    this.emit('decision', { decision: d });
    return d;
  }

  /** Append an event to the history and deliver it to every subscriber. */
  emit<K extends EventType>(type: K, payload: EventPayloads[K]): EventView {
    const event = { seq: ++this.#seq, time: this.#now(), type, payload } as EventView;
    this.#events.push(event);
    if (this.#events.length > this.#maxEvents) this.#events.splice(0, this.#events.length - this.#maxEvents);
    for (const h of [...this.#handlers]) h(event);
    return event;
  }
}
