/**
 * What a configuration reload (`vnet daemon` on SIGHUP) changes: the running
 * configuration and the new one in, a plan out; no I/O (Faucet's config
 * reload as a diff of old and new). host/daemon-reload.ts carries it out.
 *
 *   run time    ports (added, removed; one changed in anything but its
 *               security is replaced: closed and opened again), each port's
 *               security limits (applied in place: the port and its counters
 *               stay), the configured rules, the configured fast-path links
 *               (one whose address or dialling side changed is redialled),
 *               the log level. Everything not named in the plan is left
 *               alone: an unchanged port or link is not touched.
 *   fixed       every other setting (host id, role, site, transport, listen
 *               address, hubs, certificates, admin, metrics, controller,
 *               timers): a new value refuses the whole reload, and the
 *               running configuration stays as it was.
 */
import { isDeepStrictEqual } from 'node:util';
import type { DesiredLink } from '../control/daemon-control.ts';
import type { RuleSpec } from '../control/rule-spec.ts';
import { configuredFastPathLinks, type DaemonConfig } from './daemon-config.ts';

export type PortSpec = DaemonConfig['ports'][number];

/** The settings a reload applies; every other key of DaemonConfig is fixed while the daemon runs. */
export const RELOADABLE_SETTINGS = ['ports', 'fastPath', 'rules', 'logLevel'] as const satisfies readonly (keyof DaemonConfig)[];

export interface ReloadPlan {
  /** Fixed settings the new configuration changes (then nothing else is applied). */
  readonly fixed: readonly string[];
  readonly portsAdded: readonly PortSpec[];
  readonly portsRemoved: readonly string[];
  /** Ports changed in anything but their security: closed, then opened as the new spec says. */
  readonly portsReplaced: readonly PortSpec[];
  /** Ports whose security limits changed (and nothing else). */
  readonly security: readonly PortSpec[];
  /** The configured rule set, when it changed. */
  readonly rules: readonly RuleSpec[] | undefined;
  /** The configured fast-path links, when they changed; `redial`: peers whose address or dialling side changed. */
  readonly fastPath: { readonly links: readonly DesiredLink[]; readonly redial: readonly string[] } | undefined;
  /** The log level to set, when it changed (`undefined` in the config: `defaultLogLevel`). */
  readonly logLevel: string | undefined;
}

/** The changes that turn the running configuration `current` into `next`. */
export function planReload(current: DaemonConfig, next: DaemonConfig, init: { defaultLogLevel: string }): ReloadPlan {
  const reloadable = new Set<string>(RELOADABLE_SETTINGS);
  const keys = new Set([...Object.keys(current), ...Object.keys(next)]);
  const fixed = [...keys]
    .filter((k) => !reloadable.has(k) && !isDeepStrictEqual(current[k as keyof DaemonConfig], next[k as keyof DaemonConfig]))
    .sort();

  const before = new Map(current.ports.map((p) => [p.name, p] as const));
  const after = new Map(next.ports.map((p) => [p.name, p] as const));
  const portsAdded = next.ports.filter((p) => !before.has(p.name));
  const portsRemoved = current.ports.filter((p) => !after.has(p.name)).map((p) => p.name);
  const portsReplaced: PortSpec[] = [];
  const security: PortSpec[] = [];
  for (const p of next.ports) {
    const old = before.get(p.name);
    if (old === undefined) continue;
    const { security: s1, ...rest1 } = old;
    const { security: s2, ...rest2 } = p;
    if (!isDeepStrictEqual(rest1, rest2)) portsReplaced.push(p);
    else if (!isDeepStrictEqual(s1, s2)) security.push(p);
  }

  const oldLinks = new Map(configuredFastPathLinks(current).map((l) => [l.peer, l] as const));
  const links = configuredFastPathLinks(next);
  const redial = links
    .filter((l) => {
      const was = oldLinks.get(l.peer);
      return was !== undefined && (!isDeepStrictEqual(was.address, l.address) || was.dial !== l.dial);
    })
    .map((l) => l.peer);

  const level = (c: DaemonConfig): string => c.logLevel ?? init.defaultLogLevel;
  return {
    fixed,
    portsAdded,
    portsRemoved,
    portsReplaced,
    security,
    rules: isDeepStrictEqual(current.rules, next.rules) ? undefined : next.rules,
    fastPath: isDeepStrictEqual(current.fastPath, next.fastPath) ? undefined : { links, redial },
    logLevel: level(current) === level(next) ? undefined : level(next),
  };
}

/** Whether the plan changes nothing. */
export function isEmptyPlan(plan: ReloadPlan): boolean {
  return plan.fixed.length === 0 && plan.portsAdded.length === 0 && plan.portsRemoved.length === 0 && plan.portsReplaced.length === 0 &&
    plan.security.length === 0 && plan.rules === undefined && plan.fastPath === undefined && plan.logLevel === undefined;
}

/** The plan in a log line's fields: names, not specs. */
export function describePlan(plan: ReloadPlan): Record<string, unknown> {
  return {
    portsAdded: plan.portsAdded.map((p) => p.name),
    portsRemoved: plan.portsRemoved,
    portsReplaced: plan.portsReplaced.map((p) => p.name),
    securityChanged: plan.security.map((p) => p.name),
    rules: plan.rules?.length,
    fastPath: plan.fastPath?.links.map((l) => l.peer),
    logLevel: plan.logLevel,
  };
}
