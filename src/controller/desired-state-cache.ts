import type { RuleSpec } from '../control/daemon-control.ts';
import {
  BACKBONE_RULE_PRIORITY, fastPathPlan, linksDigestOf, placedVms, ruleChanges, ruleContext, ruleIndex, ruleLine, vmRule, vmRuleId,
  type HostDesiredState, type PlacedVm, type RegistryView, type RuleContext,
} from './reconcile.ts';
import { RuleSetDigest } from '../control/rule-set-digest.ts';

/**
 * Desired state per host (reconcile.ts's `desiredState`), kept from one
 * reconcile to the next and brought up to date by what changed, with the
 * digests of each set. Same result as `desiredState(view)` for every view
 * (the test runs both over random histories); the cost is what differs:
 *
 *   the deployment's hosts or roles, or the default hub changed
 *                                   ─▶ hubs' sets built whole (rare)
 *   a host's own fast-path peers or hub changed ─▶ that host's digest computed whole
 *   VMs placed, moved or gone, or
 *   on a spoke that changed hub     ─▶ on every other host, the one rule of each
 *                                      such VM compared, its digest updated by
 *                                      that rule only (rule-set-digest.ts)
 *   nothing                         ─▶ the digests of the last reconcile, as they were
 *
 * **Spokes' rule sets are built only when read.** A spoke's rules are one
 * rule per VM elsewhere — to its hub, or over a fast path to a peer's VMs —
 * so the cache keeps its digest, not its rules: computed whole as the digest
 * of "every VM to its hub" (one per hub, shared by every spoke on it) minus
 * its own VMs' rules plus its peers' fast-path rules, then patched rule by
 * rule. The rules themselves are built when something reads `rules` of the
 * host's state: a push (its digest changed and it is connected, or it was
 * welcomed with an older version) — `builds` counts them. Hubs' sets, one
 * rule per VM each via its own host or hub, are kept built and patched.
 *
 * So a reconcile after one VM moved costs O(hosts) plus the sets pushed, not
 * O(hosts × VMs): at 1,000 hosts and 10,000 VMs every set built is 10
 * million rules (seconds on a 2-core machine, bench/control/scale.ts), and a
 * controller that starts or takes over with every daemon at its version
 * builds none. Links are few per host and rebuilt every time; their digest
 * is reused while their lines and the deployment's members are unchanged.
 */

interface HostEntry {
  /** What this host's rules depend on besides each VM's host (role, hub, fast-path peers). */
  context: string;
  /** The context the digest was computed for (a spoke's rules of the last update are rebuilt from it when compared). */
  ctx: RuleContext;
  /** A hub's rules, kept built (sorted by id); undefined for a spoke (built when read). */
  rules: RuleSpec[] | undefined;
  digest: RuleSetDigest;
  linkLines: string;
  members: string;
  linksDigest: string;
}

export interface DesiredStateUpdate {
  /** Hosts whose digest was computed whole in the last update, and hosts whose rules were patched (one rule per changed VM). */
  rebuilt: number;
  patched: number;
}

/** Rule ids of a host's set added, changed and removed by a patch (reconcile.ts's `ruleChanges`, without reading the stored set). */
export interface RuleIdChanges {
  added: string[];
  changed: string[];
  removed: string[];
  /** When the lists are the first 20 ids of each only (a set appearing whole): the full counts. */
  counts?: { added: number; changed: number; removed: number };
}

type RuleChange = 'added' | 'changed' | 'removed';

/** A host's rule changes in one update (`rulePatch`): from the set of digest `from`, these rules put or removed (null). */
export interface SetPatch {
  from: string;
  rules: ReadonlyMap<string, RuleSpec | null>;
}

/** The most ids a summary of a set appearing whole lists (the decision log's sample). */
const SUMMARY_IDS = 20;

export class DesiredStateCache {
  readonly #hosts = new Map<string, HostEntry>();
  #vms = new Map<string, PlacedVm>();
  #deployment: string | undefined;
  #hubOf = new Map<string, string | null>();
  /** What the last `update` did (tests count it; no timing). */
  last: DesiredStateUpdate = { rebuilt: 0, patched: 0 };
  /** Whole rule sets built so far: hubs' sets computed whole, spokes' sets read or compared after their context changed (tests count them; no timing). */
  builds = 0;
  /** The rule changes of the last update, per host, against the set the host had before. */
  #changes = new Map<string, RuleIdChanges>();

  /** The rules the last update patched, per host (hosts whose set was computed whole have none). */
  #patches = new Map<string, SetPatch>();

  /**
   * The rules the last update changed on a host, each with the rule now
   * under its id (null: removed), and the digest of the set they were
   * changed from; undefined when the set was unchanged or appeared whole
   * (a host new to the cache, the deployment's hosts or roles changed).
   * The controller sends them as a rule-set patch (rule-patch-journal.ts).
   */
  rulePatch(host: string): SetPatch | undefined {
    return this.#patches.get(host);
  }

