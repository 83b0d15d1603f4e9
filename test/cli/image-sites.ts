/**
 * Two sites for the `vnet ctl images` tests against a real controller
 * (ctl-runner.ts's ctlAgainstController): east, whose host `hub` is the hub,
 * and west with its spoke `hW`, each a real daemon with a chunk server on
 * loopback and its chunk store under the test's directory.
 */
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig, type RunningDaemon } from '../../src/host/daemon-runner.ts';
import { issueHostCert } from '../../src/pki/certs.ts';
import type { ControllerProcess } from '../../src/controller/launch.ts';

/** The deployment: the two sites 40 ms apart, each host with a chunk server. */
export function imageSitesDeployment(name: string): string {
  return `
name: ${name}
controller: { control: { host: 127.0.0.1, port: 0 }, api: { host: 127.0.0.1, port: 0 } }
sites: [{ id: east }, { id: west }]
wan:
  - { sites: [east, west], bandwidthMbit: 100, rttMs: 40 }
hosts:
  - { id: hub, site: east, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hW, site: west, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
`;
}

export type ImageSiteHost = 'hub' | 'hW';

/**
 * Start one of the two hosts' daemons against the controller: `hubPort` (the
 * hub's listening port) for hW; `images` adds to its `images` section.
 */
export async function startImageSite(c: { readonly dir: string; readonly proc: ControllerProcess }, host: ImageSiteHost, hubPort: number | undefined, images: Record<string, unknown> = {}): Promise<RunningDaemon> {
  const certs = join(c.dir, 'certs');
  await issueHostCert(certs, host);
  return startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig({
    host, site: host === 'hub' ? 'east' : 'west', role: host === 'hub' ? 'hub' : 'spoke', transport: 'tls', tls: { dir: certs },
    listen: { host: '127.0.0.1', port: 0 }, ports: [], controller: { url: `wss://127.0.0.1:${c.proc.controller.controlPort}/control` },
    ...(host !== 'hub' ? { hub: { host: '127.0.0.1', port: hubPort }, hubId: 'hub' } : {}),
    images: { dir: join(c.dir, `chunks-${host}`), host: '127.0.0.1', port: 0, ...images },
  }));
}

/** Both hosts, the hub first; `images(host)` adds to each one's `images` section. */
export async function startImageSites(c: { readonly dir: string; readonly proc: ControllerProcess }, images: (host: ImageSiteHost) => Record<string, unknown> = () => ({})): Promise<RunningDaemon[]> {
  const hub = await startImageSite(c, 'hub', undefined, images('hub'));
  const west = await startImageSite(c, 'hW', hub.daemon.facts().listen?.port, images('hW'));
  return [hub, west];
}
