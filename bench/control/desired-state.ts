/**
 * The reconcile's desired state at scale, in this process (no sockets):
 * every host's rule set built from scratch (`desiredState` and the digests
 * `nextVersions` computes, as every reconcile did before
 * desired-state-cache.ts), against the cache: its first build, then one VM
 * moved between two spokes, then nothing changed.
 *
 *   node --import tsx bench/control/desired-state.ts [--hosts 1000] [--vms 10] [--moves 5]
 */
import { DesiredStateCache } from '../../src/controller/desired-state-cache.ts';
import { desiredState, nextVersions, type RegistryView } from '../../src/controller/reconcile.ts';
import { scaleHostId, scaleVmMac } from './scale-host.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const hostCount = arg('--hosts', 1000);
const vmsPerHost = arg('--vms', 10);
const moves = arg('--moves', 5);

const hosts = Array.from({ length: hostCount }, (_, i) => ({
  id: scaleHostId(i), role: i === 0 ? 'hub' as const : 'spoke' as const, addresses: [{ transport: 'tls' as const, host: '127.0.0.1', port: 20_000 + i }],
}));
const vms: Array<{ mac: string; host: string | undefined }> = hosts.flatMap((h, i) => Array.from({ length: vmsPerHost }, (_, s) => ({ mac: scaleVmMac(i, s), host: h.id })));
const view = (): RegistryView => ({ hubId: 'hub', hubOf: new Map(hosts.slice(1).map((h) => [h.id, 'hub'] as const)), hosts, vms: vms.map((v) => ({ ...v })), links: [] });
const ms = (t0: number): string => `${(performance.now() - t0).toFixed(0)} ms`;

console.log(`${hostCount} hosts, ${hostCount * vmsPerHost} VMs (one process; a shared machine: noisy)`);
let t0 = performance.now();
const none = { host: '', linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 };
for (const [host, want] of desiredState(view())) nextVersions({ ...none, host }, want);
console.log(`every host built from scratch, with digests (each reconcile, before): ${ms(t0)}`);
const cache = new DesiredStateCache();
t0 = performance.now();
cache.update(view());
console.log(`cache, first build:                                                ${ms(t0)}`);
for (let k = 0; k < moves; k++) {
  vms[vmsPerHost * (1 + 4 * k)]!.host = hosts[2 + 4 * k]!.id;
  t0 = performance.now();
  cache.update(view());
  console.log(`cache, one VM moved between two spokes:                            ${ms(t0)} (hosts patched ${cache.last.patched}, rebuilt ${cache.last.rebuilt})`);
}
t0 = performance.now();
cache.update(view());
console.log(`cache, nothing changed:                                            ${ms(t0)}`);
