/**
 * A 1,000-host / 10,000-VM deployment model for counting tests of the
 * reconcile (rule-set-builds.test.ts, rule-patches.test.ts): a hub, 999
 * spokes with fast paths in pairs (s0001–s0002, s0003–s0004, …, as
 * adaptation makes them), 10 VMs each, and a reconcile over a
 * DesiredStateCache that keeps the stored versions and the sessions'
 * progress as the control loop would. No I/O, no timing.
 */
import { DesiredStateCache } from '../../src/controller/desired-state-cache.ts';
import { planReconcile, type ReconcileInput } from '../../src/controller/reconcile-planner.ts';
import type { SessionProgress } from '../../src/controller/reconcile.ts';
import { RulePatchJournal } from '../../src/controller/rule-patch-journal.ts';
import type { DesiredVersions, HostRecord, LinkRecord } from '../../src/controller/store/records.ts';

export const SCALE_HOSTS = 1000;
export const SCALE_VMS_PER_HOST = 10;

export const scaleHostId = (i: number): string => (i === 0 ? 'hub' : `s${String(i).padStart(4, '0')}`);
const mac = (i: number): string => `02:00:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

export interface ScaleModel {
  hosts: HostRecord[];
  vms: Array<{ mac: string; host: string | undefined }>;
  links: LinkRecord[];
  cache: DesiredStateCache;
  versions: Map<string, DesiredVersions>;
  sessions: Map<string, SessionProgress>;
  reconcile(why: string): ReturnType<typeof planReconcile>;
  /** Every host connected at the version stored for it (a controller restarted, a new leader); `rulePatches`: they take patches. */
  connectAll(rulePatches: boolean): void;
}

/** The model; `journal`: rule-set patches journalled (the control loop's Reconciler does). */
export function scaleModel(journal?: RulePatchJournal): ScaleModel {
  const hosts: HostRecord[] = Array.from({ length: SCALE_HOSTS }, (_, i) => ({
    id: scaleHostId(i), site: undefined, role: i === 0 ? 'hub' : 'spoke', addresses: [{ transport: 'tcp', host: '127.0.0.1', port: 7000 + i }],
    connected: false, firstSeenMs: undefined, lastSeenMs: undefined, facts: undefined,
  }));
  const vms = hosts.flatMap((h, i) => Array.from({ length: SCALE_VMS_PER_HOST }, (_, k) => ({ mac: mac(i * SCALE_VMS_PER_HOST + k), host: h.id as string | undefined })));
  const links: LinkRecord[] = [];
  for (let i = 1; i + 1 < SCALE_HOSTS; i += 2) links.push({ a: scaleHostId(i), b: scaleHostId(i + 1), kind: 'fast-path', requestedBy: 'adaptation', reason: 'pair', createdMs: 0 });
  const cache = new DesiredStateCache();
  const versions = new Map<string, DesiredVersions>();
  const sessions = new Map<string, SessionProgress>();
  return {
    hosts, vms, links, cache, versions, sessions,
    reconcile(why) {
      const input: ReconcileInput = {
        hosts, vms, links, sessions,
        versionsOf: (h) => versions.get(h) ?? { host: h, linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 },
        desiredOf: (view) => cache.update(view), ruleChangesOf: (h) => cache.ruleChanges(h),
        ...(journal !== undefined ? { patches: { journal, rulePatchOf: (h: string) => cache.rulePatch(h) } } : {}),
      };
      const planned = planReconcile(input, why, 0, 3000);
      for (const w of planned.effects.writes) if (w.op === 'versions') versions.set(w.versions.host, w.versions);
      for (const [h, p] of planned.state) sessions.set(h, p);
      return planned;
    },
    connectAll(rulePatches) {
      for (const h of hosts) {
        const v = versions.get(h.id)!;
        sessions.set(h.id, { linksVersion: v.linksVersion, rulesVersion: v.rulesVersion, linksInFlight: undefined, rulesInFlight: undefined, ...(rulePatches ? { rulePatches } : {}) });
      }
    },
  };
}
