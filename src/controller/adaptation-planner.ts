import { hostLink, selectFastPaths, type FastPathParams, type LinkDecision } from '../topology/fast-path-selection.ts';
import { parseMac, type Mac } from '../common/mac.ts';
import type { SmoothedMatrix } from '../topology/smoothing.ts';
import type { RegistryIndex } from '../topology/vm-registry.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import { decision, event, noEffects, type Planned } from './effects.ts';
import type { LinkRecord, LinkReportRecord, VmRecord } from './store/records.ts';
import { linkView, type LinkRate } from './views.ts';

/**
 * Adaptation: which fast-path links the controller itself wants, from the
 * smoothed traffic matrix (VADAPT's greedy selection in
 * `src/topology/fast-path-selection.ts`, with hysteresis). Pure:
 * `planAdaptation` returns the links to add and remove with their reasons;
 * `planFastPaths` turns them into effects (link writes, `link-changed` /
 * `link-removed` events, decisions, logs) for the applier, and remembers
 * which links the budget held back, so that decision is made once while it
 * holds.
 *
 * Only links requested by adaptation are adaptation's to remove; links an
 * operator asked for stay, and count against the budget.
 *
 * A controller that has just started — a restart, or a replica that has
 * just been elected (docs/ha.md) — has a smoothed matrix that starts from
 * nothing: for its first ADAPTATION_WARMUP_INTERVALS smoothing intervals it
 * adds links but removes none, so the fast paths its predecessor chose are
 * not torn down and set up again (a flap) while the rates build up.
 */

/** Smoothing intervals after a controller's start during which adaptation removes no link. */
export const ADAPTATION_WARMUP_INTERVALS = 3;

export interface AdaptationPlan {
  add: LinkDecision[];
  remove: LinkDecision[];
  /** Links that would pay off but do not fit the budget (the strongest 10), each with its reason. */
  notChosen: LinkDecision[];
}

export function fastPathParams(policy: Readonly<DeploymentPolicy>, operatorLinks: number): FastPathParams {
  const total = Math.max(0, policy.fastPathBudget - operatorLinks);
  return {
    budget: { maxLinksPerHost: Math.max(0, policy.fastPathBudget), maxLinksTotal: total },
    addThresholdBytesPerSecond: policy.fastPathMinBytesPerSec,
    keepThresholdBytesPerSecond: policy.fastPathMinBytesPerSec / 2,
  };
}

export function planAdaptation(
  input: { matrix: SmoothedMatrix; registry: RegistryIndex; links: readonly LinkRecord[]; hubId: string; vmNames?: ReadonlyMap<Mac, string> },
  policy: Readonly<DeploymentPolicy>,
): AdaptationPlan {
  const fast = input.links.filter((l) => l.kind === 'fast-path');
  const ours = fast.filter((l) => l.requestedBy === 'adaptation');
  const taken = new Set(input.links.filter((l) => !(l.kind === 'fast-path' && l.requestedBy === 'adaptation')).map((l) => `${l.a}|${l.b}`));
  const plan = selectFastPaths(
    {
      matrix: input.matrix, registry: input.registry, currentLinks: ours.map((l) => hostLink(l.a, l.b)), hubHost: input.hubId,
      ...(input.vmNames !== undefined ? { vmNames: input.vmNames } : {}),
    },
    fastPathParams(policy, fast.length - ours.length),
  );
  return {
    // A pair that already has a link of another kind (backbone, operator's) needs no second one.
    add: plan.add.filter((d) => !taken.has(`${d.link.a}|${d.link.b}`)),
    remove: [...plan.remove],
    notChosen: plan.notChosen.filter((d) => !taken.has(`${d.link.a}|${d.link.b}`)),
  };
}

/** The deployment's VM names by MAC (VMs without a name are left out: reasons then show the MAC). */
export function vmNamesByMac(vms: readonly VmRecord[]): Map<Mac, string> {
  const names = new Map<Mac, string>();
  for (const v of vms) if (v.name !== undefined && v.name !== null && v.name !== '') names.set(parseMac(v.mac), v.name);
  return names;
}

