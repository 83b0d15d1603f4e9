import { randomBytes } from 'node:crypto';
import type { MigrationReport } from '../control/migration-control.ts';
import type { MigrationView, PlacementMove } from './api-views.ts';
import type { Applier } from './applier.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import { decision, noEffects, type Planned } from './effects.ts';
import { INITIAL_COORDINATOR, planMigrations, restoreMigrations, type CoordinatorInput, type CoordinatorState, type CoordinatorWorld } from './migration-coordinator.ts';
import { checkCancel, planAutoMigrations, resolveMigrationRequest, type MigrationRequest } from './migration-requests.ts';
import { CutoverRecorder } from './migration-spans.ts';
import { FINAL_STEPS, migrationViewOf, type MigrationRun, type MigrationTimeouts } from './migration-run.ts';
import type { SessionTable } from './session-table.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * The coordinator's shell in the control loop: it holds the coordinator's
 * state, reads the world it needs (connected daemons and the rule versions
 * they run, link facts, links, VMs) from the session table and the store,
 * and hands the planned effects to the applier; a reconcile the coordinator
 * asks for (the cutover, the migration's link) runs before anything else
 * reaches the coordinator, so "every daemon acknowledged" is always measured
 * against the rules that hold the new location.
 */

export interface MigrationDriverComponents {
  store: ControllerStore;
  sessions: SessionTable;
  applier: Applier;
  /** The control loop's reconcile. */
  reconcile: (why: string) => void;
  wallClock: () => number;
  /** Whether either end last reported the link between two hosts up (the leader's link reports: link-reports.ts). */
  linkUp: (a: string, b: string) => boolean;
  /** Migration ids (default: time and random, e.g. "m-lx2k3-9f2a"). */
  newId?: () => string;
}

export class MigrationDriver {
  readonly #c: MigrationDriverComponents;
  readonly #timeouts: Readonly<MigrationTimeouts>;
  #state: CoordinatorState = INITIAL_COORDINATOR;
  /** When each VM's last migration started (auto-migrate's cool-down). */
  readonly #lastMigrated = new Map<string, number>();
  /** The commit's moments as this shell sees them: the store's answer, the push, each daemon's ack. */
  readonly #recorder = new CutoverRecorder();

  constructor(components: MigrationDriverComponents, timeouts: Readonly<MigrationTimeouts>) {
    this.#c = components;
    this.#timeouts = timeouts;
  }

  /** At start: the migrations the store holds open are picked up (restoreMigrations). */
  restore(): void {
    const { store } = this.#c;
    for (const m of store.listMigrations(1000)) {
      const at = this.#lastMigrated.get(m.vmMac);
      if (at === undefined || m.startedMs > at) this.#lastMigrated.set(m.vmMac, m.startedMs);
    }
    const open = store.listOpenMigrations();
    const now = this.#c.wallClock();
    for (const m of open.filter((r) => r.run === undefined)) store.setMigrationState(m.id, 'failed', now, 'no coordinator record (written before the coordinator existed)');
    const runs = open.flatMap((m) => (m.run !== undefined ? [m.run] : []));
    if (runs.length === 0) return;
    this.#apply(restoreMigrations(runs, this.#world(), this.#timeouts, now));
  }

  /** Whether any migration is not final (then acks, facts and periods are worth a look). */
  busy(): boolean {
    for (const r of this.#state.runs.values()) if (!FINAL_STEPS.has(r.step)) return true;
    return false;
  }

  /** Whether a cutover is in flight: a VM paused, until both sides answered the commit (other work of the loop waits for it). */
  cutoverInFlight(): boolean {
    for (const r of this.#state.runs.values()) if (r.step === 'paused' || r.step === 'commit' || r.step === 'cutover') return true;
    return false;
  }

  get runs(): ReadonlyMap<string, MigrationRun> {
    return this.#state.runs;
  }

  start(request: MigrationRequest): MigrationView {
    const { store } = this.#c;
    const id = this.#c.newId?.() ?? `m-${this.#c.wallClock().toString(36)}-${randomBytes(2).toString('hex')}`;
    const migration = resolveMigrationRequest(request, { vms: store.listVms(), hosts: store.listHosts(), connected: new Set(this.#c.sessions.connectedHosts()), runs: this.#state.runs }, id);
    this.#lastMigrated.set(migration.vm.mac, this.#c.wallClock());
    this.#plan({ type: 'start', migration });
    return migrationViewOf(this.#state.runs.get(id)!);
  }

  cancel(id: string, actor: string): MigrationView {
    const stored = this.#c.store.getMigration(id);
    checkCancel(this.#state.runs, stored === undefined ? undefined : { step: stored.run?.step ?? stored.state }, id);
    this.#plan({ type: 'cancel', id, actor });
    return migrationViewOf(this.#state.runs.get(id)!);
  }

  report(host: string, report: MigrationReport): void {
    this.#plan({ type: 'report', host, report });
  }

  connected(host: string): void {
    if (this.busy() || this.#state.runs.size > 0) this.#plan({ type: 'connected', host });
  }

  /** Timeouts, and the steps that wait on acks, link facts or a daemon coming back. */
  tick(): void {
    if (!this.busy()) return;
    const { sessions } = this.#c;
    this.#recorder.observe((host) => sessions.appliedVersions(host)?.rulesVersion, this.#c.wallClock());
    this.#plan({ type: 'tick' });
  }

  /** Auto-migrate: start the moves placement proposes, within the policy's limits. */
  autoMigrate(moves: readonly PlacementMove[], policy: Readonly<DeploymentPolicy>): void {
    const now = this.#c.wallClock();
    const plan = planAutoMigrations(moves, this.#state.runs, this.#lastMigrated, policy, now);
    const refused = noEffects();
    for (const s of plan.skipped) refused.logs.push({ level: 'debug', fields: { vm: s.move.vm, from: s.move.from, to: s.move.to, reason: s.reason }, msg: 'auto-migrate: move not started' });
    for (const move of plan.start) {
      try {
        this.start({ vm: move.vm, to: move.to, requestedBy: 'auto-migrate' });
      } catch (err) {
        const reason = (err as Error).message;
        refused.events.push(decision('no-change', `auto-migrate: ${move.vm} ${move.from}→${move.to} not started: ${reason}`, { vm: move.vm, from: move.from, to: move.to, autoMigrate: true, code: (err as { code?: string }).code ?? null }));
        refused.logs.push({ level: 'info', fields: { vm: move.vm, to: move.to, reason }, msg: 'auto-migrate: migration refused' });
      }
    }
    this.#c.applier.apply(refused);
  }

  #plan(input: CoordinatorInput): void {
    this.#apply(planMigrations(this.#state, input, this.#world(), this.#timeouts, this.#c.wallClock()));
  }

  #apply(planned: Planned<CoordinatorState>): void {
    this.#state = planned.state;
    const { reconcile } = planned.effects;
    const { store, sessions, applier } = this.#c;
    const commits = planned.effects.writes.flatMap((w) => (w.op === 'migration' && w.durable === true ? [w.migration.id] : []));
    const before = commits.length === 0 ? undefined : new Map(sessions.connectedHosts().map((h) => [h, store.getVersions(h).rulesVersion] as const));
    applier.apply({ ...planned.effects, reconcile: undefined });
    if (commits.length > 0) this.#whenDurable(store.committed(), (at) => this.#recorder.committed(commits, at));
    if (reconcile !== undefined) this.#c.reconcile(reconcile);
    if (before !== undefined) {
      const raised = new Map<string, number>();
      for (const [host, was] of before) {
        const now = store.getVersions(host).rulesVersion;
        if (now > was) raised.set(host, now);
      }
      // The push leaves with the commit's durability (the applier holds sends until then).
      const durable = store.committed();
      this.#whenDurable(durable === undefined ? undefined : applier.settled(), (at) => this.#recorder.pushed(commits, at, raised));
    }
    for (const id of this.#recorder.ids()) if (this.#state.runs.get(id)?.step !== 'commit') this.#recorder.forget(id);
  }

  #whenDurable(pending: Promise<void> | undefined, then: (atMs: number) => void): void {
    if (pending === undefined) { then(this.#c.wallClock()); return; }
    pending.then(() => then(this.#c.wallClock()), () => undefined);
  }

  #world(): CoordinatorWorld {
    const { store, sessions, linkUp } = this.#c;
    return {
      connected: new Set(sessions.connectedHosts()),
      rulesConverged: (host) => {
        const applied = sessions.appliedVersions(host);
        return applied !== undefined && applied.rulesVersion >= store.getVersions(host).rulesVersion;
      },
      linkUp,
      links: store.listLinks(),
      vm: (mac) => store.getVm(mac),
      measured: (id) => this.#recorder.get(id),
    };
  }
}
