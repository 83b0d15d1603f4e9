import { decision, event, noEffects, type Planned } from './effects.ts';
import { backboneVerdict, defaultHub } from './hub-status.ts';
import { desiredState, nextVersions, planPushes, ruleChanges, type HostDesiredState, type RegistryView, type SessionProgress } from './reconcile.ts';
import type { DesiredVersions, HostRecord, LinkRecord, VmRecord } from './store/records.ts';
import type { SetPatch } from './desired-state-cache.ts';
import type { RulePatchJournal } from './rule-patch-journal.ts';

/**
 * One reconcile pass as effects, over the pure reconcile (reconcile.ts):
 *
 *   registry ─▶ desired state per host
 *   per host whose set changed ─▶ new versions and rule rows (one transaction),
 *                                 `rules-changed` event, `rules-pushed` decision
 *   per connected host ─▶ the set-links / set-rules it lacks (planPushes),
 *                         or the patch-rules from its version when it takes
 *                         them and the journal has them (rule-patch-journal.ts),
 *                         and its progress with those pushes in flight
 *
 * The store is read through the accessors (the stored rules only of hosts
 * whose rules changed).
 */

/** Rule ids added, changed and removed; with `counts` when the lists hold only the first ids. */
export type RuleChangeList = ReturnType<typeof ruleChanges> & { counts?: { added: number; changed: number; removed: number } };

export interface ReconcileInput {
  hosts: readonly HostRecord[];
  vms: readonly Pick<VmRecord, 'mac' | 'host'>[];
  links: readonly LinkRecord[];
  versionsOf: (host: string) => DesiredVersions;
  /** Connected daemons and how far each is. */
  sessions: ReadonlyMap<string, SessionProgress>;
  /** Hosts reached only over VXLAN (OVS bridges). */
  vxlanHosts?: ReadonlySet<string>;
  /** Desired state of the registry's view: `desiredState` unless given (the control loop keeps a DesiredStateCache). */
  desiredOf?: (view: RegistryView) => Map<string, HostDesiredState>;
  /**
   * How a host's rules changed since the last reconcile, when known (the
   * cache's: with `counts` when the lists are only their first ids, so that
   * a set appearing whole is not built for the log); else the whole set
   * counts as added (a first reconcile).
   */
  ruleChangesOf?: (host: string) => RuleChangeList | undefined;
  /**
   * Rule-set patches: the journal of each host's changes from version to
   * version, and the rules the cache changed on a host in this pass (with
   * the digest of the set they changed). A version bumped from the stored
   * one with its changes known is journalled; any other bump forgets the
   * host's journal (its daemon gets whole sets).
   */
  patches?: { journal: RulePatchJournal; rulePatchOf: (host: string) => SetPatch | undefined };
}

/** The registry as desired state reads it: hosts, VMs, links, and the hubs from the hosts' reported backbones (hub-status.ts). */
export function registryView(input: Pick<ReconcileInput, 'hosts' | 'vms' | 'links' | 'vxlanHosts'>): RegistryView {
  const backbone = backboneVerdict(input.hosts);
  return {
    hubId: defaultHub(backbone),
    hubOf: backbone.hubOf,
    hosts: input.hosts.map((h) => ({ id: h.id, role: h.role, addresses: h.addresses })),
    vms: input.vms.map((v) => ({ mac: v.mac, host: v.host })),
    links: input.links,
    ...(input.vxlanHosts !== undefined ? { vxlanHosts: input.vxlanHosts } : {}),
  };
}

/** State: the connected daemons' progress after this pass's pushes. */
export function planReconcile(input: ReconcileInput, why: string, nowMs: number, resendAfterMs: number): Planned<Map<string, SessionProgress>> {
  const effects = noEffects();
  const progress = new Map(input.sessions);
  const desired = (input.desiredOf ?? desiredState)(registryView(input));
  for (const [host, want] of desired) {
    const reported = input.sessions.get(host);
    const prev = input.versionsOf(host);
    const plan = nextVersions(prev, want, reported);
    if (plan.linksChanged || plan.rulesChanged) {
      const changes: RuleChangeList | undefined = plan.rulesChanged ? input.ruleChangesOf?.(host) ?? ruleChanges([], want.rules) : undefined;
      effects.writes.push({ op: 'versions', versions: plan.versions });
      if (plan.rulesChanged && input.patches !== undefined) {
        const p = input.patches.rulePatchOf(host);
        input.patches.journal.record(host, prev.rulesVersion, plan.versions.rulesVersion, p !== undefined && p.from === prev.rulesDigest ? p.rules : undefined);
      }
      if (changes !== undefined) {
        const version = plan.versions.rulesVersion;
        effects.events.push(event('rules-changed', { host, version }));
        const counts = changes.counts ?? { added: changes.added.length, changed: changes.changed.length, removed: changes.removed.length };
        effects.events.push(decision('rules-pushed', `rules of ${host} at version ${version} (+${counts.added} ~${counts.changed} -${counts.removed}): ${why}`, {
          host, version, added: sample(changes.added), changed: sample(changes.changed), removed: sample(changes.removed), counts,
        }));
      }
    }
    if (reported === undefined) continue;
    const journal = input.patches?.journal;
    const pushes = planPushes(plan.versions, want, reported, nowMs, resendAfterMs, journal === undefined ? undefined : (from, to) => journal.patch(host, from, to));
    progress.set(host, pushes.progress);
    for (const message of pushes.messages) effects.messages.push({ host, message });
  }
  return { state: progress, effects };
}

/** At most 20 ids of a list, for decision details. */
function sample(ids: readonly string[]): string[] {
  return ids.slice(0, 20);
}
