import { localMac } from '../../src/common/mac.ts';
import type { TrafficEntry, TrafficReport } from '../../src/topology/traffic-report.ts';
import { buildRegistryIndex, type RegistryIndex, type VmPlacement } from '../../src/topology/vm-registry.ts';

/** Hand-made fixtures for the topology tests: VM i is "vm{i}" with MAC localMac(i). */
export function mac(i: number): number {
  return localMac(i);
}

export function vmsOn(hosts: readonly string[]): VmPlacement[] {
  return hosts.map((host, i) => ({ id: `vm${i}`, mac: mac(i), host }));
}

export function registryOn(hosts: readonly string[]): RegistryIndex {
  return buildRegistryIndex(vmsOn(hosts));
}

/** An entry of `bytes` bytes from vm{src} to vm{dst} (frames chosen to be consistent). */
export function entry(src: number, dst: number, bytes: number): TrafficEntry {
  return { src: mac(src), dst: mac(dst), frames: Math.max(1, Math.ceil(bytes / 1500)), bytes };
}

export function report(host: string, startMs: number, endMs: number, entries: TrafficEntry[]): TrafficReport {
  return { host, startMs, endMs, entries };
}
