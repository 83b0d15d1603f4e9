import { z } from 'zod';
import { PROFILE_NAMES, type ProfileName } from '../migration/guests/workload-profiles.ts';

/**
 * The deployment file's `scheduler` section (docs/deployment-file.md,
 * "Scheduler"): which policy runs, its threshold T in the policy's own
 * units, the hosts' and VMs' resources, and the chosen policy's inputs.
 * Validated with the rest of the file (`checkScheduler` names the key of a
 * reference to an unknown VM, host or site).
 */

const time = z.union([z.number().int().min(0), z.string().datetime({ offset: true })]).transform((t) => (typeof t === 'number' ? t : Date.parse(t)));
const hourly = z.array(z.number().min(0).max(1e12)).length(24, 'expected 24 hourly values (UTC 0h..23h)');
const moveCost = (perGiB: number, perSecond: number) => z.strictObject({
  /** Score units per GiB the migration sends. */
  perGiB: z.number().min(0).max(1e9).default(perGiB),
  /** Score units per second the migration takes. */
  perSecond: z.number().min(0).max(1e9).default(perSecond),
}).default({ perGiB, perSecond });

const followTheSunSchema = z.strictObject({
  services: z.array(z.strictObject({ name: z.string().min(1), primary: z.string().min(1), members: z.array(z.string().min(1)).default([]) })).min(1),
  /** Client weights per site by hour (UTC), or measured from the traffic entering at each site. */
  clients: z.union([z.literal('measured'), z.record(z.string(), hourly)]),
  horizonHours: z.number().positive().max(168).default(1),
  moveCost: moveCost(0, 1),
});

const spotMarketSchema = z.strictObject({
  /** site → price series ($ per VM-hour from `at` on). */
  prices: z.record(z.string(), z.array(z.strictObject({ at: time, perHour: z.number().min(0).max(1e6) })).min(1)),
  terminations: z.array(z.strictObject({ site: z.string().min(1), notice: time, at: time })).default([]),
  billingPeriodMs: z.number().int().min(60_000).max(86_400_000).default(3_600_000),
  billingEpoch: time.default(0),
  bidPerHour: z.number().positive().optional(),
  terminationPenalty: z.number().positive().default(1000),
  /** Billing hours a price difference is counted for (the current prices assumed to hold). */
  horizonHours: z.number().positive().max(168).default(1),
  moveCost: moveCost(0.09, 0),
});

const packingSchema = z.strictObject({
  load: hourly,
  hostCostPerHour: z.union([z.number().min(0), z.record(z.string(), z.number().min(0))]).default(1),
  headroom: z.number().gt(0).max(1).default(0.8),
  overloadPerCpuHour: z.number().min(0).default(2),
  horizonHours: z.number().positive().max(168).default(1),
  moveCost: moveCost(0.01, 0),
});

const vmResources = z.strictObject({
  cpu: z.number().positive().max(1024).default(1),
  memoryMiB: z.number().int().positive().max(16 * 1024 * 1024).default(1024),
  diskGiB: z.number().min(0).max(1e6).default(0),
  /** Workload profile the migration engine's estimate runs (how fast it dirties memory and disk). */
  profile: z.enum(PROFILE_NAMES as [ProfileName, ...ProfileName[]]).default('tpc-w'),
});

const trafficLatencySchema = z.strictObject({ moveCost: moveCost(0, 0) });

/** The policy's clock (scheduler-clock.ts): where its day starts and how fast it runs; the data plane and migrations keep real time. */
const clockSchema = z.strictObject({
  /** The policy's time when the controller starts (default: the wall clock's). */
  startAt: time.optional(),
  /** Policy seconds per wall second: 720 runs a day in 2 minutes (the demo's compressed day). */
  speedup: z.number().min(1).max(86_400).default(1),
});

export const schedulerSchema = z.strictObject({
  policy: z.enum(['traffic-latency', 'follow-the-sun', 'spot-market', 'packing']),
  /** T: the net gain (score gain − move cost) an action must beat, in the policy's units. */
  threshold: z.number().min(0).max(1e12),
  /** How often the policy runs (default 10 update periods). */
  intervalMs: z.number().int().min(50).max(86_400_000).optional(),
  maxActions: z.number().int().min(1).max(1000).default(8),
  clock: clockSchema.default({ speedup: 1 }),
  resources: z.strictObject({
    hosts: z.record(z.string(), z.strictObject({ cpu: z.number().positive().max(1e6), memoryMiB: z.number().int().positive().max(1e12) })).default({}),
    vms: z.record(z.string(), vmResources).default({}),
  }).default({ hosts: {}, vms: {} }),
  trafficLatency: trafficLatencySchema.default({ moveCost: { perGiB: 0, perSecond: 0 } }),
  followTheSun: followTheSunSchema.optional(),
  spotMarket: spotMarketSchema.optional(),
  packing: packingSchema.optional(),
});

export type SchedulerConfig = z.output<typeof schedulerSchema>;
export type VmResources = z.output<typeof vmResources>;
export type SchedulerClockConfig = z.output<typeof clockSchema>;
export const DEFAULT_VM_RESOURCES: VmResources = Object.freeze({ cpu: 1, memoryMiB: 1024, diskGiB: 0, profile: 'tpc-w' });

/** Cross-references: the chosen policy's section present; VMs, hosts and sites it names exist. */
export function checkScheduler(
  s: SchedulerConfig, known: { vms: ReadonlySet<string>; hosts: ReadonlySet<string>; sites: ReadonlySet<string> },
  issue: (path: (string | number)[], message: string) => void,
): void {
  const section = { 'traffic-latency': 'trafficLatency', 'follow-the-sun': 'followTheSun', 'spot-market': 'spotMarket', packing: 'packing' } as const;
  const key = section[s.policy];
  if (s[key] === undefined) issue(['scheduler', key], `policy ${s.policy} needs a scheduler.${key} section`);
  const vm = (path: (string | number)[], name: string): void => { if (!known.vms.has(name)) issue(['scheduler', ...path], `unknown VM ${name}`); };
  const site = (path: (string | number)[], name: string): void => { if (!known.sites.has(name)) issue(['scheduler', ...path], `unknown site ${name}`); };
  for (const h of Object.keys(s.resources.hosts)) if (!known.hosts.has(h)) issue(['scheduler', 'resources', 'hosts', h], `unknown host ${h}`);
  for (const v of Object.keys(s.resources.vms)) vm(['resources', 'vms', v], v);
  s.followTheSun?.services.forEach((svc, i) => {
    vm(['followTheSun', 'services', i, 'primary'], svc.primary);
    svc.members.forEach((m, j) => vm(['followTheSun', 'services', i, 'members', j], m));
  });
  const clients = s.followTheSun?.clients;
  if (clients !== undefined && clients !== 'measured') for (const x of Object.keys(clients)) site(['followTheSun', 'clients', x], x);
  if (s.spotMarket !== undefined) {
    for (const x of Object.keys(s.spotMarket.prices)) site(['spotMarket', 'prices', x], x);
    s.spotMarket.terminations.forEach((t, i) => {
      site(['spotMarket', 'terminations', i, 'site'], t.site);
      if (!(t.notice <= t.at)) issue(['scheduler', 'spotMarket', 'terminations', i, 'notice'], 'the notice comes after the termination');
    });
  }
  const cost = s.packing?.hostCostPerHour;
  if (cost !== undefined && typeof cost !== 'number') for (const h of Object.keys(cost)) if (!known.hosts.has(h)) issue(['scheduler', 'packing', 'hostCostPerHour', h], `unknown host ${h}`);
}