export interface AdaptationState {
  /** The host pairs last reported as held back by the budget (the decision is repeated only when this set changes). */
  readonly notChosenKey: string;
  /** The first update period's time (removals wait for the warm-up from it). */
  readonly startedMs?: number;
}

export const INITIAL_ADAPTATION: AdaptationState = { notChosenKey: '' };

export interface FastPathInput {
  matrix: SmoothedMatrix;
  registry: RegistryIndex;
  links: readonly LinkRecord[];
  /** The hub; none: no adaptation. */
  hubId: string | undefined;
  /** VM names by MAC, so that decisions name VMs rather than MACs. */
  vmNames: ReadonlyMap<Mac, string>;
  /** For the `link-changed` views of added links. */
  linkReports: readonly LinkReportRecord[];
  rates: ReadonlyMap<string, LinkRate>;
}

/** One update period of adaptation: the fast-path links to add and remove, as effects. */
export function planFastPaths(state: AdaptationState, input: FastPathInput, policy: Readonly<DeploymentPolicy>, nowMs: number): Planned<AdaptationState> {
  const effects = noEffects();
  const startedMs = state.startedMs ?? nowMs;
  if (input.hubId === undefined) return { state: { ...state, startedMs }, effects };
  const warming = nowMs - startedMs < ADAPTATION_WARMUP_INTERVALS * policy.smoothingIntervalMs;
  const planned = planAdaptation({ matrix: input.matrix, registry: input.registry, links: input.links, hubId: input.hubId, vmNames: input.vmNames }, policy);
  const plan = warming ? { ...planned, remove: [] } : planned;
  if (plan.add.length > 0 || plan.remove.length > 0) effects.reconcile = 'update period';
  const notChosenKey = plan.notChosen.map((d) => `${d.link.a}|${d.link.b}`).sort().join(',');
  if (notChosenKey !== state.notChosenKey && plan.notChosen.length > 0) {
    effects.events.push(decision('no-change', `fast-path budget (${policy.fastPathBudget}) full: ${plan.notChosen.map((d) => d.reason).join('; ')}`, {
      budget: policy.fastPathBudget,
      notChosen: plan.notChosen.map((d) => ({ a: d.link.a, b: d.link.b, bytesPerSec: d.benefitBytesPerSecond, vmPairs: d.vmPairs })),
    }));
    effects.logs.push({ level: 'info', fields: { budget: policy.fastPathBudget, notChosen: plan.notChosen.length }, msg: 'fast-path budget holds back links that would pay off' });
  }
  const ours = new Set(input.links.filter((l) => l.kind === 'fast-path').map((l) => `${l.a}|${l.b}`));
  for (const d of plan.remove) {
    if (!ours.has(`${d.link.a}|${d.link.b}`)) continue;
    effects.writes.push({ op: 'delete-link', a: d.link.a, b: d.link.b, kind: 'fast-path' });
    effects.events.push(event('link-removed', { a: d.link.a, b: d.link.b, kind: 'fast-path', actor: 'adaptation', reason: d.reason }));
    effects.events.push(decision('fast-path-removed', d.reason, { a: d.link.a, b: d.link.b, bytesPerSec: d.benefitBytesPerSecond, vmPairs: d.vmPairs }));
    effects.logs.push({ level: 'info', fields: { a: d.link.a, b: d.link.b, reason: d.reason }, msg: 'adaptation removes a fast-path link' });
  }
  for (const d of plan.add) {
    const link = { a: d.link.a, b: d.link.b, kind: 'fast-path' as const, requestedBy: 'adaptation', reason: d.reason };
    effects.writes.push({ op: 'put-link', link, atMs: nowMs });
    effects.events.push(event('link-changed', { link: linkView({ ...link, createdMs: nowMs }, input.linkReports, input.rates) }));
    effects.events.push(decision('fast-path-added', d.reason, { a: d.link.a, b: d.link.b, bytesPerSec: d.benefitBytesPerSecond, vmPairs: d.vmPairs }));
    effects.logs.push({ level: 'info', fields: { a: d.link.a, b: d.link.b, reason: d.reason }, msg: 'adaptation adds a fast-path link' });
  }
  return { state: { notChosenKey, startedMs }, effects };
}
