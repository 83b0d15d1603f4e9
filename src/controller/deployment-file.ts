import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../common/errors.ts';
import { parseYamlConfig } from '../common/yaml-config.ts';
import { formatMac, isMacString, isMulticastMac, parseMac } from '../common/mac.ts';
import { hostSchema as hostAddress, vmAddressSchema } from '../common/address-schemas.ts';
import { checkScheduler, schedulerSchema } from './scheduler-config.ts';
import { checkOvsHosts, openflowListenSchema, ovsBridgeSchema, vtepSchema, vxlanSchema } from './ovs/ovs-deployment.ts';
import { DEFAULT_DETECTION_THRESHOLD, DEFAULT_SMOOTHING_INTERVAL_MS, DEFAULT_UPDATE_PERIOD_MS } from '../topology/vttif-defaults.ts';

/**
 * A deployment file (`topologies/*.yaml`): the sites, the hosts (one of them
 * the hub of the star backbone, at most one the standby hub), the WAN between sites, the VMs with their MAC,
 * IP and host, and the policy parameters of topology inference and adaptation.
 * Validated once, strictly — unknown keys, duplicate MACs/IPs/ids, references
 * to unknown sites or hosts, zero or two hubs are errors that name the file,
 * the line and the key — then frozen. The format is documented in
 * docs/deployment-file.md.
 */

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'an id is 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit');
const portNumber = z.number().int().min(0).max(65535);
const endpoint = z.strictObject({ host: hostAddress, port: portNumber });
const mac = z
  .string()
  .refine(isMacString, 'not a MAC address (expected e.g. 02:00:00:00:00:01)')
  .refine((s) => !isMacString(s) || !isMulticastMac(parseMac(s)), 'a VM MAC must be unicast (first octet even)')
  .transform((s) => formatMac(parseMac(s)));

const linkProperties = {
  /** Bandwidth of the path, megabits per second. */
  bandwidthMbit: z.number().positive().max(1_000_000),
  /** Round-trip time of the path, milliseconds. */
  rttMs: z.number().min(0).max(10_000),
  /** Packet loss on the path, 0..1 (for emulation). */
  loss: z.number().min(0).max(1).default(0),
};

const siteSchema = z.strictObject({
  id,
  description: z.string().optional(),
  /** The network inside the site, between its hosts. */
  lan: z.strictObject(linkProperties).default({ bandwidthMbit: 1000, rttMs: 0.2, loss: 0 }),
});

const hostSchema = z.strictObject({
  id,
  site: id,
  /** The hub of the star backbone (the proxy on the user's LAN); exactly one host has it. */
  hub: z.boolean().default(false),
  /** The standby hub: spokes fail over to it when they lose the hub; it keeps a trunk link to the hub. At most one host. */
  standbyHub: z.boolean().default(false),
  /** Where the daemon listens for tunnels (port 0: pick one). */
  listen: z
    .strictObject({ transport: z.enum(['tcp', 'tls', 'memory']).default('tls'), host: hostAddress, port: portNumber })
    .optional(),
  /**
   * This host's daemon keeps its site's image chunk store (docs/images.md) and
   * serves it here to the other sites' daemons (port 0: the port the daemon
   * reports in its hello). At most one host per site.
   */
  images: endpoint.optional(),
  /** An Open vSwitch bridge instead of a vnet daemon (docs/openflow.md, "Open vSwitch hosts"). */
  ovs: ovsBridgeSchema.optional(),
  /** The host's VXLAN tunnel endpoint (an IP address): OVS hosts' tunnel ports go to it. */
  vtep: vtepSchema.optional(),
});

const wanSchema = z.strictObject({
  sites: z.tuple([id, id]),
  ...linkProperties,
});

const vmSchema = z.strictObject({
  name: id,
  mac,
  ip: vmAddressSchema,
  host: id,
});

export const DEFAULT_POLICY = {
  updatePeriodMs: DEFAULT_UPDATE_PERIOD_MS,
  smoothingIntervalMs: DEFAULT_SMOOTHING_INTERVAL_MS,
  detectionThreshold: DEFAULT_DETECTION_THRESHOLD,
  fastPathBudget: 4,
  fastPathMinBytesPerSec: 125_000,
  placementThreshold: 0.1,
  autoMigrate: false,
  autoMigrateMaxConcurrent: 1,
  autoMigrateCooldownMs: 600_000,
} as const;

