/**
 * The option plumbing every stop rule shares: a rule is built from optional
 * settings (any left out, or undefined, takes the rule's default) plus the
 * record encoding it runs with. `withDefaults` resolves them once, frozen.
 * Xen's three limits live here too: the Xen rule is made of them, and smart
 * stop keeps them as its safety net.
 */
import type { Encoding } from '../engine/content-encoder.ts';
import type { IterationStats, StopDecision } from './stop-rule.ts';

/** A rule's options: each of its settings optional, and the encoding. */
export type RuleOptions<S> = { readonly [K in keyof S]?: S[K] } & { readonly encoding?: Encoding };

/** The settings `defaults` names, each taken from `opts` when given there; frozen. Other keys of `opts` are ignored. */
export function withDefaults<S extends object>(defaults: Readonly<S>, opts: { readonly [K in keyof S]?: S[K] }): Readonly<S> {
  const out: Partial<Record<keyof S, unknown>> = {};
  for (const key of Object.keys(defaults) as (keyof S)[]) out[key] = opts[key] ?? defaults[key];
  return Object.freeze(out as S);
}

/** Xen's limits (xc_domain_save): at most 30 iterations, stop under 50 dirty pages, or once 3x RAM is sent. */
export interface XenLimitSettings {
  readonly maxIterations: number;
  readonly minDirtyPages: number;
  readonly maxFactor: number;
}

export const XEN_LIMIT_DEFAULTS: XenLimitSettings = Object.freeze({ maxIterations: 30, minDirtyPages: 50, maxFactor: 3 });

/** The decision of Xen's limits after an iteration: stop (and why), or undefined to go on. */
export function xenLimits(s: IterationStats, limits: XenLimitSettings): StopDecision | undefined {
  if (s.dirtied < limits.minDirtyPages) return { stop: true, reason: `fewer than ${limits.minDirtyPages} dirty pages` };
  if (s.iteration + 1 >= limits.maxIterations) return { stop: true, reason: `${limits.maxIterations} iterations` };
  if (s.totalPagesSent >= limits.maxFactor * s.ramPages) return { stop: true, reason: `${limits.maxFactor}x RAM sent` };
  return undefined;
}
