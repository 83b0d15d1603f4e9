import type { Registry } from 'prom-client';
import { realClock, type Clock, type TimerHandle } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { ControllerModel } from './api-model.ts';
import type { TokenStore } from './api/token-store.ts';
import { ControlServer } from './control-server.ts';
import { ControlLoop } from './control-loop.ts';
import { ControllerEventLog } from './event-log.ts';
import { ControllerMetrics } from './metrics.ts';
import { sampleLoopLag } from './loop-lag.ts';
import { EventMetrics } from './event-metrics.ts';
import { ControllerService } from './service.ts';
import { SqliteTokenStore } from './sqlite-token-store.ts';
import { topologyView } from './views.ts';
import { hubOf, type Deployment } from './deployment-file.ts';
import { syncDeployment } from './deployment-sync.ts';
import { createJoinToken, DEFAULT_JOIN_TOKEN_TTL_MS, type JoinTokenOptions } from './join-tokens.ts';
import { AccessService } from './access-service.ts';
import { ImageDistribution } from './image-distribution.ts';
import { ImagePublisher } from './image-publisher.ts';
import { ImageCatalog } from './image-catalog.ts';
import { recordIssuedCertificates } from './host-identity.ts';
import type { JoinTokenRecord } from './store/records.ts';
import { DEFAULT_DB_PATH, openStore, type ControllerStore } from './store/store.ts';
import { deploymentLatency, lastStoredPlacement, PlacementAdvisor, type PlacementSource } from './placement-advisor.ts';
import { createScheduler } from './scheduler.ts';
import type { PolicyClock } from './scheduler-clock.ts';
import { TopologyTracker, vttifParamsFromPolicy } from './topology-tracker.ts';
import type { MigrationTimeouts } from './migration-run.ts';
import type { PartLimits } from '../control/part-assembler.ts';
import { startOvsSouthbound, type OvsSouthbound, type OvsSouthboundComponents } from './ovs/ovs-southbound.ts';

/**
 * The controller runtime: opens the store (migrating it), brings the
 * registry in line with the deployment file, starts the control channel and
 * the update-period timer that runs the control loop (topology inference,
 * adaptation, placement, traffic events, reconcile). The operator API is
 * started by the caller over `handle.model` and `handle.tokens` (see
 * src/controller/api, and launch.ts for a whole process).
 *
 * On start every host is marked disconnected; migrations the previous run
 * left open are picked up by the coordinator (before their commit point
 * they are aborted, after it the cutover is driven on); daemons reconnect on their own
 * (with backoff) and are converged by version from the persisted desired
 * state, without their forwarding being touched in between.
 *
 * An error thrown by an update period, or by the loop while it handles a
 * daemon's message, is a bug: it goes to `components.onError`. Tests pass
 * one that fails the test; the default logs it at error level, counts it
 * (vnet_controller_errors_total) and keeps the process serving: daemons keep
 * forwarding with what they have, the next period starts from the persisted
 * state, and one bad period must not cut every daemon's control channel.
 */

export interface ControllerComponents {
  logger: Logger;
  /** prom-client registry the operator API serves at /metrics. */
  registry: Registry;
  clock?: Clock;
  /** Wall-clock milliseconds (default Date.now). */
  wallClock?: () => number;
  /** An already open store (tests); otherwise one is opened at init.dbPath. */
  store?: ControllerStore;
  /**
   * An unexpected error of an update period or of handling a daemon's
   * message (a bug). Default: logged at error level and counted; the
   * controller keeps running. Tests set one that fails the test.
   */
  onError?: (err: unknown, where: string) => void;
  /** The switch database of an OVS host's bridge (tests: in memory; default OVSDB at its `ovsdb:`). */
  ovsBridgeDb?: OvsSouthboundComponents['connectDb'];
  /** The scheduling policy's clock instead of the deployment's `scheduler.clock` (tests step it). */
  schedulerClock?: PolicyClock;
}

