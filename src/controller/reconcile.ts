import { createHash } from 'node:crypto';
import type { DaemonRole, DesiredLink, ListenAddress, RuleSpec } from '../control/daemon-control.ts';
import type { ControllerMessage } from '../control/control-protocol.ts';
import type { DesiredVersions, LinkRecord } from './store/records.ts';
import type { RulePatch } from './rule-patch-journal.ts';
import { ruleLine, rulesDigestOf } from '../control/rule-set-digest.ts';

/**
 * Reconcile, the pure part: desired state per host from the registry, new
 * versions where it changed, and the messages that bring a daemon from what
 * it reports (actual) to what we want (desired). No I/O, no clock: the
 * controller shell feeds it the store's rows and `now`, persists the versions
 * it returns and sends the messages.
 *
 *   registry (hosts, VMs, links) ─▶ desiredState ─▶ per host {links, rules, members}
 *   per host: digest ≠ stored digest ─▶ version + 1          (nextVersions)
 *   per connected host: reported version ≠ desired version,
 *     and nothing in flight ─▶ set-links / set-rules        (planPushes)
 *
 * A push carries the whole set with its version, so applying it twice is a
 * no-op; versions only grow (past whatever a daemon reports), so a daemon
 * never mistakes an old set for the current one, even across a controller
 * that lost its database.
 */

export interface RegistryHost {
  id: string;
  role: DaemonRole;
  /** Where its daemon listens for tunnels: reported first, else configured. */
  addresses: readonly ListenAddress[];
}

export interface RegistryVm {
  mac: string;
  host: string | undefined;
}

export interface RegistryView {
  /** The hub spokes are sent to while their own is unknown (hub-status.ts's defaultHub). */
  hubId: string | undefined;
  /** Which hub each spoke's backbone link is up to now (absent or null: unknown). With a standby hub, spokes may be on either. */
  hubOf?: ReadonlyMap<string, string | null>;
  hosts: readonly RegistryHost[];
  vms: readonly RegistryVm[];
  links: readonly LinkRecord[];
  /**
   * Hosts reached only over VXLAN (OVS bridges, docs/openflow.md): a fast
   * path with one is a tunnel port on its side, listed in its links; a
   * daemon at the other end reaches it over its own configured VTEP, so it
   * gets the link's rules but no link to dial or accept.
   */
  vxlanHosts?: ReadonlySet<string>;
}

export interface HostDesiredState {
  host: string;
  /** Fast-path links only: the backbone is each daemon's own configuration. */
  links: DesiredLink[];
  rules: RuleSpec[];
  /** Every host of the deployment, sorted: sent with the links, the daemon refuses links from anyone else. */
  members: string[];
  /** The digests of the sets when already known (desired-state-cache.ts keeps them); else nextVersions computes them. */
  linksDigest?: string;
  rulesDigest?: string;
}

/** Priority of a rule that sends a VM's frames over a fast-path link. */
export const FAST_PATH_RULE_PRIORITY = 200;
/** Priority of a rule that pins a VM's location along the backbone. */
export const BACKBONE_RULE_PRIORITY = 100;

/** Rule id of the rule that steers frames to one VM. */
export function vmRuleId(mac: string): string {
  return `vm-${mac.replaceAll(':', '')}`;
}

/**
 * Desired fast-path links and rules of every host.
 *
 * Links: each fast-path link (a, b) appears on both hosts; the lower id dials
 * the other's listen address. A link whose dialled side has no known address
 * yet is left out (it becomes desired once the daemon reports one).
 *
 * Rules, for every VM placed on another host than H:
 *   a fast-path link H–(VM's host)      → dst VM: link to the VM's host (200)
 *   else H is a hub                     → dst VM: link to the VM's host, or to
 *                                         the other hub if the VM's host is a
 *                                         spoke on it (the trunk)        (100)
 *   else                                → dst VM: link to H's hub (the one its
 *                                         backbone is up to, else hubId) (100)
 * VMs on H itself are left to the daemon (its own ports, learned). A rule
 * whose link is absent on the daemon (its hub just lost) falls through to
 * learning and flooding there, so a failover never waits for these rules.
 */
