import type { RuleSpec } from '../control/daemon-control.ts';
import {
  fastPathPlan, linksDigestOf, placedVms, ruleChanges, ruleContext, ruleIndex, ruleLine, vmRule, vmRuleId, type HostDesiredState, type PlacedVm, type RegistryView,
} from './reconcile.ts';
import { RuleSetDigest } from './rule-set-digest.ts';

/**
 * Desired state per host (reconcile.ts's `desiredState`), kept from one
 * reconcile to the next and brought up to date by what changed, with the
 * digests of each set. Same result as `desiredState(view)` for every view
 * (the test runs both over random histories); the cost is what differs:
 *
 *   the deployment's hosts or roles, or the default hub changed
 *                                   ─▶ every host's rules built whole (rare)
 *   a host's own fast-path peers or hub changed ─▶ that host's rules built whole
 *   VMs placed, moved or gone, or
 *   on a spoke that changed hub     ─▶ on every other host, the one rule of each
 *                                      such VM patched in place, its digest
 *                                      updated by that rule only (rule-set-digest.ts)
 *   nothing                         ─▶ the sets of the last reconcile, as they were
 *
 * So a reconcile after one VM moved costs O(hosts) plus the hosts whose sets
 * changed, not O(hosts × VMs): at 1,000 hosts and 10,000 VMs the full build
 * is 10 million rules (seconds on a 2-core machine, bench/control/scale.ts).
 * Links are few per host and rebuilt every time; their digest is reused
 * while their lines and the deployment's members are unchanged.
 */

interface HostEntry {
  /** What this host's rules depend on besides each VM's host (role, hub, fast-path peers). */
  context: string;
  /** Sorted by id. */
  rules: RuleSpec[];
  digest: RuleSetDigest;
  linkLines: string;
  members: string;
  linksDigest: string;
}

export interface DesiredStateUpdate {
  /** Hosts whose rules were built whole in the last update, and hosts whose rules were patched (one rule per changed VM). */
  rebuilt: number;
  patched: number;
}

/** Rule ids of a host's set added, changed and removed by a patch (reconcile.ts's `ruleChanges`, without reading the stored set). */
export interface RuleIdChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

export class DesiredStateCache {
  readonly #hosts = new Map<string, HostEntry>();
  #vms = new Map<string, PlacedVm>();
  #deployment: string | undefined;
  #hubOf = new Map<string, string | null>();
  /** What the last `update` did (tests count it; no timing). */
  last: DesiredStateUpdate = { rebuilt: 0, patched: 0 };
  /** The rule changes of the last update, per host, against the set the host had before. */
  #changes = new Map<string, RuleIdChanges>();

  /** How the last update changed a host's rules (undefined: unchanged, or a host it had not built before). */
  ruleChanges(host: string): RuleIdChanges | undefined {
    return this.#changes.get(host);
  }

  update(view: RegistryView): Map<string, HostDesiredState> {
    const fast = fastPathPlan(view);
    const placed = placedVms(view, fast.hosts);
    const deployment = JSON.stringify([view.hubId ?? null, view.hosts.map((h) => [h.id, h.role])]);
    const whole = deployment !== this.#deployment;
    this.#deployment = deployment;
    // A spoke that moved to another hub: its own rules are rebuilt (its context names its hub); a hub's rule for each of its VMs changes.
    const hubOf = new Map(view.hubOf ?? []);
    const hubMoved = new Set<string>();
    for (const h of view.hosts) if ((hubOf.get(h.id) ?? null) !== (this.#hubOf.get(h.id) ?? null)) hubMoved.add(h.id);
    this.#hubOf = hubOf;
    const vms = new Map(placed.map((vm) => [vm.mac, vm] as const));
    /** VMs whose rules may have changed: their placement, or undefined if no longer placed. */
    const changed = new Map<string, PlacedVm | undefined>();
    for (const vm of placed) {
      const before = this.#vms.get(vm.mac);
      if (before === undefined || before.host !== vm.host || hubMoved.has(vm.host)) changed.set(vm.mac, vm);
    }
    for (const mac of this.#vms.keys()) if (!vms.has(mac)) changed.set(mac, undefined);
    this.#vms = vms;

    const members = fast.members.join(',');
    const out = new Map<string, HostDesiredState>();
    const update: DesiredStateUpdate = { rebuilt: 0, patched: 0 };
    const changes = new Map<string, RuleIdChanges>();
    for (const h of view.hosts) {
      const ctx = ruleContext(view, fast, h.id);
      const context = `${ctx.isHub}|${ctx.myHub ?? ''}|${[...(ctx.peers ?? [])].sort().join(',')}`;
      let entry = this.#hosts.get(h.id);
      if (whole || entry === undefined || entry.context !== context) {
        const rules: RuleSpec[] = [];
        const digest = new RuleSetDigest();
        for (const vm of placed) {
          const rule = vmRule(vm, ctx);
          if (rule === undefined) continue;
          rules.push(rule);
          digest.add(ruleLine(rule));
        }
        if (entry !== undefined && entry.digest.hex() !== digest.hex()) changes.set(h.id, ruleChanges(entry.rules, rules));
        entry = { context, rules, digest, linkLines: '', members: '', linksDigest: '' };
        this.#hosts.set(h.id, entry);
        update.rebuilt++;
      } else if (changed.size > 0) {
        const ids: RuleIdChanges = { added: [], changed: [], removed: [] };
        for (const [mac, vm] of changed) {
          const id = vmRuleId(mac);
          const what = patch(entry, id, vm === undefined ? undefined : vmRule(vm, ctx));
          if (what !== undefined) ids[what].push(id);
        }
        if (ids.added.length + ids.changed.length + ids.removed.length > 0) {
          changes.set(h.id, ids);
          update.patched++;
        }
      }
      const links = fast.links.get(h.id)!;
      const linkLines = JSON.stringify(links);
      if (entry.linkLines !== linkLines || entry.members !== members) {
        entry.linkLines = linkLines;
        entry.members = members;
        entry.linksDigest = linksDigestOf(links, fast.members);
      }
      out.set(h.id, { host: h.id, links, rules: entry.rules, members: fast.members, linksDigest: entry.linksDigest, rulesDigest: entry.digest.hex() });
    }
    for (const id of this.#hosts.keys()) if (!fast.hosts.has(id)) this.#hosts.delete(id);
    this.last = update;
    this.#changes = changes;
    return out;
  }
}

/** Put `rule` (or no rule) under `id` in a host's sorted set; what that did to the set, if anything. */
function patch(entry: HostEntry, id: string, rule: RuleSpec | undefined): keyof RuleIdChanges | undefined {
  const { rules } = entry;
  const lo = ruleIndex(rules, id);
  const old = rules[lo]?.id === id ? rules[lo] : undefined;
  if (old === undefined && rule === undefined) return undefined;
  if (old !== undefined && rule !== undefined && ruleLine(old) === ruleLine(rule)) return undefined;
  if (old !== undefined) entry.digest.remove(ruleLine(old));
  if (rule !== undefined) entry.digest.add(ruleLine(rule));
  if (old !== undefined && rule !== undefined) {
    rules[lo] = rule;
    return 'changed';
  }
  if (old !== undefined) {
    rules.splice(lo, 1);
    return 'removed';
  }
  rules.splice(lo, 0, rule!);
  return 'added';
}