export interface ControllerInit {
  deployment: Readonly<Deployment>;
  /** Default DEFAULT_DB_PATH (./vnet.db) */
  dbPath?: string;
  control: {
    host: string;
    port: number;
    tls: { key: string | Buffer; cert: string | Buffer; ca: string | Buffer };
  };
  maxMessageBytes?: number;
  /** Bounds on a message received in parts (control/part-assembler.ts DEFAULT_PART_LIMITS). */
  parts?: PartLimits;
  /** From TCP accept to the welcome (default 10 s). */
  helloTimeoutMs?: number;
  /** Control connections not welcomed yet, per source address (default 64) and in all (default 1024). */
  maxPendingPerSource?: number;
  maxPendingTotal?: number;
  pingIntervalMs?: number;
  resendAfterMs?: number;
  /** The migration coordinator's timeouts (migration-run.ts DEFAULT_MIGRATION_TIMEOUTS). */
  migration?: Partial<MigrationTimeouts>;
  /** A join token's lifetime when its creator gives none (default one hour). */
  joinTokenTtlMs?: number | undefined;
  /** Host certificates issued from the deployment CA (launch.ts reads them from the TLS directory): identities no join token replaces. */
  issuedCertificates?: ReadonlyArray<{ host: string; fingerprint: string }> | undefined;
  /** OpenFlow switch connection timers (OVS hosts; tests shorten them). */
  openflow?: { echoIntervalMs?: number; livenessTimeoutMs?: number; retryMs?: number };
}

export interface ControllerHandle {
  readonly store: ControllerStore;
  /** The operator's view and commands (api-model.ts), for the API server. */
  readonly model: ControllerModel;
  /** The `api_tokens` table, for the API's bearer-token auth. */
  readonly tokens: TokenStore;
  /** Join tokens, host identities and their revocation (access-model.ts), for the API server. */
  readonly access: AccessService;
  /** Published images and their replicas (image-catalog.ts, docs/images.md). */
  readonly images: ImageCatalog;
  /** Publishing image versions at a site's chunk server (image-publisher.ts, the API's publish routes). */
  readonly imagePublisher: ImagePublisher;
  readonly loop: ControlLoop;
  readonly events: ControllerEventLog;
  readonly metrics: ControllerMetrics;
  /** The control channel's bound port. */
  readonly controlPort: number;
  /** The OpenFlow listener's bound port (a deployment with OVS hosts; docs/openflow.md). */
  readonly openflowPort: number | undefined;
  /** Create a join token for a daemon's first contact (the controller's default lifetime); the token text is shown only here. */
  createJoinToken(options: JoinTokenOptions): { token: string; record: JoinTokenRecord };
  /** Run one update period now (tests; the timer runs it every policy.updatePeriodMs). An error is thrown to the caller. */
  tick(): void;
  close(): Promise<void>;
}

