/**
 * Turns a validated DaemonConfig into a running host (`vnet daemon`): the
 * data plane — the transport (TCP or mutual TLS with the deployment's
 * certificates), the VM ports (TAP devices, moved into a VM's network
 * namespace if asked, QEMU stream sockets, or memory ports), configured rules
 * and fast-path links, the admin interface — and the migration side: a VM
 * runtime per configured port (a model guest, `ports[].guest`, or a real
 * guest QEMU boots on a stream port, `ports[].qemu`, in the background; it
 * can be migrated once it is up), the migration channel listener
 * (`migration`, default the tunnel listen port + 1000) and the migration
 * agent, which the controller agent drives. Migration needs TLS: without
 * `tls: {dir}` the agent answers every migration command `failed`
 * (VNET_ERR_HOST_MIGRATION_UNAVAILABLE).
 */
import type { Logger } from '../common/logger.ts';
import { Daemon } from '../dataplane/daemon.ts';
import { configuredFastPathLinks, controllerUrls, migrationListenAddress, type DaemonConfig } from '../dataplane/daemon-config.ts';
import { nativeForwardingChoice, nativeForwardingInit, type NativeForwardingChoice } from '../dataplane/forwarder-choice.ts';
import type { NativeForwardingState } from '../dataplane/native-flows.ts';
import type { PollStats } from '../dataplane/native-forwarder.ts';
import { startAdminServer, type AdminServer } from '../dataplane/admin-server.ts';
import { defaultRunDir, prepareAdminAccess } from '../dataplane/admin-access.ts';
import { createDaemonRegistry, startMetricsServer, type MetricsServer } from '../dataplane/daemon-metrics.ts';
import type { Registry } from 'prom-client';
import { parseMac } from '../common/mac.ts';
import { MemoryPort } from '../dataplane/memory-port.ts';
import { MissingCaError, MissingHostCredentialsError } from '../dataplane/errors.ts';
import { QemuHost } from './qemu-host.ts';
import { QemuGuests } from './qemu-guests.ts';
import { TcpTransport } from '../dataplane/tcp-transport.ts';
import { TlsTransport } from '../dataplane/tls-transport.ts';
import { loadHostCredentials, type TlsCredentials } from '../pki/certs.ts';
import type { Transport } from '../dataplane/transport.ts';
import { CertificateAuthenticator, LinkKeyAuthenticator, loadLinkKey, type LinkAuthenticator } from '../dataplane/link-auth.ts';
import { HostMembership } from '../dataplane/link-membership.ts';
import type { Port } from '../dataplane/port.ts';
import { ControllerAgent } from '../dataplane/controller-agent.ts';
import { realClock } from '../common/clock.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { caFiles, hostFiles } from '../pki/certs.ts';
import { MigrationAgent, type MigrationAgentComponents } from './migration-agent.ts';
import type { ArrivedDiskImage, MigrationVm } from './agent-context.ts';
import type { Guest } from '../migration/guest.ts';
import { attachVmTap, NamespaceGuestVm } from './namespace-vm-runtime.ts';
import type { VmRuntime } from './vm-runtime.ts';
import { MigrationChannelListener } from './migration-channel.ts';
import { ChunkStore } from '../images/chunk-store.ts';
import { ChunkServer, PUBLISHER_IDENTITY } from '../images/chunk-server.ts';
import { ImagePropagator } from './image-propagator.ts';
import { ChunkCollection, registerCollectionMetrics } from './chunk-collection.ts';
import { arriveOnImage } from './image-vm.ts';
import { openConfiguredPort } from './configured-port.ts';
import { MigrationUnavailableError } from './errors.ts';
import { ModelGuestVm } from './vm-runtime.ts';
import { addConfiguredPort, reloadDaemon, type ReloadOutcome } from './daemon-reload.ts';

/** The MTU of an arriving VM's attached TAP port (the migration command carries none; the config's default). */
const DEFAULT_TAP_MTU = 1500;

export interface RunningDaemon {
  daemon: Daemon;
  admin: AdminServer | undefined;
  /** The read-only metrics endpoint's URL (`metrics:`), if any. */
  metrics: string | undefined;
  /** The daemon's Prometheus registry (served at the admin interface's /metrics). */
  registry: Registry;
  /** The file holding the admin interface's bearer token (HTTP only). */
  adminTokenFile: string | undefined;
  agent: ControllerAgent | undefined;
  migrations: MigrationAgent;
  /** This site's image chunk store, its server and the propagator that fills it as the controller asks (config `images`, docs/images.md). */
  images: SiteImages | undefined;
  /** The configuration running now (the one started with, then each reload's that was applied). */
  readonly config: DaemonConfig;
  /** Apply a new configuration (SIGHUP): what can change at run time, or nothing (daemon-reload.ts). `source` names its file. */
  reload(next: DaemonConfig, source: string): Promise<ReloadOutcome>;
  close(): Promise<void>;
}