const policySchema = z.strictObject({
  /** How often daemons report their local traffic matrix and the controller reconciles. */
  updatePeriodMs: z.number().int().min(50).max(600_000).default(DEFAULT_POLICY.updatePeriodMs),
  /** Window of the low-pass filter over the traffic matrix (VTTIF's smoothing interval). */
  smoothingIntervalMs: z.number().int().min(50).max(3_600_000).default(DEFAULT_POLICY.smoothingIntervalMs),
  /** Relative change of the smoothed, normalised matrix that counts as a new topology (0..1). */
  detectionThreshold: z.number().min(0).max(1).default(DEFAULT_POLICY.detectionThreshold),
  /** The most fast-path links the controller keeps at once. */
  fastPathBudget: z.number().int().min(0).max(10_000).default(DEFAULT_POLICY.fastPathBudget),
  /** Traffic (bytes/s, smoothed) a host pair must exchange through the hub before adaptation adds a fast path; it is removed under half of it. */
  fastPathMinBytesPerSec: z.number().min(0).max(1e12).default(DEFAULT_POLICY.fastPathMinBytesPerSec),
  /** The score gain a placement change must beat before it is proposed (Supercloud's T, 0..1 relative). */
  placementThreshold: z.number().min(0).max(1).default(DEFAULT_POLICY.placementThreshold),
  /** Carry out proposed migrations without an operator (off by default). */
  autoMigrate: z.boolean().default(DEFAULT_POLICY.autoMigrate),
  /** Auto-migrate starts a move only while fewer migrations than this run (operators' included). */
  autoMigrateMaxConcurrent: z.number().int().min(1).max(1000).default(DEFAULT_POLICY.autoMigrateMaxConcurrent),
  /** Auto-migrate leaves a VM alone this long after its last migration started. */
  autoMigrateCooldownMs: z.number().int().min(0).max(7 * 86_400_000).default(DEFAULT_POLICY.autoMigrateCooldownMs),
});

export const deploymentSchema = z
  .strictObject({
    name: id,
    description: z.string().optional(),
    controller: z
      .strictObject({
        /** The control channel (daemons connect here, WebSocket over TLS). */
        control: endpoint.optional(),
        /** The operator API (HTTP + WebSocket). */
        api: endpoint.optional(),
        /** Where Open vSwitch bridges connect (OpenFlow 1.3; docs/openflow.md). */
        openflow: openflowListenSchema.optional(),
      })
      .default({}),
    sites: z.array(siteSchema).min(1),
    hosts: z.array(hostSchema).min(1),
    wan: z.array(wanSchema).default([]),
    vms: z.array(vmSchema).default([]),
    policy: policySchema.default({ ...DEFAULT_POLICY }),
    /** The scheduling policy that moves VMs (docs/deployment-file.md, "Scheduler"); none: placement advice on traffic × latency. */
    scheduler: schedulerSchema.optional(),
    /** The VXLAN overlay shared by OVS hosts and daemons: its VNI and UDP port. */
    vxlan: vxlanSchema.optional(),
  })
  .superRefine((d, ctx) => {
    const issue = (path: (string | number)[], message: string): void => { ctx.addIssue({ code: 'custom', path, message }); };
    const siteIds = new Set<string>();
    d.sites.forEach((s, i) => {
      if (siteIds.has(s.id)) issue(['sites', i, 'id'], `duplicate site id ${s.id}`);
      siteIds.add(s.id);
    });
    const hostIds = new Set<string>();
    let hub: number | undefined;
    const imageHosts = new Map<string, string>();
    let standby: number | undefined;
    d.hosts.forEach((h, i) => {
      if (hostIds.has(h.id)) issue(['hosts', i, 'id'], `duplicate host id ${h.id}`);
      hostIds.add(h.id);
      if (!siteIds.has(h.site)) issue(['hosts', i, 'site'], `unknown site ${h.site} (sites: ${[...siteIds].join(', ')})`);
      if (h.images !== undefined) {
        const other = imageHosts.get(h.site);
        if (other !== undefined) issue(['hosts', i, 'images'], `site ${h.site} already keeps its images on host ${other} (one chunk store per site)`);
        else imageHosts.set(h.site, h.id);
      }
      if (h.hub) {
        if (hub !== undefined) issue(['hosts', i, 'hub'], `two hubs: ${d.hosts[hub]!.id} and ${h.id} (exactly one host is the hub)`);
        hub ??= i;
      }
      if (h.standbyHub) {
        if (h.hub) issue(['hosts', i, 'standbyHub'], `host ${h.id} cannot be both the hub and the standby hub`);
        else if (standby !== undefined) issue(['hosts', i, 'standbyHub'], `two standby hubs: ${d.hosts[standby]!.id} and ${h.id} (at most one host is the standby hub)`);
        standby ??= i;
      }
    });
    if (hub === undefined) issue(['hosts'], 'no hub: exactly one host needs hub: true');
    const pairs = new Set<string>();
    d.wan.forEach((w, i) => {
      const [x, y] = w.sites;
      w.sites.forEach((s, j) => { if (!siteIds.has(s)) issue(['wan', i, 'sites', j], `unknown site ${s}`); });
      if (x === y) issue(['wan', i, 'sites'], `a WAN path from site ${x} to itself (use the site's lan)`);
      const key = [x, y].sort().join('|');
      if (pairs.has(key)) issue(['wan', i, 'sites'], `duplicate WAN path between ${x} and ${y}`);
      pairs.add(key);
    });
    const sitesWithHosts = [...new Set(d.hosts.map((h) => h.site))].sort();
    for (let i = 0; i < sitesWithHosts.length; i++) {
      for (let j = i + 1; j < sitesWithHosts.length; j++) {
        if (!pairs.has(`${sitesWithHosts[i]}|${sitesWithHosts[j]}`)) issue(['wan'], `no WAN path between sites ${sitesWithHosts[i]} and ${sitesWithHosts[j]}, which both have hosts`);
      }
    }
    const names = new Set<string>();
    const macs = new Set<string>();
    const ips = new Set<string>();
    d.vms.forEach((v, i) => {
      if (names.has(v.name)) issue(['vms', i, 'name'], `duplicate VM name ${v.name}`);
      if (macs.has(v.mac)) issue(['vms', i, 'mac'], `duplicate MAC ${v.mac}`);
      if (ips.has(v.ip)) issue(['vms', i, 'ip'], `duplicate IP ${v.ip}`);
      if (!hostIds.has(v.host)) issue(['vms', i, 'host'], `VM ${v.name} on unknown host ${v.host}`);
      names.add(v.name);
      macs.add(v.mac);
      ips.add(v.ip);
    });
    checkOvsHosts(d, issue);
    if (d.scheduler !== undefined) checkScheduler(d.scheduler, { vms: names, hosts: hostIds, sites: siteIds }, issue);
  });

