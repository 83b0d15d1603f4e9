/**
 * A stop rule by name, with its defaults: what a migration command names
 * (`migrate-start`'s `rule`, `vnet migrate --rule`) turned into the rule.
 */
import { QemuStop } from './qemu-stop.ts';
import { SmartStop } from './smart-stop.ts';
import type { StopRule, StopRuleName } from './stop-rule.ts';
import { TimeBound } from './time-bound.ts';
import { XenStop } from './xen-stop.ts';

/** Bound on the memory phase when a time-bound migration names none. */
export const DEFAULT_TIME_BOUND_MS = 30_000;

export function createStopRule(name: StopRuleName, opts: { readonly deadlineMs?: number | undefined } = {}): StopRule {
  switch (name) {
    case 'xen': return new XenStop();
    case 'qemu': return new QemuStop();
    case 'smart-stop': return new SmartStop();
    case 'time-bound': return new TimeBound({ deadlineMs: opts.deadlineMs ?? DEFAULT_TIME_BOUND_MS });
  }
}

/** How many channels a rule's migration uses: TLM's time-bound rule sends on two. */
export function channelsFor(rule: StopRule): 1 | 2 {
  return rule.kind === 'time-bound' ? 2 : 1;
}
