/**
 * One controller process: the controller runtime (runtime.ts: SQLite state,
 * control channel, update loop) plus the operator API and web page, started
 * together from a deployment file. `vnet controller` and `vnet demo` both start through here.
 *
 * TLS: the control channel is mutual TLS with the deployment CA in `tlsDir`
 * (made by `vnet certs init`); the controller's own certificate (host id
 * "controller") is issued from that CA on first start if it is missing.
 *
 * API token: created at the first start of a database, stored hashed in the
 * database and written to the token file that `vnet ctl` reads; the caller
 * may show it once (`newToken`), and it never goes to the log.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { PUBLISHER_IDENTITY } from '../images/chunk-server.ts';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../common/logger.ts';
import type { PolicyClock } from './scheduler-clock.ts';
import { caFiles, hostFiles, issueHostCert } from '../pki/certs.ts';
import { startController, type ControllerHandle } from './runtime.ts';
import type { Deployment } from './deployment-file.ts';
import { MissingCaError } from './errors.ts';
import { DEFAULT_API_PORT } from './api/api-server.ts';
import { startOperatorApi, type OperatorApi } from './api/operator-api.ts';
import { CONTROL_PATH } from '../control/control-protocol.ts';
import type { ControllerStore } from './store/store.ts';
import { formatHostPort } from '../common/host-port.ts';
import { sqliteStatus, type ReplicaStatusView } from './replica-status.ts';

export const CONTROLLER_HOST_ID = PUBLISHER_IDENTITY;
export const DEFAULT_CONTROL = { host: '127.0.0.1', port: 7400 };

export interface ControllerProcessInit {
  deployment: Readonly<Deployment>;
  dbPath: string;
  tlsDir: string;
  /** Override the deployment's addresses (port 0: any free port). */
  control?: { host: string; port: number } | undefined;
  api?: { host: string; port: number } | undefined;
  tokenFile: string;
  /** A join token's lifetime when its creator gives none (default one hour). */
  joinTokenTtlMs?: number | undefined;
  /** An open store (an etcd replica's, led by it); otherwise the SQLite file at dbPath. */
  store?: ControllerStore | undefined;
  /** The replica's status (etcd); otherwise a single controller on SQLite. */
  status?: (() => Promise<ReplicaStatusView>) | undefined;
}

export interface ControllerProcess {
  controller: ControllerHandle;
  api: OperatorApi;
  registry: Registry;
  /** wss://HOST:PORT/control, for daemons. */
  controlUrl: string;
  /** The API token, when this start created it (first start of the database); otherwise undefined. */
  newToken: string | undefined;
  /** The operator page URL; with the token in the fragment only at the start that created it. */
  pageUrl: string;
  close(): Promise<void>;
}

/** The controller process's Prometheus registry: the Node.js process metrics, under `vnet_controller_process_`; the controller and its API add theirs. */
export function createControllerRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'vnet_controller_process_' });
  return registry;
}

/** The control channel's TLS: the deployment CA and the controller's certificate (issued from the CA on first start). */
export async function controlChannelTls(tlsDir: string): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const ca = caFiles(tlsDir);
  if (!existsSync(ca.cert)) throw new MissingCaError(tlsDir);
  const own = hostFiles(tlsDir, CONTROLLER_HOST_ID);
  if (!existsSync(own.cert)) await issueHostCert(tlsDir, CONTROLLER_HOST_ID);
  const [caPem, cert, key] = await Promise.all([readFile(ca.cert), readFile(own.cert), readFile(own.key)]);
  return { ca: caPem, cert, key };
}

/** The control channel's and the API's listen addresses: the overrides, else the deployment's, else the defaults. */
export function controllerAddresses(init: Pick<ControllerProcessInit, 'deployment' | 'control' | 'api'>): { control: { host: string; port: number }; api: { host: string; port: number } } {
  const d = init.deployment;
  return {
    control: init.control ?? d.controller.control ?? DEFAULT_CONTROL,
    api: init.api ?? d.controller.api ?? { host: '127.0.0.1', port: DEFAULT_API_PORT },
  };
}

export async function startControllerProcess(components: { logger: Logger; schedulerClock?: PolicyClock }, init: ControllerProcessInit): Promise<ControllerProcess> {
  const { logger } = components;
  const { ca: caPem, cert, key } = await controlChannelTls(init.tlsDir);

  const registry = createControllerRegistry();
  const d = init.deployment;
  const { control, api: apiAddr } = controllerAddresses(init);
  const issuedCertificates = await issuedHostCertificates(logger, init.tlsDir, caPem, d.hosts.map((h) => h.id));
  const controller = await startController({
    logger, registry, ...(init.store !== undefined ? { store: init.store } : {}), ...(components.schedulerClock !== undefined ? { schedulerClock: components.schedulerClock } : {}),
  }, {
    deployment: d, dbPath: init.dbPath, control: { ...control, tls: { ca: caPem, cert, key } }, joinTokenTtlMs: init.joinTokenTtlMs, issuedCertificates,
  });
  let api: OperatorApi;
  try {
    api = await startOperatorApi(
      {
        logger, model: controller.model, tokens: controller.tokens, access: controller.access, images: controller.images, imagePublisher: controller.imagePublisher, registry, committed: () => controller.store.committed(),
        status: init.status ?? (() => Promise.resolve(sqliteStatus(controller.store.path))),
      },
      { ...apiAddr, tokenFile: init.tokenFile },
    );
  } catch (err) {
    await controller.close();
    throw err;
  }
  return {
    controller,
    api,
    registry,
    controlUrl: `wss://${formatHostPort({ host: control.host, port: controller.controlPort })}${CONTROL_PATH}`,
    newToken: api.createdToken,
    pageUrl: api.pageUrl,
    async close() {
      await api.close();
      await controller.close();
    },
  };
}

/** The certificates in the TLS directory (`vnet certs host`) of the deployment's hosts that the deployment CA signed, by fingerprint. */
async function issuedHostCertificates(logger: Logger, tlsDir: string, caPem: Buffer, hosts: readonly string[]): Promise<Array<{ host: string; fingerprint: string }>> {
  const ca = new X509Certificate(caPem);
  const found: Array<{ host: string; fingerprint: string }> = [];
  for (const host of hosts) {
    const file = hostFiles(tlsDir, host).cert;
    const pem = await readFile(file).catch(() => undefined);
    if (pem === undefined) continue;
    try {
      const cert = new X509Certificate(pem);
      if (cert.checkIssued(ca) && cert.verify(ca.publicKey)) found.push({ host, fingerprint: cert.fingerprint256 });
      else logger.warn({ file, host }, 'host certificate not signed by the deployment CA: ignored');
    } catch (err) {
      logger.warn({ err, file, host }, 'unreadable host certificate: ignored');
    }
  }
  return found;
}