export async function createTransport(logger: Logger, config: DaemonConfig, membership: HostMembership): Promise<Transport> {
  const t = config.tunnel;
  const settings = {
    localHost: config.host,
    keepaliveMs: config.keepaliveMs,
    deadMs: config.deadMs,
    handshakeTimeoutMs: t.handshakeTimeoutMs,
    maxPendingHandshakes: t.maxPendingHandshakes,
    maxPendingPerSource: t.maxPendingPerSource,
    membership,
  };
  if (config.transport === 'tls') {
    if (config.tls === undefined) throw new MissingHostCredentialsError('transport tls needs tls: {dir}, a directory made by `vnet certs`');
    const creds = await loadHostCredentials(config.tls.dir, config.host);
    return new TlsTransport({ logger }, { ...settings, ...creds });
  }
  const authenticator = await tcpAuthenticator(config);
  if (authenticator === undefined && t.allowUnauthenticated) {
    logger.warn('tunnel.allowUnauthenticated: TCP links are accepted without authentication; any host that reaches the tunnel port can claim any host id');
  } else if (authenticator === undefined) {
    logger.info('no link key or host certificate: TCP links are accepted only between loopback addresses (set tunnel.linkKeyFile or tls.dir)');
  } else {
    logger.info({ method: authenticator.method }, 'TCP links are authenticated');
  }
  return new TcpTransport({ logger }, { ...settings, authenticator, allowUnauthenticated: t.allowUnauthenticated });
}

/** How plain TCP links prove ids: the deployment link key when configured, else the host certificate of tls.dir, else nothing. */
async function tcpAuthenticator(config: DaemonConfig): Promise<LinkAuthenticator | undefined> {
  if (config.tunnel.linkKeyFile !== undefined) return new LinkKeyAuthenticator(loadLinkKey(config.tunnel.linkKeyFile));
  if (config.tls !== undefined) return new CertificateAuthenticator(await loadHostCredentials(config.tls.dir, config.host));
  return undefined;
}


/** What `GET /status` and the start line say of the native forwarder: running (with its settings and frames carried), or why not. */
export type NativeForwardingStatus = NativeForwardingState & { carriedFrames?: number | undefined; poll?: PollStats | undefined };

function nativeForwardingStatus(daemon: Daemon, choice: NativeForwardingChoice): NativeForwardingStatus {
  const state = daemon.nativeForwarding;
  if (state.running) return { ...state, carriedFrames: daemon.nativeCarriedFrames, poll: daemon.nativePollStats };
  return choice.run ? state : { running: false, reason: choice.reason };
}

/** One line at start: whether established flows run on the native forwarder's thread; a warning when it was wanted and could not start. */
function logNativeForwarding(logger: Logger, status: NativeForwardingStatus, choice: NativeForwardingChoice): void {
  if (status.running) logger.info({ busyPollUs: status.busyPollUs, adaptivePoll: status.adaptivePoll, flowTtlMs: status.flowTtlMs }, 'native forwarder running: established flows between TAP ports and plain-TCP links bypass the event loop');
  else if (choice.run) logger.warn({ reason: status.reason }, 'native forwarder not running: every frame goes through the event loop');
  else logger.info({ reason: status.reason }, 'native forwarder off: every frame goes through the event loop');
}

export interface DaemonRunnerComponents {
  logger: Logger;
  /** Called when the controller refuses this host for good (its control channel has stopped; the data plane runs on until closed). */
  onControllerRefused?: ((refusal: { code: string; message: string }) => void) | undefined;
}

