import { Registry } from 'prom-client';
import { silentLogger } from '../../../src/common/logger.ts';
import { startApiServer } from '../../../src/controller/api/api-server.ts';
import type { ApiServer } from '../../../src/controller/api/api-server.ts';
import { MemoryTokenStore, createApiToken } from '../../../src/controller/api/token-store.ts';
import { MemoryControllerModel } from '../../../src/controller/memory-controller-model.ts';
import type { HostView, LinkView, VmView } from '../../../src/controller/api-views.ts';

/**
 * A small deployment in the in-memory model, served by a real API server on
 * 127.0.0.1:0: the hub on the user's LAN, two hosts in each of two clouds,
 * eight VMs, four backbone links to the hub and one fast-path link, an
 * inferred ring and a migration in progress.
 */

export const FIXTURE_NOW = Date.UTC(2026, 10, 22, 4, 0, 0);

export const fixtureHosts: HostView[] = [
  { id: 'hub', site: 'lan', addresses: [{ transport: 'tls', host: '10.0.0.1', port: 7000 }], role: 'hub', state: 'up', lastSeen: FIXTURE_NOW, hub: null, hubState: 'active' },
  { id: 'aws-1', site: 'aws', addresses: [{ transport: 'tls', host: '10.1.0.1', port: 7000 }], role: 'spoke', state: 'up', lastSeen: FIXTURE_NOW, hub: 'hub', hubState: null },
  { id: 'aws-2', site: 'aws', addresses: [{ transport: 'tls', host: '10.1.0.2', port: 7000 }], role: 'spoke', state: 'up', lastSeen: FIXTURE_NOW, hub: 'hub', hubState: null },
  { id: 'gcp-1', site: 'gcp', addresses: [{ transport: 'tls', host: '10.2.0.1', port: 7000 }], role: 'spoke', state: 'up', lastSeen: FIXTURE_NOW, hub: 'hub', hubState: null },
  { id: 'gcp-2', site: 'gcp', addresses: [{ transport: 'tls', host: '10.2.0.2', port: 7000 }], role: 'spoke', state: 'down', lastSeen: FIXTURE_NOW - 60_000, hub: null, hubState: null },
];

const vm = (n: number, host: string): VmView => ({
  mac: `02:00:00:00:00:0${n}`,
  ip: `10.10.0.${n}`,
  host,
  state: 'running',
  name: `vm${n}`,
});

export const fixtureVms: VmView[] = [vm(1, 'aws-1'), vm(2, 'aws-1'), vm(3, 'aws-2'), vm(4, 'aws-2'), vm(5, 'gcp-1'), vm(6, 'gcp-1'), vm(7, 'gcp-2'), vm(8, 'gcp-1')];

const backbone = (spoke: string, bytesPerSec: number): LinkView => ({
  a: 'hub',
  b: spoke,
  kind: 'backbone',
  state: 'up',
  requestedBy: 'config',
  actor: null,
  reason: 'star backbone',
  bytes: bytesPerSec * 60,
  frames: Math.round((bytesPerSec * 60) / 1000),
  bytesPerSec,
  framesPerSec: Math.round(bytesPerSec / 1000),
});

export function buildFixtureModel(): MemoryControllerModel {
  let t = FIXTURE_NOW;
  const model = new MemoryControllerModel({ now: () => (t += 10) });
  for (const h of fixtureHosts) model.putHost(h);
  for (const v of fixtureVms) model.putVm(v);
  model.putLink(backbone('aws-1', 2_500_000));
  model.putLink(backbone('aws-2', 400_000));
  model.putLink(backbone('gcp-1', 1_200_000));
  model.putLink({ ...backbone('gcp-2', 0), state: 'down' });
  model.putLink({
    a: 'aws-1',
    b: 'gcp-1',
    kind: 'fast-path',
    state: 'up',
    requestedBy: 'adaptation',
    actor: 'adaptation',
    reason: 'vm1↔vm5 carry 9.6 Mbit/s',
    bytes: 80_000_000,
    frames: 60_000,
    bytesPerSec: 1_200_000,
    framesPerSec: 900,
  });
  const ring = ['02:00:00:00:00:01', '02:00:00:00:00:03', '02:00:00:00:00:05', '02:00:00:00:00:07'];
  model.setTopology({
    class: 'ring',
    centre: null,
    confidence: 0.91,
    edges: ring.map((a, i) => ({ a, b: ring[(i + 1) % ring.length]!, weight: i === 0 ? 1 : 0.6, bytesPerSec: i === 0 ? 1_000_000 : 600_000 })),
    detectedAt: FIXTURE_NOW,
    weightsAt: FIXTURE_NOW,
  });
  model.setRules('aws-1', 3, [{ id: 'fp-vm5', priority: 100, src: 'any', dst: '02:00:00:00:00:05', action: { link: 'gcp-1' }, reason: 'fast path to gcp-1' }], 3);
  model.setMatrix({
    at: FIXTURE_NOW,
    periodMs: 1000,
    vms: fixtureVms.map((v) => ({ mac: v.mac, ip: v.ip, host: v.host, name: v.name })),
    edges: [
      { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:05', bytesPerSec: 1_000_000, framesPerSec: 700 },
      { src: '02:00:00:00:00:05', dst: '02:00:00:00:00:01', bytesPerSec: 200_000, framesPerSec: 300 },
    ],
  });
  model.putMigration({
    id: 'm1',
    vm: '02:00:00:00:00:08',
    from: 'gcp-1',
    to: 'aws-2',
    phase: 'memory',
    progress: 0.42,
    bytesSent: 430_000_000,
    bytesTotal: 1_024_000_000,
    etaMs: 12_000,
    state: 'running',
    startedAt: FIXTURE_NOW,
    finishedAt: null,
    error: null,
    step: 'transfer',
    rule: 'smart-stop',
    requestedBy: 'operator:admin',
    enginePhase: 'memory',
    iteration: 3,
    pagesLeft: 61_000,
    dirtyRate: 1200,
    cutover: null,
  });
  model.setPlacement({
    computedAt: FIXTURE_NOW,
    score: 0.61,
    proposedScore: 0.74,
    threshold: 0.05,
    moves: [{ vm: '02:00:00:00:00:07', from: 'gcp-2', to: 'gcp-1', gain: 0.13, reason: 'gcp-2 is down; vm7 talks to vm5 on gcp-1' }],
  });
  model.addDecision({ kind: 'fast-path-added', reason: 'vm1↔vm5 above threshold', detail: { a: 'aws-1', b: 'gcp-1' } });
  return model;
}

export interface FixtureServer {
  server: ApiServer;
  model: MemoryControllerModel;
  tokens: MemoryTokenStore;
  registry: Registry;
  token: string;
}

/**
 * `model` and `tokens` default to the fixture's and a new store; passing the
 * previous server's store and port restarts "the same" controller (the old
 * token still works).
 */
export async function startFixtureServer(
  init: { maxBodyBytes?: number; port?: number; model?: MemoryControllerModel; tokens?: MemoryTokenStore } = {},
): Promise<FixtureServer> {
  const model = init.model ?? buildFixtureModel();
  const tokens = init.tokens ?? new MemoryTokenStore();
  const { token } = createApiToken(tokens, 'admin', FIXTURE_NOW);
  const registry = new Registry();
  const server = await startApiServer(
    { logger: silentLogger(), model, tokens, registry },
    { host: '127.0.0.1', port: init.port ?? 0, ...(init.maxBodyBytes !== undefined ? { maxBodyBytes: init.maxBodyBytes } : {}) },
  );
  return { server, model, tokens, registry, token };
}