  /** How the last update changed a host's rules (undefined: unchanged, or a hub it had not built before). */
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
    const before = this.#vms;
    const vms = new Map(placed.map((vm) => [vm.mac, vm] as const));
    /** VMs whose rules may have changed: their placement, or undefined if no longer placed. */
    const changed = new Map<string, PlacedVm | undefined>();
    for (const vm of placed) {
      const was = before.get(vm.mac);
      if (was === undefined || was.host !== vm.host || hubMoved.has(vm.host)) changed.set(vm.mac, vm);
    }
    for (const mac of before.keys()) if (!vms.has(mac)) changed.set(mac, undefined);
    this.#vms = vms;

    const spokes = new SpokeDigests(placed);
    const members = fast.members.join(',');
    const out = new Map<string, HostDesiredState>();
    const update: DesiredStateUpdate = { rebuilt: 0, patched: 0 };
    const changes = new Map<string, RuleIdChanges>();
    const patches = new Map<string, SetPatch>();
    for (const h of view.hosts) {
      const ctx = ruleContext(view, fast, h.id);
      const context = `${ctx.isHub}|${ctx.myHub ?? ''}|${[...(ctx.peers ?? [])].sort().join(',')}`;
      let entry = this.#hosts.get(h.id);
      // A spoke's rules are a function of its context and where the VMs are: with its context unchanged, only the changed VMs' rules can differ.
      if (entry === undefined || entry.context !== context || (whole && ctx.isHub)) {
        const rules = ctx.isHub ? this.#counted(builtRules(placed, ctx)) : undefined;
        const digest = rules !== undefined ? digestOfRules(rules) : spokes.digest(ctx);
        if (entry === undefined) {
          if (rules === undefined) changes.set(h.id, wholeSetSummary(placed, ctx, digest));
        } else if (entry.digest.hex() !== digest.hex()) {
          // A spoke's context changed (a fast path, its hub): its sets before and now are built to say how (rare), and that is its patch.
          const was = entry.rules ?? this.#counted(builtRulesOf(before, entry.ctx));
          const now = rules ?? this.#counted(builtRulesOf(vms, ctx));
          const diff = ruleChanges(was, now);
          changes.set(h.id, diff);
          patches.set(h.id, { from: entry.digest.hex(), rules: patchOf(diff, now) });
        }
        entry = { context, ctx, rules, digest, linkLines: '', members: '', linksDigest: '' };
        this.#hosts.set(h.id, entry);
        update.rebuilt++;
      } else if (changed.size > 0) {
        const ids: RuleIdChanges = { added: [], changed: [], removed: [] };
        const from = entry.digest.hex();
        const rules = new Map<string, RuleSpec | null>();
        for (const [mac, vm] of changed) {
          const id = vmRuleId(mac);
          const rule = vm === undefined ? undefined : vmRule(vm, ctx);
          const was = before.get(mac);
          const what = entry.rules !== undefined ? patch(entry.rules, entry.digest, id, rule) : patchDigest(entry.digest, was === undefined ? undefined : vmRule(was, entry.ctx), rule);
          if (what === undefined) continue;
          ids[what].push(id);
          rules.set(id, rule ?? null);
        }
        entry.ctx = ctx;
        if (rules.size > 0) {
          changes.set(h.id, ids);
          patches.set(h.id, { from, rules });
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
      out.set(h.id, this.#state(h.id, entry, links, fast.members, placed, ctx));
    }
    for (const id of this.#hosts.keys()) if (!fast.hosts.has(id)) this.#hosts.delete(id);
    this.last = update;
    this.#changes = changes;
    this.#patches = patches;
    return out;
  }

  #counted(rules: RuleSpec[]): RuleSpec[] {
    this.builds++;
    return rules;
  }

  /** A host's desired state; a spoke's rules are built when read, once. */
  #state(host: string, entry: HostEntry, links: HostDesiredState['links'], members: string[], placed: readonly PlacedVm[], ctx: RuleContext): HostDesiredState {
    const kept = entry.rules;
    const base = { host, links, members, linksDigest: entry.linksDigest, rulesDigest: entry.digest.hex() };
    if (kept !== undefined) return { ...base, rules: kept };
    let built: RuleSpec[] | undefined;
    const build = (): RuleSpec[] => this.#counted(builtRules(placed, ctx));
    return {
      ...base,
      get rules(): RuleSpec[] {
        built ??= build();
        return built;
      },
    };
  }
}

/**
 * Spokes' digests computed whole without their rules: a spoke's set is
 * "every VM to its hub" — the same for every spoke on that hub, computed
 * once per update — minus the rules of the VMs on it, with its fast-path
 * peers' VMs' rules in place of theirs (`vmRule` on those few VMs only).
 */
class SpokeDigests {
  readonly #placed: readonly PlacedVm[];
  readonly #toHub = new Map<string, RuleSetDigest>();
  #byHost: Map<string, PlacedVm[]> | undefined;