export async function startDaemonFromConfig(components: DaemonRunnerComponents, config: DaemonConfig): Promise<RunningDaemon> {
  const { logger } = components;
  /** The level a configuration without logLevel runs at (VNET_LOG_LEVEL, else info). */
  const defaultLogLevel = logger.level;
  if (config.logLevel !== undefined) logger.level = config.logLevel;
  const membership = new HostMembership(config.members);
  if (config.members === undefined && config.controller === undefined && config.listen !== undefined) {
    logger.warn('no members list and no controller: any host with valid credentials for this deployment may link here (set members: [...])');
  }
  const nativeChoice = nativeForwardingChoice(config, process.env);
  const transport = await createTransport(logger, config, membership);
  const daemon = await Daemon.start(
    { logger, transport, membership },
    {
      hostId: config.host,
      role: config.role,
      site: config.site,
      listen: config.listen,
      hub: config.hub === undefined ? undefined : { ...config.hub, id: config.hubId },
      standbyHub: config.standbyHub,
      reconnect: config.reconnect,
      agingMs: config.agingMs,
      vxlan: config.vxlan,
      nativeForwarding: nativeForwardingInit(nativeChoice),
    },
  );
  logNativeForwarding(logger, nativeForwardingStatus(daemon, nativeChoice), nativeChoice);
  let migrations: MigrationAgent | undefined;
  let images: SiteImages | undefined;
  let admin: AdminServer | undefined;
  let metrics: MetricsServer | undefined;
  const qemu = config.qemu === undefined ? undefined : new QemuHost({ logger, clock: realClock }, config.qemu);
  let guests: QemuGuests | undefined;
  try {
    images = await startImageServer(logger, config);
    migrations = await startMigrationAgent(logger, daemon, config, qemu, images);
    guests = qemu === undefined ? undefined : new QemuGuests({ logger, host: qemu, migrations });
    const ports = { logger, daemon, migrations, images: images?.propagator, guests };
    for (const spec of config.ports) addConfiguredPort(ports, spec, await openConfiguredPort(logger, spec, qemu));
    if (config.rules.length > 0) daemon.setRules('config', config.rules);
    // Configured fast-path links without an address are accepted when the peer dials.
    const links = configuredFastPathLinks(config);
    if (links.length > 0) daemon.applyFastPathLinks(0, links);
    let agent: ControllerAgent | undefined;
    const registry = createDaemonRegistry({ daemon, controllerConnected: config.controller === undefined ? undefined : () => agent?.state === 'connected' });
    if (images !== undefined) registerCollectionMetrics(registry, images.collection);
    const access = config.admin === undefined ? undefined : prepareAdminAccess(config.admin, { runDir: config.runDir ?? defaultRunDir(), hostId: config.host });
    const controllerStatus = (): Record<string, unknown> => ({
      nativeForwarding: nativeForwardingStatus(daemon, nativeChoice),
      ...(images !== undefined ? { images: { collection: images.collection.stats } } : {}),
      controller: agent === undefined ? undefined : { urls: config.controller === undefined ? undefined : controllerUrls(config.controller), url: agent.url, state: agent.state, lastError: agent.stats.lastError, refusal: agent.refusal, features: [...agent.features] },
    });
    admin = access === undefined ? undefined : await startAdminServer({ logger, daemon, metrics: registry, status: controllerStatus }, access.listen);
    metrics = config.metrics === undefined ? undefined : await startMetricsServer({ logger, registry }, config.metrics);
    agent = config.controller === undefined ? undefined : await startAgent(logger, daemon, config, { migrations, images: images?.propagator }, components.onControllerRefused);
    const m = migrations;
    const started = { admin, metrics, agent };
    let running = config;
    let reloading = Promise.resolve();
    return {
      daemon,
      get config() {
        return running;
      },
      reload(next, source) {
        // One reload at a time, each against the configuration the one before left.
        const outcome = reloading.then(() => reloadDaemon({ ...ports, migrations: m, defaultLogLevel }, running, next, source));
        reloading = outcome.then((o) => { if (o.applied) running = next; }, () => undefined);
        return outcome;
      },
      admin,
      metrics: metrics?.url,
      registry,
      adminTokenFile: access?.tokenFile,
      agent,
      migrations: m,
      images,
      async close() {
        await agent?.close();
        await m.close();
        await images?.propagator.close();
        await images?.collection.close();
        await images?.server.close();
        // A QEMU VM still booting is stopped too.
        await guests?.close();
        // A namespace VM paused here runs again (its processes thawed, given back their cgroups).
        for (const vm of m.vms) await vm.close?.().catch(() => undefined);
        await started.admin?.close();
        await started.metrics?.close();
        await daemon.close();
      },
    };
  } catch (err) {
    await images?.propagator.close();
    await images?.collection.close();
    await images?.server.close();
    await admin?.close();
    await metrics?.close();
    await migrations?.close();
    await daemon.close();
    throw err;
  }
}

/**
 * The migration agent: with the host's TLS credentials and a channel
 * listener when this host can receive VMs; without `tls: {dir}` it answers
 * every command `failed` with VNET_ERR_HOST_MIGRATION_UNAVAILABLE.
 */
