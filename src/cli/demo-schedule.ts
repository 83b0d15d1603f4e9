/**
 * The scheduler in `vnet demo`: `--sun` runs the compressed day of
 * topologies/follow-the-sun-day.yaml (the scheduler's clock 720 times the
 * wall clock's: the master follows its clients around the world in two
 * minutes, each move a live migration of its model guest through the
 * coordinator), `--day SECONDS` sets how long the policy's day lasts
 * (`scheduler.clock.speedup` = 86400 / SECONDS), and the summary line shows
 * the policy's time of day, the clients' shares by site at that hour and
 * where each service's primary runs.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../common/errors.ts';
import type { PlacementView } from '../controller/api-views.ts';
import type { Deployment } from '../controller/deployment-file.ts';
import { clientWeightsAt, describeWeights } from '../topology/follow-the-sun.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SUN_DEMO_TOPOLOGY = join(ROOT, 'topologies/follow-the-sun-day.yaml');

const DAY_SECONDS = 86_400;

/** The deployment with the scheduler's day lasting `seconds` of wall time (1 s … a real day). */
export function withDayLength(d: Readonly<Deployment>, seconds: number): Readonly<Deployment> {
  if (d.scheduler === undefined) throw new ConfigError(`--day needs a deployment with a scheduler section (${d.name} has none)`, { file: 'command line', key: 'day' });
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > DAY_SECONDS) {
    throw new ConfigError(`--day is the length of the policy's day in seconds, 1 to ${DAY_SECONDS}; got ${seconds}`, { file: 'command line', key: 'day' });
  }
  return { ...d, scheduler: { ...d.scheduler, clock: { ...d.scheduler.clock, speedup: DAY_SECONDS / seconds } } };
}

/**
 * "sun 14:24 UTC ×720: clients frankfurt 55%, virginia 33%, tokyo 12%; zk1 on fra-1 (frankfurt)":
 * the scheduler's last run as the summary line shows it; undefined without a scheduling policy.
 */
export function schedulePart(p: PlacementView, d: Readonly<Deployment>, hostOf: (vm: string) => string | undefined): string | undefined {
  if (p.policy === undefined) return undefined;
  const at = p.policyTime ?? p.computedAt;
  if (at === null) return `${p.policy}: not run yet`;
  const clock = `${new Date(at).toISOString().slice(11, 16)} UTC${p.speedup !== undefined && p.speedup !== 1 ? ` ×${+p.speedup.toFixed(2)}` : ''}`;
  const sun = d.scheduler?.followTheSun;
  if (sun === undefined) return `${p.policy} ${clock}: ${p.moves.length} move(s) proposed`;
  const clients = sun.clients === 'measured' ? 'measured' : describeWeights(clientWeightsAt(new Map(Object.entries(sun.clients)), at));
  const site = new Map(d.hosts.map((h) => [h.id, h.site]));
  const primaries = sun.services.map((s) => {
    const host = hostOf(s.primary);
    return `${s.primary} on ${host ?? '?'}${host !== undefined && site.has(host) ? ` (${site.get(host)})` : ''}`;
  });
  return `sun ${clock}: clients ${clients}; ${primaries.join(', ')}`;
}
