import { isMacString, formatMac, parseMac } from '../common/mac.ts';
import type { ControllerModel, StartMigrationOptions } from './api-model.ts';
import type { DecisionView, HostRulesView, HostView, LinkView, MatrixView, MigrationView, PlacementView, TopologyView, VmView } from './api-views.ts';
import type { EventHandler, EventPage, EventQuery, EventSubscribeOptions } from './api-events.ts';
import type { ControlLoop } from './control-loop.ts';
import type { ControllerEventLog } from './event-log.ts';
import { backboneVerdict } from './hub-status.ts';
import { hostView, linkView, migrationView, ruleViews, vmView } from './views.ts';
import { migrationViewOf } from './migration-run.ts';
import { ConflictError, NotFoundError, NotLeaderError } from './errors.ts';
import { FAST_PATH_RULE_PRIORITY, desiredRulesOf } from './reconcile.ts';
import { registryView } from './reconcile-planner.ts';
import type { ControllerStore } from './store/store.ts';
import type { HostRecord } from './store/records.ts';
import type { TopologyTracker } from './topology-tracker.ts';
import { EMPTY_PLACEMENT, type PlacementSource } from './placement-advisor.ts';

/**
 * The operator's controller (api-model.ts `ControllerModel`) over the SQLite
 * store: queries read the store (synchronously), commands validate against
 * it, write in one transaction with their audit record, emit their events
 * and ask the control loop to reconcile, so a link an operator adds is pushed to the
 * daemons at once.
 *
 * Without a control loop it is a replica that does not lead (docs/ha.md):
 * the queries read its replicated store (no link rates measured here, no
 * migration run live here: the stored steps), and a command is refused
 * (`NotLeaderError`) — the API redirects changes before they get here.
 */

export interface ControllerServiceComponents {
  store: ControllerStore;
  events: ControllerEventLog;
  /** The leader's control loop; absent on a replica that does not lead. */
  loop?: ControlLoop | undefined;
  topology: TopologyTracker;
  wallClock: () => number;
  /** The controller's placement advisor (the control loop steps it each update period). */
  placement?: PlacementSource;
}

export class ControllerService implements ControllerModel {
  readonly #c: ControllerServiceComponents;
  readonly #placementThreshold: number;

  constructor(components: ControllerServiceComponents, init: { placementThreshold?: number } = {}) {
    this.#c = components;
    this.#placementThreshold = init.placementThreshold ?? 0;
  }

  // ---- queries ----------------------------------------------------------------