export type Deployment = z.output<typeof deploymentSchema>;
export type DeploymentHost = Deployment['hosts'][number];
export type DeploymentVm = Deployment['vms'][number];
export type DeploymentPolicy = Deployment['policy'];
export type LinkProperties = { bandwidthMbit: number; rttMs: number; loss: number };

/** Read and validate a deployment file; throws ConfigError naming file, line and key. */
export function loadDeploymentFile(file: string): Readonly<Deployment> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read deployment file: ${(err as Error).message}`, { file }, { cause: err });
  }
  return parseDeployment(text, file);
}

/** Validate deployment YAML text; `file` names it in errors. */
export function parseDeployment(text: string, file: string): Readonly<Deployment> {
  return parseYamlConfig(text, file, deploymentSchema);
}

/** The hub host (validation guarantees exactly one). */
export function hubOf(d: Readonly<Deployment>): DeploymentHost {
  const hub = d.hosts.find((h) => h.hub);
  if (hub === undefined) throw new ConfigError('deployment has no hub', { key: 'hosts' });
  return hub;
}

/** The standby hub host, if the deployment has one. */
export function standbyHubOf(d: Readonly<Deployment>): DeploymentHost | undefined {
  return d.hosts.find((h) => h.standbyHub);
}

/** Round-trip time between two sites: the site's LAN within one, the WAN path between two (undefined: no path). */
export function siteRttMs(d: Readonly<Deployment>, a: string, b: string): number | undefined {
  if (a === b) return d.sites.find((s) => s.id === a)?.lan.rttMs;
  return d.wan.find((x) => (x.sites[0] === a && x.sites[1] === b) || (x.sites[0] === b && x.sites[1] === a))?.rttMs;
}

/** Bandwidth, RTT and loss between two hosts: their site's LAN, or the WAN path between their sites. */
export function pathBetween(d: Readonly<Deployment>, hostA: string, hostB: string): LinkProperties | undefined {
  const a = d.hosts.find((h) => h.id === hostA);
  const b = d.hosts.find((h) => h.id === hostB);
  if (a === undefined || b === undefined) return undefined;
  if (a.site === b.site) return d.sites.find((s) => s.id === a.site)?.lan;
  const w = d.wan.find((x) => (x.sites[0] === a.site && x.sites[1] === b.site) || (x.sites[0] === b.site && x.sites[1] === a.site));
  return w === undefined ? undefined : { bandwidthMbit: w.bandwidthMbit, rttMs: w.rttMs, loss: w.loss };
}