export function desiredState(view: RegistryView): Map<string, HostDesiredState> {
  const out = new Map<string, HostDesiredState>();
  const fast = fastPathPlan(view);
  const placed = placedVms(view, fast.hosts);
  for (const h of view.hosts) {
    // Rules come out in id order already (placed is sorted).
    out.set(h.id, { host: h.id, links: fast.links.get(h.id)!, rules: rulesOf(placed, ruleContext(view, fast, h.id)), members: fast.members });
  }
  return out;
}

/** One host's desired rules (what `desiredState` gives it), computed for that host only: the operator API's view of them. */
export function desiredRulesOf(view: RegistryView, host: string): RuleSpec[] {
  const fast = fastPathPlan(view);
  if (!fast.hosts.has(host)) return [];
  return rulesOf(placedVms(view, fast.hosts), ruleContext(view, fast, host));
}

function rulesOf(placed: readonly PlacedVm[], ctx: RuleContext): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (const vm of placed) {
    const rule = vmRule(vm, ctx);
    if (rule !== undefined) rules.push(rule);
  }
  return rules;
}

/** The fast-path links of every host (sorted by peer), who each host has one with, and the deployment's members. */
export interface FastPathPlan {
  hosts: ReadonlyMap<string, RegistryHost>;
  members: string[];
  links: Map<string, DesiredLink[]>;
  peers: Map<string, Set<string>>;
}

export function fastPathPlan(view: RegistryView): FastPathPlan {
  const hosts = new Map(view.hosts.map((h) => [h.id, h] as const));
  const members = [...hosts.keys()].sort();
  const links = new Map<string, DesiredLink[]>(view.hosts.map((h) => [h.id, []]));
  const peers = new Map<string, Set<string>>();
  for (const l of view.links) {
    if (l.kind !== 'fast-path') continue;
    const a = hosts.get(l.a);
    const b = hosts.get(l.b);
    if (a === undefined || b === undefined || a.id === b.id) continue;
    const vxlan = view.vxlanHosts;
    if (vxlan !== undefined && (vxlan.has(a.id) || vxlan.has(b.id))) {
      for (const [side, peer] of [[a, b], [b, a]] as const) {
        if (vxlan.has(side.id)) links.get(side.id)!.push({ peer: peer.id, address: peer.addresses[0] ?? { transport: 'tcp', host: '0.0.0.0', port: 0 }, reason: l.reason, dial: false });
      }
    } else {
      const [dialer, dialled] = a.id < b.id ? [a, b] : [b, a];
      const target = dialled.addresses[0];
      if (target === undefined) continue;
      const back = dialer.addresses[0] ?? { transport: target.transport, host: '0.0.0.0', port: 0 };
      links.get(dialer.id)!.push({ peer: dialled.id, address: target, reason: l.reason, dial: true });
      links.get(dialled.id)!.push({ peer: dialer.id, address: back, reason: l.reason, dial: false });
    }
    if (!peers.has(a.id)) peers.set(a.id, new Set());
    if (!peers.has(b.id)) peers.set(b.id, new Set());
    peers.get(a.id)!.add(b.id);
    peers.get(b.id)!.add(a.id);
  }
  for (const list of links.values()) list.sort((x, y) => (x.peer < y.peer ? -1 : x.peer > y.peer ? 1 : 0));
  return { hosts, members, links, peers };
}

/** A VM placed on a host of the deployment, with its rule id. */
export interface PlacedVm {
  id: string;
  mac: string;
  host: string;
}

