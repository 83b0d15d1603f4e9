import type { RuleSpec } from '../control/daemon-control.ts';
import type { Applier } from './applier.ts';
import { DesiredStateCache } from './desired-state-cache.ts';
import { RulePatchJournal } from './rule-patch-journal.ts';
import type { ControllerMetrics } from './metrics.ts';
import { planReconcile, registryView } from './reconcile-planner.ts';
import { desiredRulesOf, type SessionProgress } from './reconcile.ts';
import type { SessionTable } from './session-table.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * The control loop's reconcile (control-loop.ts): desired state from the
 * registry, brought up to date by what changed (desired-state-cache.ts),
 * new versions persisted, and what each connected daemon lacks pushed
 * (reconcile-planner.ts), through the applier.
 *
 *   registry ─▶ desired state (cache) ─▶ versions ─▶ pushes not in flight,
 *                                                     or unacknowledged for
 *                                                     resendAfterMs since they left
 *                                                     (rules as patches where the
 *                                                     daemon takes them: the journal)
 *
 * A push not acknowledged within `resendAfterMs` is sent again — but only
 * once it has left: while pushes still wait for their writes to be durable
 * (etcd), or bytes still wait in a session's queue, its resend clock starts
 * again. At 1,000 hosts a whole rule set is about 1 MB, and resending sets
 * that had not even left yet piled copies up behind a slow flush or a slow
 * reader (4.8 GB of heap, 62% of the controller's CPU in GC) instead of
 * waiting for them.
 */

export interface ReconcilerComponents {
  store: ControllerStore;
  sessions: SessionTable;
  applier: Applier;
  metrics: ControllerMetrics;
  wallClock: () => number;
}

export interface ReconcilerInit {
  resendAfterMs: number;
  /** Hosts reached only over VXLAN (OVS bridges): their fast paths are tunnel ports, not dialled links. */
  vxlanHosts?: ReadonlySet<string>;
}

export class Reconciler {
  readonly #c: ReconcilerComponents;
  readonly #init: ReconcilerInit;
  /** Desired state per host, brought up to date by what changed at each reconcile (desired-state-cache.ts). */
  readonly #desired = new DesiredStateCache();
  /** Each host's rule changes from version to version, sent as patches to daemons that take them (rule-patch-journal.ts). */
  readonly #patches = new RulePatchJournal();

  constructor(components: ReconcilerComponents, init: ReconcilerInit) {
    this.#c = components;
    this.#init = init;
  }

  /** A host's desired rules as the reconcile computes them (the store keeps their version and digest, not the rules). */
  desiredRules(host: string): RuleSpec[] {
    const { store } = this.#c;
    return desiredRulesOf(registryView({
      hosts: store.listHosts(), vms: store.listVms(), links: store.listLinks(),
      ...(this.#init.vxlanHosts !== undefined ? { vxlanHosts: this.#init.vxlanHosts } : {}),
    }), host);
  }

  /** Compute desired state, persist new versions, push what each connected daemon lacks. */
  reconcile(why: string): void {
    const started = performance.now();
    const { store, sessions } = this.#c;
    const hosts = store.listHosts();
    const planned = planReconcile({
      hosts, vms: store.listVms(), links: store.listLinks(),
      versionsOf: (h) => store.getVersions(h),
      sessions: this.#resendable(sessions.allProgress()), desiredOf: (view) => this.#desired.update(view), ruleChangesOf: (h) => this.#desired.ruleChanges(h),
      patches: { journal: this.#patches, rulePatchOf: (h) => this.#desired.rulePatch(h) },
      ...(this.#init.vxlanHosts !== undefined ? { vxlanHosts: this.#init.vxlanHosts } : {}),
    }, why, this.#c.wallClock(), this.#init.resendAfterMs);
    for (const [host, progress] of planned.state) {
      sessions.setProgress(host, progress);
      this.#patches.prune(host, progress.rulesVersion);
    }
    this.#patches.retain(new Set(hosts.map((h) => h.id)));
    this.#c.applier.apply(planned.effects);
    this.#c.metrics.reconcileSeconds.observe((performance.now() - started) / 1000);
  }

  /** The sessions' progress as the planner should see it: the resend clock of a push that has not left yet starts again now. */
  #resendable(progress: ReadonlyMap<string, SessionProgress>): ReadonlyMap<string, SessionProgress> {
    const now = this.#c.wallClock();
    const unsent = this.#c.applier.waiting > 0;
    const out = new Map(progress);
    for (const [host, p] of progress) {
      if (!unsent && (this.#c.sessions.get(host)?.session.queuedBytes?.() ?? 0) === 0) continue;
      const restart = (f: SessionProgress['rulesInFlight']): SessionProgress['rulesInFlight'] => (f === undefined ? f : { ...f, atMs: Math.max(f.atMs, now) });
      const held = { ...p, linksInFlight: restart(p.linksInFlight), rulesInFlight: restart(p.rulesInFlight) };
      out.set(host, held);
      this.#c.sessions.setProgress(host, held);
    }
    return out;
  }
}
