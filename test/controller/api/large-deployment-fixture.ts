import { MemoryControllerModel } from '../../../src/controller/memory-controller-model.ts';
import type { HostView, LinkView, MatrixEdge, TopologyEdge, VmView } from '../../../src/controller/api-views.ts';
import { FIXTURE_NOW } from './api-fixture.ts';

/**
 * A deployment at the scale the web page must stay readable at: 20 sites (the
 * hub's LAN and 19 others with 2 to 4 hosts each, 58 hosts), 200 VMs, a
 * backbone link from every host to the hub, a fast-path link between
 * neighbouring sites here and there, an inferred ring through all 200 VMs and
 * the matching smoothed traffic matrix, and a migration in progress.
 *
 * The ring runs through the VMs in the order they are placed (site by site,
 * host by host: what a scheduler would do), but the VMs' names are a seeded
 * shuffle of vm001…vm200, so sorting by name scatters the ring while sorting
 * by the inferred structure shows it as a band along the diagonal.
 */

export const LARGE_SITES = 20;
export const LARGE_VMS = 200;

const mac = (i: number): string => `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

/** A seeded permutation of 0..n-1 (Fisher–Yates over a small LCG). */
function shuffled(n: number, seed: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface LargeDeployment {
  hosts: HostView[];
  vms: VmView[];
  /** The VMs' MACs in ring order (= placement order). */
  ring: string[];
}

export function largeDeployment(): LargeDeployment {
  const hosts: HostView[] = [{ id: 'hub', site: 'lan', addresses: [{ transport: 'tls', host: '10.0.0.1', port: 7000 }], role: 'hub', state: 'up', lastSeen: FIXTURE_NOW, hub: null, hubState: 'active' }];
  for (let s = 1; s < LARGE_SITES; s++) {
    const site = `site-${String(s).padStart(2, '0')}`;
    for (let k = 1; k <= 2 + (s % 3); k++) {
      hosts.push({
        id: `${site}-h${k}`, site, addresses: [{ transport: 'tls', host: `10.${s}.0.${k}`, port: 7000 }], role: 'spoke',
        state: s === 7 && k === 2 ? 'down' : 'up', lastSeen: FIXTURE_NOW, hub: s === 7 && k === 2 ? null : 'hub', hubState: null,
      });
    }
  }
  const spokes = hosts.slice(1);
  const names = shuffled(LARGE_VMS, 7);
  const vms: VmView[] = [];
  for (let i = 0; i < LARGE_VMS; i++) {
    // Blocks of consecutive VMs per host: 200 over 57 hosts, 3 or 4 each.
    const host = spokes[Math.floor((i * spokes.length) / LARGE_VMS)]!;
    vms.push({ mac: mac(i + 1), ip: `10.10.${(i + 1) >> 8}.${(i + 1) & 0xff}`, host: host.id, state: 'running', name: `vm${String(names[i]! + 1).padStart(3, '0')}` });
  }
  return { hosts, vms, ring: vms.map((v) => v.mac) };
}

const link = (a: string, b: string, kind: LinkView['kind'], bytesPerSec: number): LinkView => ({
  a: a < b ? a : b, b: a < b ? b : a, kind, state: 'up', requestedBy: kind === 'backbone' ? 'config' : 'adaptation', actor: kind === 'backbone' ? null : 'adaptation',
  reason: kind === 'backbone' ? 'star backbone' : 'ring neighbours across sites', bytes: bytesPerSec * 60, frames: Math.round(bytesPerSec / 20), bytesPerSec, framesPerSec: Math.round(bytesPerSec / 1200),
});

/** The ring's undirected edges with weights (1 for the heaviest) and the directed matrix entries. */
export function ringTraffic(ring: readonly string[]): { edges: TopologyEdge[]; matrix: MatrixEdge[] } {
  const edges: TopologyEdge[] = ring.map((a, i) => {
    const bytesPerSec = 200_000 + ((i * 7919) % 800_000);
    return { a, b: ring[(i + 1) % ring.length]!, weight: bytesPerSec / 1_000_000, bytesPerSec };
  });
  const matrix = edges.flatMap((e) => [
    { src: e.a, dst: e.b, bytesPerSec: e.bytesPerSec * 0.6, framesPerSec: e.bytesPerSec / 2000 },
    { src: e.b, dst: e.a, bytesPerSec: e.bytesPerSec * 0.4, framesPerSec: e.bytesPerSec / 3000 },
  ]);
  return { edges, matrix };
}

/** A star: every VM talks to `centre` (both ways). */
export function starTraffic(centre: string, vms: readonly string[]): { edges: TopologyEdge[]; matrix: MatrixEdge[] } {
  const edges = vms.filter((m) => m !== centre).map((m, i) => ({ a: centre, b: m, weight: 0.5 + ((i * 37) % 50) / 100, bytesPerSec: 100_000 + i * 1000 }));
  const matrix = edges.flatMap((e) => [
    { src: e.a, dst: e.b, bytesPerSec: e.bytesPerSec, framesPerSec: 50 },
    { src: e.b, dst: e.a, bytesPerSec: e.bytesPerSec / 2, framesPerSec: 30 },
  ]);
  return { edges, matrix };
}

export function buildLargeModel(): MemoryControllerModel {
  let t = FIXTURE_NOW;
  const model = new MemoryControllerModel({ now: () => (t += 10) });
  const d = largeDeployment();
  for (const h of d.hosts) model.putHost(h);
  for (const v of d.vms) model.putVm(v);
  d.hosts.slice(1).forEach((h, i) => model.putLink({ ...link('hub', h.id, 'backbone', 50_000 + ((i * 104_729) % 3_000_000)), ...(h.state === 'down' ? { state: 'down' } : {}) }));
  for (const s of [2, 5, 9, 13, 17]) model.putLink(link(`site-${String(s).padStart(2, '0')}-h1`, `site-${String(s + 1).padStart(2, '0')}-h1`, 'fast-path', 1_500_000));
  const ring = ringTraffic(d.ring);
  model.setTopology({ class: 'ring', centre: null, confidence: 0.88, edges: ring.edges, detectedAt: FIXTURE_NOW, weightsAt: FIXTURE_NOW });
  model.setMatrix({ at: FIXTURE_NOW, periodMs: 1000, vms: d.vms.map((v) => ({ mac: v.mac, ip: v.ip, host: v.host, name: v.name })), edges: ring.matrix });
  const moving = d.vms[42]!;
  model.putMigration({
    id: 'm-large', vm: moving.mac, from: moving.host!, to: 'site-18-h1', phase: 'memory', progress: 0.3, bytesSent: 3e8, bytesTotal: 1e9, etaMs: 20_000,
    state: 'running', startedAt: FIXTURE_NOW, finishedAt: null, error: null, step: 'transfer', rule: 'smart-stop', requestedBy: 'operator:admin',
    enginePhase: 'memory', iteration: 2, pagesLeft: 90_000, dirtyRate: 800, cutover: null,
  });
  return model;
}
