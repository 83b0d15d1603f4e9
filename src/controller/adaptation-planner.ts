import { hostLink, selectFastPaths, type FastPathParams, type LinkDecision } from '../topology/fast-path-selection.ts';
import type { SmoothedMatrix } from '../topology/smoothing.ts';
import type { RegistryIndex } from '../topology/vm-registry.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import type { LinkRecord } from './store/records.ts';

/**
 * Adaptation, the decision: which fast-path links the controller itself
 * wants, from the smoothed traffic matrix (VADAPT's greedy selection in
 * `src/topology/fast-path-selection.ts`, with hysteresis). Pure: returns the
 * links to add and remove with their reasons; the core writes them.
 *
 * Only links requested by adaptation are adaptation's to remove; links an
 * operator asked for stay, and count against the budget.
 */

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
  input: { matrix: SmoothedMatrix; registry: RegistryIndex; links: readonly LinkRecord[]; hubId: string },
  policy: Readonly<DeploymentPolicy>,
): AdaptationPlan {
  const fast = input.links.filter((l) => l.kind === 'fast-path');
  const ours = fast.filter((l) => l.requestedBy === 'adaptation');
  const taken = new Set(input.links.filter((l) => !(l.kind === 'fast-path' && l.requestedBy === 'adaptation')).map((l) => `${l.a}|${l.b}`));
  const plan = selectFastPaths(
    { matrix: input.matrix, registry: input.registry, currentLinks: ours.map((l) => hostLink(l.a, l.b)), hubHost: input.hubId },
    fastPathParams(policy, fast.length - ours.length),
  );
  return {
    // A pair that already has a link of another kind (backbone, operator's) needs no second one.
    add: plan.add.filter((d) => !taken.has(`${d.link.a}|${d.link.b}`)),
    remove: [...plan.remove],
    notChosen: plan.notChosen.filter((d) => !taken.has(`${d.link.a}|${d.link.b}`)),
  };
}