export async function startController(components: ControllerComponents, init: ControllerInit): Promise<ControllerHandle> {
  const logger = componentLogger(components.logger, 'controller');
  const clock = components.clock ?? realClock;
  const wallClock = components.wallClock ?? Date.now;
  const store = components.store ?? openStore({ path: init.dbPath ?? DEFAULT_DB_PATH, logger });
  const policy = init.deployment.policy;
  let server: ControlServer | undefined;
  let timer: TimerHandle | undefined;
  let ovs: OvsSouthbound | undefined;
  let stopLagSampler: (() => void) | undefined;
  try {
    const sync = syncDeployment(store, init.deployment, wallClock());
    store.markAllHostsDisconnected();
    recordIssuedCertificates(store, init.issuedCertificates ?? [], wallClock());
    logger.info({ deployment: init.deployment.name, db: store.path, ...sync }, 'registry in line with the deployment');

    const metrics = new ControllerMetrics(components.registry);
    stopLagSampler = sampleLoopLag(metrics.eventLoopLag);
    const onError = components.onError ?? ((err: unknown, where: string): void => {
      metrics.errors.inc({ where });
      logger.error({ err, where }, 'controller bug: unexpected error (the controller keeps running)');
    });
    const events = new ControllerEventLog({ store, logger, wallClock });
    const topology = new TopologyTracker(vttifParamsFromPolicy(policy));
    const lastTopology = topologyView(store.latestTopology());
    topology.restore(lastTopology);
    const eventMetrics = new EventMetrics(components.registry);
    eventMetrics.start({ hosts: store.listHosts(), fastPathLinks: store.listLinks('fast-path'), topologyClass: lastTopology.class });
    events.subscribe((e) => eventMetrics.record(e));
    const placement: PlacementSource = await createScheduler(init.deployment, wallClock(), components.schedulerClock)
      ?? new PlacementAdvisor({ threshold: policy.placementThreshold, latencyMs: deploymentLatency(init.deployment) });
    const stored = lastStoredPlacement(store);
    if (stored !== undefined) placement.restore(stored);
    const images = new ImageCatalog({ store, wallClock });
    const distribution = new ImageDistribution({ catalog: images, deployment: init.deployment, logger: componentLogger(logger, 'images') });
    const loop = new ControlLoop({ store, events, metrics, topology, logger, wallClock, placement, images: distribution }, {
      policy,
      ...(init.resendAfterMs !== undefined ? { resendAfterMs: init.resendAfterMs } : {}),
      ...(init.migration !== undefined ? { migration: init.migration } : {}),
      ...(init.deployment.scheduler?.intervalMs !== undefined ? { placementIntervalMs: init.deployment.scheduler.intervalMs } : {}),
      vxlanHosts: new Set(init.deployment.hosts.filter((h) => h.ovs !== undefined).map((h) => h.id)),
    });
    const model = new ControllerService({ store, events, loop, topology, wallClock, placement }, { placementThreshold: policy.placementThreshold });
    const tokens = new SqliteTokenStore(store);
    server = new ControlServer({ store, handler: loop, metrics, logger, clock, wallClock, onHandlerError: (err) => onError(err, 'control message') }, {
      host: init.control.host,
      port: init.control.port,
      tls: init.control.tls,
      updatePeriodMs: policy.updatePeriodMs,
      ...(init.maxMessageBytes !== undefined ? { maxMessageBytes: init.maxMessageBytes } : {}),
      ...(init.helloTimeoutMs !== undefined ? { helloTimeoutMs: init.helloTimeoutMs } : {}),
      ...(init.parts !== undefined ? { parts: init.parts } : {}),
      ...(init.maxPendingPerSource !== undefined ? { maxPendingPerSource: init.maxPendingPerSource } : {}),
      ...(init.maxPendingTotal !== undefined ? { maxPendingTotal: init.maxPendingTotal } : {}),
      ...(init.pingIntervalMs !== undefined ? { pingIntervalMs: init.pingIntervalMs } : {}),
    });
    const controlPort = await server.listen();
    images.onPublished((manifest, origin) => loop.imagePublished(manifest, origin));
    images.onDeleted((deleted) => loop.imagesDeleted(deleted));
    const { ca, cert, key } = init.control.tls;
    const imagePublisher = new ImagePublisher(
      { catalog: images, distribution, credentials: { ca: ca.toString(), cert: cert.toString(), key: key.toString() } },
      { defaultSite: hubOf(init.deployment).site },
    );
    const access = new AccessService({ store, events, sessions: server, wallClock }, { joinTokenTtlMs: init.joinTokenTtlMs });
    // Desired state for every host is computed (and persisted) before any daemon is back.
    loop.reconcile('controller started');
    // Migrations left open by the previous run: aborted before their commit point, driven on after it.
    loop.migrations.restore();
    ovs = await startOvsSouthbound({
      handler: loop, logger, clock, wallClock, vmMacs: () => store.listVms().map((v) => v.mac), portRemoved: (mac, host, why) => loop.removeVm(mac, host, why),
      vmsOn: (host) => store.listVmsOnHost(host).map((v) => v.mac),
      ...(components.ovsBridgeDb !== undefined ? { connectDb: components.ovsBridgeDb } : {}),
    }, { deployment: init.deployment, tls: init.control.tls, ...init.openflow });
    const southbound = ovs;
    timer = clock.setInterval(() => {
      try {
        loop.tick();
      } catch (err) {
        onError(err, 'update period');
      }
    }, policy.updatePeriodMs);
    const ctl = server;
    let closed = false;
    return {
      store, model, tokens, access, images, imagePublisher, loop, events, metrics, controlPort, openflowPort: southbound?.port,
      createJoinToken: (options) => createJoinToken(store, options, wallClock(), init.joinTokenTtlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS),
      tick: () => loop.tick(),
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        timer?.cancel();
        stopLagSampler?.();
        imagePublisher.close();
        await southbound?.close();
        await ctl.close();
        if (components.store === undefined) store.close();
        logger.info('controller stopped');
      },
    };
  } catch (err) {
    timer?.cancel();
    stopLagSampler?.();
    await ovs?.close();
    await server?.close();
    if (components.store === undefined) store.close();
    throw err;
  }
}