/** The VMs placed on hosts of the deployment, in rule id order. */
export function placedVms(view: RegistryView, hosts: ReadonlyMap<string, RegistryHost>): PlacedVm[] {
  return view.vms
    .filter((vm): vm is RegistryVm & { host: string } => vm.host !== undefined && hosts.has(vm.host))
    .map((vm) => ({ id: vmRuleId(vm.mac), mac: vm.mac, host: vm.host }))
    .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

/** What one host's rule for any VM depends on, besides the VM's own host. */
export interface RuleContext {
  host: string;
  isHub: boolean;
  /** Hosts it has a fast-path link with. */
  peers: ReadonlySet<string> | undefined;
  /** Its hub (the one its backbone is up to, else the view's hubId). */
  myHub: string | undefined;
  hubOf: (host: string) => string | undefined;
}

export function ruleContext(view: RegistryView, fast: FastPathPlan, host: string): RuleContext {
  const hubOf = (h: string): string | undefined => view.hubOf?.get(h) ?? undefined;
  return { host, isHub: fast.hosts.get(host)!.role === 'hub', peers: fast.peers.get(host), myHub: hubOf(host) ?? view.hubId, hubOf };
}

/** Host `ctx.host`'s rule for one VM (the table above desiredState), or none. */
export function vmRule(vm: PlacedVm, ctx: RuleContext): RuleSpec | undefined {
  if (vm.host === ctx.host) return undefined;
  if (ctx.peers?.has(vm.host) === true) return { id: vm.id, priority: FAST_PATH_RULE_PRIORITY, src: 'any', dst: vm.mac, action: { link: vm.host } };
  if (ctx.isHub) {
    const other = ctx.hubOf(vm.host);
    const via = other !== undefined && other !== ctx.host ? other : vm.host;
    return { id: vm.id, priority: BACKBONE_RULE_PRIORITY, src: 'any', dst: vm.mac, action: { link: via } };
  }
  if (ctx.myHub !== undefined) return { id: vm.id, priority: BACKBONE_RULE_PRIORITY, src: 'any', dst: vm.mac, action: { link: ctx.myHub } };
  return undefined;
}

/** Where rule `id` is, or would go, in a set sorted by id (binary search). */
export function ruleIndex(rules: readonly RuleSpec[], id: string): number {
  let lo = 0;
  let hi = rules.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (rules[mid]!.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export { ruleLine };

function linkLine(l: DesiredLink): string {
  return `${l.peer}\t${l.address.transport}\t${l.address.host}\t${l.address.port}\t${l.dial === undefined ? '' : String(l.dial)}\t${l.reason}`;
}

/** The digest of a host's desired links and the members sent with them. */
export function linksDigestOf(links: readonly DesiredLink[], members: readonly string[]): string {
  return digestOf([...links.map(linkLine), `members\t${members.join(',')}`]);
}

/** A stable digest of a desired set (its lines, in order). */
export function digestOf(lines: readonly string[]): string {
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 32);
}

export interface VersionPlan {
  versions: DesiredVersions;
  linksChanged: boolean;
  rulesChanged: boolean;
}

/**
 * New desired versions of a host: a set whose digest changed gets a version
 * above both the stored one and whatever the daemon reports (`reported`); so
 * does a set the daemon reports a higher version of than we hold.
 */
export function nextVersions(prev: DesiredVersions, desired: HostDesiredState, reported?: { linksVersion: number; rulesVersion: number }): VersionPlan {
  const linksDigest = desired.linksDigest ?? linksDigestOf(desired.links, desired.members);
  const rulesDigest = desired.rulesDigest ?? rulesDigestOf(desired.rules, ruleLine);
  // A daemon ahead of us (a database restored from a backup) gets a fresh, higher version too.
  const linksChanged = linksDigest !== prev.linksDigest || (reported?.linksVersion ?? 0) > prev.linksVersion;
  const rulesChanged = rulesDigest !== prev.rulesDigest || (reported?.rulesVersion ?? 0) > prev.rulesVersion;
  const versions: DesiredVersions = { ...prev };
  if (linksChanged) {
    versions.linksVersion = Math.max(prev.linksVersion, reported?.linksVersion ?? 0) + 1;
    versions.linksDigest = linksDigest;
  }
  if (rulesChanged) {
    versions.rulesVersion = Math.max(prev.rulesVersion, reported?.rulesVersion ?? 0) + 1;
    versions.rulesDigest = rulesDigest;
  }
  return { versions, linksChanged, rulesChanged };
}

/** What the controller knows of one connected daemon. */
export interface SessionProgress {
  /** Versions the daemon reported (hello/facts) or acknowledged. */
  linksVersion: number;
  rulesVersion: number;
  /** The last push of each kind not yet acknowledged: its version and when it was sent. */
  linksInFlight: { version: number; atMs: number } | undefined;
  rulesInFlight: { version: number; atMs: number } | undefined;
  /** The daemon takes rule-set patches (feature `rule-patches`, control/rule-patch.ts). */
  rulePatches?: boolean;
  /** It refused a patch (another base, a digest that did not match): its next rules push is the whole set. */
  wholeRules?: boolean;
}

export interface PushPlan {
  messages: ControllerMessage[];
  progress: SessionProgress;
}

/**
 * The messages that bring one daemon to the desired versions. A push is not
 * repeated while it is in flight, unless it has waited `resendAfterMs`.
 * Rules go as a patch (`patch-rules`) when the daemon takes them and
 * `patchOf` has the changes from its version — the one in flight if a push
 * of another version is, else the one it acknowledged — to the desired one;
 * else whole. A patch on the wrong base is refused by the daemon (nothing
 * applied) and answered with the whole set (`wholeRules`).
 */
export function planPushes(
  versions: DesiredVersions, desired: HostDesiredState, progress: SessionProgress, nowMs: number, resendAfterMs: number,
  patchOf?: (from: number, to: number) => RulePatch | undefined,
): PushPlan {
  const messages: ControllerMessage[] = [];
  const next: SessionProgress = { ...progress };
  const due = (inFlight: { version: number; atMs: number } | undefined, version: number): boolean =>
    inFlight === undefined || inFlight.version !== version || nowMs - inFlight.atMs >= resendAfterMs;
  if (progress.linksVersion !== versions.linksVersion && versions.linksVersion > 0 && due(progress.linksInFlight, versions.linksVersion)) {
    messages.push({ type: 'set-links', version: versions.linksVersion, links: desired.links.map((l) => ({ ...l, address: { ...l.address } })), members: [...desired.members] });
    next.linksInFlight = { version: versions.linksVersion, atMs: nowMs };
  }
  if (progress.rulesVersion !== versions.rulesVersion && versions.rulesVersion > 0 && due(progress.rulesInFlight, versions.rulesVersion)) {
    const to = versions.rulesVersion;
    const inFlight = progress.rulesInFlight;
    const from = inFlight !== undefined && inFlight.version !== to ? inFlight.version : progress.rulesVersion;
    const patch = progress.rulePatches === true && progress.wholeRules !== true && versions.rulesDigest !== '' ? patchOf?.(from, to) : undefined;
    if (patch !== undefined) messages.push({ type: 'patch-rules', from, version: to, digest: versions.rulesDigest, remove: patch.remove, upsert: patch.upsert });
    else messages.push({ type: 'set-rules', version: to, rules: desired.rules.map((r) => ({ ...r })) });
    next.rulesInFlight = { version: to, atMs: nowMs };
    delete next.wholeRules;
  }
  return { messages, progress: next };
}

/** Rule ids added and removed between two sets (for the decision log). */
export function ruleChanges(before: readonly RuleSpec[], after: readonly RuleSpec[]): { added: string[]; removed: string[]; changed: string[] } {
  const b = new Map(before.map((r) => [r.id, ruleLine(r)] as const));
  const a = new Map(after.map((r) => [r.id, ruleLine(r)] as const));
  return {
    added: [...a.keys()].filter((id) => !b.has(id)),
    removed: [...b.keys()].filter((id) => !a.has(id)),
    changed: [...a.keys()].filter((id) => b.has(id) && b.get(id) !== a.get(id)),
  };
}