export async function startMigrationAgent(logger: Logger, daemon: Daemon, config: DaemonConfig, qemu?: QemuHost, images?: SiteImages): Promise<MigrationAgent> {
  const components = { daemon, logger, clock: realClock, qemu, chunks: images?.store, ...arrivingVms(logger, images?.propagator) };
  if (config.tls === undefined) {
    return new MigrationAgent(components, { unavailable: new MigrationUnavailableError('live migration needs TLS: give this daemon tls: {dir} (made by `vnet certs`)') });
  }
  const credentials: TlsCredentials = await loadHostCredentials(config.tls.dir, config.host);
  const at = migrationListenAddress(config);
  const channel = at === undefined ? undefined : await MigrationChannelListener.listen(
    { logger, clock: realClock },
    { ...credentials, host: at.host, port: at.port, advertise: at.advertise },
  );
  return new MigrationAgent({ ...components, credentials, channel });
}

export interface SiteImages {
  store: ChunkStore;
  server: ChunkServer;
  propagator: ImagePropagator;
  /** Collecting the chunks no version kept here references (chunk-collection.ts). */
  collection: ChunkCollection;
}

/**
 * This site's chunk store, served to the other sites' daemons over mutual
 * TLS, and filled by the propagator with the versions the controller asks
 * for, from the other sites' servers with the same credentials (config `images`).
 */
async function startImageServer(logger: Logger, config: DaemonConfig): Promise<SiteImages | undefined> {
  if (config.images === undefined || config.tls === undefined) return undefined;
  const store = await ChunkStore.open({ site: config.site ?? config.host, dir: config.images.dir });
  const credentials = await loadHostCredentials(config.tls.dir, config.host);
  const server = await ChunkServer.listen({ logger }, store, { ...credentials, host: config.images.host, port: config.images.port, writers: [PUBLISHER_IDENTITY] });
  const propagator = new ImagePropagator({ store, logger, clock: realClock }, { credentials, announce: server.address, prefetch: config.images.prefetch, capacityBytes: config.images.capacityBytes });
  const collection = new ChunkCollection({ store, clock: realClock, logger, live: () => propagator.liveDigests() }, config.images.collect);
  propagator.onHoldsChanged(() => collection.schedule());
  return { store, server, propagator, collection };
}

/**
 * How a VM arrives here. A VM whose TAP device (the port's name) is in a
 * network namespace on this machine — a namespace VM moving between two
 * daemons on one kernel — gets a port attached to that device (one more
 * queue, steered to the source's until the hand-over) and, at commit, a
 * namespace VM runtime that takes its frozen processes over. Any other VM
 * gets a memory port and a model-guest runtime. The namespace is found by
 * the device's name (namespace-vm-runtime.ts, `attachVmTap`): the
 * controller does not know namespaces, which are this machine's business,
 * so the control protocol carries none.
 */
function arrivingVms(logger: Logger, images: ImagePropagator | undefined): Pick<MigrationAgentComponents, 'makePort' | 'makeRuntime'> {
  const namespaces = new Map<string, string>();
  return {
    makePort(vm: MigrationVm): Port {
      const mac = parseMac(vm.mac);
      const found = attachVmTap({ name: vm.port, mac, mtu: DEFAULT_TAP_MTU, logger });
      if (found === undefined) {
        namespaces.delete(vm.port);
        return new MemoryPort({ name: vm.port, mac });
      }
      namespaces.set(vm.port, found.netns);
      return found.port;
    },
    async makeRuntime(vm: MigrationVm, guest: Guest, image?: ArrivedDiskImage): Promise<VmRuntime> {
      const init = { name: vm.name ?? vm.port, mac: parseMac(vm.mac), port: vm.port, guest };
      const netns = namespaces.get(vm.port);
      if (netns === undefined && image !== undefined && images !== undefined) return arriveOnImage({ logger, clock: realClock, images }, init, image);
      if (netns === undefined) return new ModelGuestVm({ clock: realClock }, init);
      namespaces.delete(vm.port);
      return NamespaceGuestVm.arrive({ clock: realClock, logger }, { ...init, netns });
    },
  };
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
async function startAgent(
  logger: Logger, daemon: Daemon, config: DaemonConfig, hostParts: { migrations: MigrationAgent; images: ImagePropagator | undefined },
  onRefused: DaemonRunnerComponents['onControllerRefused'],
): Promise<ControllerAgent> {
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
    { daemon, logger, clock: realClock, ...hostParts },
    {
      urls: controllerUrls(c),
      tls: { ca, cert, key, servername: c.servername },
      joinToken: credential === undefined ? c.joinToken : undefined,
      credential,
      onCredential: c.credentialFile === undefined ? undefined : (cred) => saveCredential(logger, c.credentialFile!, cred),
      backoff: config.reconnect,
      onRefused,
    },
  );
  agent.start();
  return agent;
}
