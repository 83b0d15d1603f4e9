/**
 * Turns a validated DaemonConfig into a running daemon: the transport (TCP or
 * mutual TLS with the deployment's certificates), the VM ports (TAP devices,
 * moved into a VM's network namespace if asked, or memory ports), configured
 * rules and fast-path links, and the admin interface.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../common/logger.ts';
import { Daemon } from './daemon.ts';
import type { DaemonConfig } from './daemon-config.ts';
import { startAdminServer, type AdminServer } from './admin-server.ts';
import { parseMac } from '../common/mac.ts';
import { MemoryPort } from './memory-port.ts';
import { TapPort } from './tap-port.ts';
import { MissingCaError, MissingHostCredentialsError, TapError } from './errors.ts';
import { TcpTransport } from './tcp-transport.ts';
import { TlsTransport } from './tls-transport.ts';
import { loadHostCredentials } from '../pki/certs.ts';
import type { Transport } from './transport.ts';
import type { Port } from './port.ts';
import { ControllerAgent } from './controller-agent.ts';
import { realClock } from '../common/clock.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { caFiles, hostFiles } from '../pki/certs.ts';

const run = promisify(execFile);

export interface RunningDaemon {
  daemon: Daemon;
  admin: AdminServer | undefined;
  agent: ControllerAgent | undefined;
  close(): Promise<void>;
}

export async function createTransport(logger: Logger, config: DaemonConfig): Promise<Transport> {
  const timing = { keepaliveMs: config.keepaliveMs, deadMs: config.deadMs };
  if (config.transport === 'tls') {
    if (config.tls === undefined) throw new MissingHostCredentialsError('transport tls needs tls: {dir}, a directory made by `vnet certs`');
    const creds = await loadHostCredentials(config.tls.dir, config.host);
    return new TlsTransport({ logger }, { localHost: config.host, ...creds, ...timing });
  }
  return new TcpTransport({ logger }, { localHost: config.host, ...timing });
}

/** Open a configured port: a TAP device (moved into `netns` if given) or a memory port. */
export async function openConfiguredPort(logger: Logger, spec: DaemonConfig['ports'][number]): Promise<Port> {
  const mac = parseMac(spec.mac);
  if (spec.type === 'memory') return new MemoryPort({ name: spec.name, mac, mtu: spec.mtu });
  const port = TapPort.open({ name: spec.name, mac, mtu: spec.mtu, vnetHdr: spec.offload, logger });
  if (spec.netns !== undefined) {
    try {
      // The open file descriptor keeps working after the device changes namespace.
      await run('ip', ['link', 'set', 'dev', spec.name, 'netns', spec.netns]);
    } catch (err) {
      await port.close();
      throw new TapError(`cannot move TAP device ${spec.name} into namespace ${spec.netns}: ${(err as { stderr?: string }).stderr?.trim() ?? String(err)}`, undefined, { cause: err });
    }
  }
  return port;
}

export async function startDaemonFromConfig(components: { logger: Logger }, config: DaemonConfig): Promise<RunningDaemon> {
  const { logger } = components;
  const transport = await createTransport(logger, config);
  const daemon = await Daemon.start(
    { logger, transport },
    {
      hostId: config.host,
      role: config.role,
      site: config.site,
      listen: config.listen,
      hub: config.hub === undefined ? undefined : { ...config.hub, id: config.hubId },
      reconnect: config.reconnect,
      agingMs: config.agingMs,
    },
  );
  try {
    for (const spec of config.ports) daemon.addPort(await openConfiguredPort(logger, spec), spec.ip);
    if (config.rules.length > 0) daemon.setRules('config', config.rules);
    const links = config.fastPath
      .filter((f) => f.host !== undefined && f.port !== undefined)
      .map((f) => ({ peer: f.peer, address: { transport: config.transport, host: f.host!, port: f.port! }, reason: f.reason, dial: f.dial }));
    // Configured fast-path links without an address are accepted when the peer dials.
    if (links.length > 0) daemon.applyFastPathLinks(0, links);
    const admin = config.admin === undefined ? undefined : await startAdminServer({ logger, daemon }, config.admin);
    const agent = config.controller === undefined ? undefined : await startAgent(logger, daemon, config);
    return {
      daemon,
      admin,
      agent,
      async close() {
        await agent?.close();
        await admin?.close();
        await daemon.close();
      },
    };
  } catch (err) {
    await daemon.close();
    throw err;
  }
}

/** Read a file the daemon cannot run without; `fail` makes the error to throw when it cannot be read. */
async function readNeededFile(file: string, fail: (why: string, cause: unknown) => Error): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw fail((err as Error).message, err);
  }
}

/** Keep the credential the controller issued; a failed write is logged (the daemon runs on with it in memory), never an unhandled rejection. */
function saveCredential(logger: Logger, file: string, credential: string): void {
  writeFile(file, credential + '\n', { mode: 0o600 }).catch((err: unknown) => {
    logger.error({ err, file }, 'cannot save the host credential; a restart will need a new join token');
  });
}

/** The control channel to the controller: mutual TLS with the host certificate, or a join token. */
async function startAgent(logger: Logger, daemon: Daemon, config: DaemonConfig): Promise<ControllerAgent> {
  const c = config.controller!;
  const caFile = c.caFile ?? (config.tls === undefined ? undefined : caFiles(config.tls.dir).cert);
  if (caFile === undefined) throw new MissingCaError('the control channel needs the deployment CA: tls: {dir} or controller.caFile');
  const ca = await readNeededFile(caFile, (why, cause) => new MissingCaError(`cannot read the deployment CA: ${why}`, caFile, { cause }));
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  if (config.tls !== undefined && c.joinToken === undefined) {
    const dir = config.tls.dir;
    const files = hostFiles(dir, config.host);
    const hint = `issue it with \`vnet certs host --dir ${dir} --host ${config.host}\``;
    [cert, key] = await Promise.all(
      [files.cert, files.key].map((file) => readNeededFile(file, (why, cause) => new MissingHostCredentialsError(`cannot read: ${why}; ${hint}`, file, { cause }))),
    );
  }
  const credential = c.credentialFile === undefined ? undefined : await readFile(c.credentialFile, 'utf8').then((t) => t.trim(), () => undefined);
  const agent = new ControllerAgent(
    { daemon, logger, clock: realClock },
    {
      url: c.url,
      tls: { ca, cert, key, servername: c.servername },
      joinToken: credential === undefined ? c.joinToken : undefined,
      credential,
      onCredential: c.credentialFile === undefined ? undefined : (cred) => saveCredential(logger, c.credentialFile!, cred),
      backoff: config.reconnect,
    },
  );
  agent.start();
  return agent;
}