  constructor(placed: readonly PlacedVm[]) {
    this.#placed = placed;
  }

  digest(ctx: RuleContext): RuleSetDigest {
    const d = ctx.myHub === undefined ? new RuleSetDigest() : this.#everyVmTo(ctx.myHub).copy();
    for (const host of [ctx.host, ...(ctx.peers ?? [])]) {
      for (const vm of this.#on(host)) {
        if (ctx.myHub !== undefined) d.remove(ruleLine(backboneRule(vm, ctx.myHub)));
        const rule = vmRule(vm, ctx);
        if (rule !== undefined) d.add(ruleLine(rule));
      }
    }
    return d;
  }

  #everyVmTo(hub: string): RuleSetDigest {
    let d = this.#toHub.get(hub);
    if (d === undefined) {
      d = new RuleSetDigest();
      for (const vm of this.#placed) d.add(ruleLine(backboneRule(vm, hub)));
      this.#toHub.set(hub, d);
    }
    return d;
  }

  #on(host: string): readonly PlacedVm[] {
    if (this.#byHost === undefined) {
      this.#byHost = new Map();
      for (const vm of this.#placed) {
        const list = this.#byHost.get(vm.host);
        if (list === undefined) this.#byHost.set(vm.host, [vm]);
        else list.push(vm);
      }
    }
    return this.#byHost.get(host) ?? [];
  }
}

/** A spoke's rule for a VM elsewhere: to its hub (vmRule's last case). */
function backboneRule(vm: PlacedVm, hub: string): RuleSpec {
  return { id: vm.id, priority: BACKBONE_RULE_PRIORITY, src: 'any', dst: vm.mac, action: { link: hub } };
}

/** One host's whole rule set, in id order. */
function builtRules(placed: readonly PlacedVm[], ctx: RuleContext): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (const vm of placed) {
    const rule = vmRule(vm, ctx);
    if (rule !== undefined) rules.push(rule);
  }
  return rules;
}

function digestOfRules(rules: readonly RuleSpec[]): RuleSetDigest {
  const d = new RuleSetDigest();
  for (const r of rules) d.add(ruleLine(r));
  return d;
}

/** A set appearing whole, as the decision log shows it: its first ids and its count, without building it. */
function wholeSetSummary(placed: readonly PlacedVm[], ctx: RuleContext, digest: RuleSetDigest): RuleIdChanges {
  const added: string[] = [];
  for (const vm of placed) {
    if (added.length >= SUMMARY_IDS) break;
    if (vmRule(vm, ctx) !== undefined) added.push(vm.id);
  }
  return { added, changed: [], removed: [], counts: { added: digest.count, changed: 0, removed: 0 } };
}

/** A spoke's set of the last or of this update, built to compare it with the other (only when its context changed). */
function builtRulesOf(vms: ReadonlyMap<string, PlacedVm>, ctx: RuleContext): RuleSpec[] {
  return builtRules([...vms.values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)), ctx);
}

/** A set's changes as a patch: each added or changed id with its rule in `now`, each removed id with null. */
function patchOf(diff: RuleIdChanges, now: readonly RuleSpec[]): Map<string, RuleSpec | null> {
  const out = new Map<string, RuleSpec | null>();
  for (const id of diff.removed) out.set(id, null);
  for (const id of [...diff.added, ...diff.changed]) out.set(id, now[ruleIndex(now, id)]!);
  return out;
}

/** Put `rule` (or no rule) under `id` in a hub's sorted set; what that did to the set, if anything. */
function patch(rules: RuleSpec[], digest: RuleSetDigest, id: string, rule: RuleSpec | undefined): RuleChange | undefined {
  const lo = ruleIndex(rules, id);
  const old = rules[lo]?.id === id ? rules[lo] : undefined;
  const what = patchDigest(digest, old, rule);
  if (what === 'changed') rules[lo] = rule!;
  else if (what === 'removed') rules.splice(lo, 1);
  else if (what === 'added') rules.splice(lo, 0, rule!);
  return what;
}

/** A spoke's digest with one VM's rule `old` (or none) replaced by `rule` (or none); what that did to the set, if anything. */
function patchDigest(digest: RuleSetDigest, old: RuleSpec | undefined, rule: RuleSpec | undefined): RuleChange | undefined {
  if (old === undefined && rule === undefined) return undefined;
  if (old !== undefined && rule !== undefined && ruleLine(old) === ruleLine(rule)) return undefined;
  if (old !== undefined) digest.remove(ruleLine(old));
  if (rule !== undefined) digest.add(ruleLine(rule));
  return old === undefined ? 'added' : rule === undefined ? 'removed' : 'changed';
}
