/**
 * The start of the image tests with real daemons (test/host/image-*.test.ts):
 * a temporary directory, a deployment CA with the controller's and the
 * hosts' certificates, and a real controller on loopback for `deployment`.
 * Everything is closed and removed when the test ends, the daemons the test
 * pushes to `daemons` first.
 */
import type { TestContext } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Logger } from '../../src/common/logger.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startController, type ControllerHandle } from '../../src/controller/runtime.ts';
import type { RunningDaemon } from '../../src/host/daemon-runner.ts';
import { initCa, issueHostCert, loadHostCredentials } from '../../src/pki/certs.ts';

export interface ImageSites {
  dir: string;
  /** The TLS directory: the CA and every host's certificate. */
  tls: string;
  controller: ControllerHandle;
  /** The controller's control channel URL. */
  url: string;
  /** Daemons the test starts, closed before the controller. */
  daemons: RunningDaemon[];
}

export async function startImageSites(t: TestContext, init: { name: string; deployment: string; hosts: readonly string[]; logger: Logger }): Promise<ImageSites> {
  const dir = mkdtempSync(join(tmpdir(), `vnet-${init.name}-`));
  const daemons: RunningDaemon[] = [];
  let controller: ControllerHandle | undefined;
  t.after(async () => {
    for (const d of daemons) await d.close();
    await controller?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const tls = join(dir, 'tls');
  await initCa(tls);
  await issueHostCert(tls, 'controller', { ips: ['127.0.0.1'] });
  for (const h of init.hosts) await issueHostCert(tls, h);
  controller = await startController({ logger: init.logger, registry: new Registry() }, {
    deployment: parseDeployment(init.deployment, `${init.name}.yaml`),
    dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: await loadHostCredentials(tls, 'controller') },
    pingIntervalMs: 60_000,
  });
  return { dir, tls, controller, url: `wss://127.0.0.1:${controller.controlPort}/control`, daemons };
}