  listHosts(): HostView[] {
    const hosts = this.#c.store.listHosts();
    const backbone = backboneVerdict(hosts);
    return hosts.map((h) => hostView(this.#live(h), backbone));
  }

  getHost(id: string): HostView | undefined {
    const hosts = this.#c.store.listHosts();
    const h = hosts.find((x) => x.id === id);
    return h === undefined ? undefined : hostView(this.#live(h), backboneVerdict(hosts));
  }

  /** A host as the leader knows it now: when it last reported is in memory (stored when it connects or leaves, not per report). */
  #live(h: HostRecord): HostRecord {
    const seen = this.#c.loop?.lastSeen(h.id);
    return seen === undefined ? h : { ...h, lastSeenMs: seen };
  }

  listVms(): VmView[] {
    return this.#c.store.listVms().map(vmView);
  }

  getVm(mac: string): VmView | undefined {
    if (!isMacString(mac)) return undefined;
    const v = this.#c.store.getVm(formatMac(parseMac(mac)));
    return v === undefined ? undefined : vmView(v);
  }

  listLinks(): LinkView[] {
    // The daemons' reports of their links are the leader's (a follower forwards this read: api/leader-reads.ts).
    const { loop } = this.#c;
    const rates = loop?.linkRates() ?? new Map();
    return this.#c.store.listLinks().map((l) => linkView(l, loop?.linkEnds(l.a, l.b) ?? [], rates)).sort((x, y) => (x.a === y.a ? (x.b < y.b ? -1 : 1) : x.a < y.a ? -1 : 1));
  }

  getLink(a: string, b: string): LinkView | undefined {
    const [x, y] = a < b ? [a, b] : [b, a];
    return this.listLinks().find((l) => l.a === x && l.b === y);
  }

  getRules(host: string): HostRulesView | undefined {
    if (this.#c.store.getHost(host) === undefined) return undefined;
    const versions = this.#c.store.getVersions(host);
    const applied = this.#c.loop?.appliedVersions(host)?.rulesVersion ?? (versions.rulesAcked > 0 ? versions.rulesAcked : null);
    const { store } = this.#c;
    // Derived from the registry (the store keeps versions and digests, not hosts × VMs rule rows), in priority order.
    // A follower has no loop: its view of the rules leaves out what only the leader's deployment says (OVS hosts' tunnel ports).
    const rules = (this.#c.loop?.desiredRules(host) ?? desiredRulesOf(registryView({ hosts: store.listHosts(), vms: store.listVms(), links: store.listLinks() }), host))
      .sort((x, y) => y.priority - x.priority || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    const byId = new Map(rules.map((r) => [r.id, r] as const));
    return {
      host,
      version: versions.rulesVersion,
      appliedVersion: applied,
      rules: ruleViews(rules, (id) => {
        const r = byId.get(id);
        if (r === undefined || typeof r.action !== 'object' || !('link' in r.action)) return null;
        return r.priority >= FAST_PATH_RULE_PRIORITY ? `fast path to ${r.action.link}` : `VM location via ${r.action.link}`;
      }),
    };
  }

  getMatrix(): MatrixView {
    return this.#c.topology.matrix;
  }

  getTopology(): TopologyView {
    return this.#c.topology.topology;
  }

  listMigrations(): MigrationView[] {
    return this.#c.store.listMigrations(1000).map((m) => this.#migration(m.id)!).sort((x, y) => x.startedAt - y.startedAt);
  }

  getMigration(id: string): MigrationView | undefined {
    return this.#migration(id);
  }

  listEvents(query: EventQuery): EventPage {
    return this.#c.events.listEvents(query);
  }

  /** The last proposal; under a scheduling policy each move says whether its migration has started. */
  getPlacement(): PlacementView {
    const view = this.#c.placement?.view ?? { ...EMPTY_PLACEMENT, threshold: this.#placementThreshold };
    if (view.policy === undefined || view.moves.length === 0) return view;
    const running = new Set(this.#c.store.listMigrations(1000).filter((m) => m.state === 'running').map((m) => `${m.vmMac}>${m.toHost}`));
    return { ...view, moves: view.moves.map((m) => ({ ...m, state: running.has(`${m.vm}>${m.to}`) ? 'started' : 'proposed' })) };
  }

  listDecisions(query: { limit?: number }): DecisionView[] {
    return this.#c.events.listDecisions(query.limit ?? 100);
  }

  // ---- commands ---------------------------------------------------------------

  async addFastPathLink(a: string, b: string, reason: string, actor: string): Promise<LinkView> {
    const { store, events, wallClock } = this.#c;
    if (store.getHost(a) === undefined) throw new NotFoundError(`host ${JSON.stringify(a)}`);
    if (store.getHost(b) === undefined) throw new NotFoundError(`host ${JSON.stringify(b)}`);
    if (a === b) throw new ConflictError(`a link needs two different hosts (got ${JSON.stringify(a)} twice)`);
    const existing = this.getLink(a, b);
    if (existing !== undefined) throw new ConflictError(`a ${existing.kind} link between ${existing.a} and ${existing.b} already exists`);
    const now = wallClock();
    store.transaction(() => {
      store.putLink({ a, b, kind: 'fast-path', requestedBy: actor.startsWith('operator') ? actor : `operator:${actor}`, reason }, now);
      store.appendAudit({ atMs: now, actor, action: 'add-fast-path-link', target: `${a}-${b}`, detail: { a, b, reason } });
    });
    const link = this.getLink(a, b)!;
    events.emit('operator-action', { actor, action: 'add-fast-path-link', detail: { a: link.a, b: link.b, reason } });
    events.emit('link-changed', { link });
    events.decide('fast-path-added', `operator ${actor}: ${reason}`, { a: link.a, b: link.b, actor });
    this.#leaderLoop('add a fast-path link').reconcile(`fast-path link ${link.a}-${link.b} added by ${actor}`);
    return link;
  }

  async startMigration(vm: string, to: string, actor: string, options: StartMigrationOptions = {}): Promise<MigrationView> {
    const { store, events, wallClock } = this.#c;
    const view = this.#leaderLoop('start a migration').migrations.start({ vm, to, rule: options.rule, deadlineS: options.deadlineS, requestedBy: actor.startsWith('operator') ? actor : `operator:${actor}` });
    const now = wallClock();
    const detail = { id: view.id, vm: view.vm, from: view.from, to: view.to, rule: view.rule, deadlineS: options.deadlineS ?? null };
    store.appendAudit({ atMs: now, actor, action: 'start-migration', target: view.id, detail });
    events.emit('operator-action', { actor, action: 'start-migration', detail });
    return view;
  }

  async cancelMigration(id: string, actor: string): Promise<MigrationView> {
    const { store, events, wallClock } = this.#c;
    const view = this.#leaderLoop('cancel a migration').migrations.cancel(id, actor);
    store.appendAudit({ atMs: wallClock(), actor, action: 'cancel-migration', target: id, detail: { id } });
    events.emit('operator-action', { actor, action: 'cancel-migration', detail: { id, vm: view.vm } });
    return view;
  }

  async removeFastPathLink(a: string, b: string, actor: string): Promise<void> {
    const { store, events, wallClock } = this.#c;
    const link = this.getLink(a, b);
    if (link === undefined) throw new NotFoundError(`link between ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
    if (link.kind !== 'fast-path') throw new ConflictError(`the link between ${link.a} and ${link.b} is a backbone link; only fast-path links can be removed`);
    const now = wallClock();
    store.transaction(() => {
      store.deleteLink(link.a, link.b, 'fast-path');
      store.appendAudit({ atMs: now, actor, action: 'remove-fast-path-link', target: `${link.a}-${link.b}`, detail: { a: link.a, b: link.b } });
    });
    events.emit('operator-action', { actor, action: 'remove-fast-path-link', detail: { a: link.a, b: link.b } });
    events.emit('link-removed', { a: link.a, b: link.b, kind: link.kind, actor, reason: 'removed by operator' });
    events.decide('fast-path-removed', `operator ${actor}`, { a: link.a, b: link.b, actor });
    this.#leaderLoop('remove a fast-path link').reconcile(`fast-path link ${link.a}-${link.b} removed by ${actor}`);
  }

  // ---- event source -------------------------------------------------------------

  subscribe(handler: EventHandler, options?: EventSubscribeOptions): () => void {
    return this.#c.events.subscribe(handler, options);
  }

  latestSeq(): number {
    return this.#c.events.latestSeq();
  }

  /** The control loop, which only the leader runs: a command on a follower is refused before it writes. */
  #leaderLoop(what: string): ControlLoop {
    if (this.#c.loop === undefined) throw new NotLeaderError(what);
    return this.#c.loop;
  }

  #migration(id: string): MigrationView | undefined {
    const live = this.#c.loop?.migrations.runs.get(id);
    if (live !== undefined) return migrationViewOf(live);
    const m = this.#c.store.getMigration(id);
    if (m === undefined) return undefined;
    const steps = this.#c.store.migrationSteps(id);
    return migrationView(m, steps[steps.length - 1]);
  }
}
