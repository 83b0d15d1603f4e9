/**
 * A daemon's Prometheus metrics (docs/metrics.md). Nothing is counted twice
 * and nothing on the hot path changes: every metric is read from the
 * daemon's own counters when scraped (prom-client `collect`), so a scrape
 * costs one pass over the ports, links and learned MACs.
 *
 * Names follow Prometheus conventions: `vnet_daemon_` prefix, base units
 * (bytes, seconds), counters end in `_total`. Every series carries
 * `host` (the registry's default label). A link's counters belong to its
 * current connection and restart from zero when it reconnects (a counter
 * reset, which rate() handles).
 *
 * Served on the admin interface (`GET /metrics`, as the owner) and, with
 * `metrics: {host, port}`, on a port of its own for scrapers (read-only).
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { formatHostPort } from '../common/host-port.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { MetricsListenError } from './errors.ts';
import type { Daemon } from './daemon.ts';
import { PORT_LIMITS, packetDropReasons } from '../control/daemon-control.ts';
import { vxlanDrops } from './vxlan-endpoint.ts';

/** The content type of the Prometheus text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** What else the daemon's process reports: the control channel's state, if it has one. */
export interface DaemonMetricsSources {
  daemon: Daemon;
  controllerConnected?: (() => boolean | undefined) | undefined;
}

type LinkLabel = 'peer' | 'kind';

/** A registry holding every metric of `daemon`, read at scrape time, plus the process's CPU and memory. */
export function createDaemonRegistry(sources: DaemonMetricsSources): Registry {
  const { daemon } = sources;
  const registry = new Registry();
  registry.setDefaultLabels({ host: daemon.hostId });
  collectDefaultMetrics({ register: registry, prefix: 'vnet_daemon_' });
  const registers = [registry];

  /** A counter whose value is read from elsewhere at each scrape (prom-client counters cannot be set: reset and add). */
  function readCounter<L extends string>(name: string, help: string, labelNames: readonly L[], read: (put: (labels: Record<L, string>, value: number) => void) => void): void {
    new Counter<L>({
      name, help, labelNames, registers,
      collect(this: Counter<L>) {
        this.reset();
        read((labels, value) => this.inc(labels as never, value));
      },
    });
  }
  function readGauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: (put: (labels: Record<L, string>, value: number) => void) => void): void {
    new Gauge<L>({
      name, help, labelNames, registers,
      collect(this: Gauge<L>) {
        this.reset();
        read((labels, value) => this.set(labels as never, value));
      },
    });
  }

  // ---- links
  const linkLabels = ['peer', 'kind'] as const satisfies readonly LinkLabel[];
  const eachLink = (f: (l: ReturnType<Daemon['linkDetails']>[number], labels: Record<LinkLabel, string>) => void): void => {
    for (const l of daemon.linkDetails()) f(l, { peer: l.peer, kind: l.kind });
  };
  readGauge('vnet_daemon_link_up', 'Whether the link to a peer is up (1) or being dialled or down (0)', linkLabels, (put) =>
    eachLink((l, k) => put(k, l.state === 'up' ? 1 : 0)));
  readCounter('vnet_daemon_link_bytes_total', 'Bytes carried by a link (its current connection), by direction', [...linkLabels, 'direction'], (put) =>
    eachLink((l, k) => { put({ ...k, direction: 'tx' }, l.txBytes); put({ ...k, direction: 'rx' }, l.rxBytes); }));
  readCounter('vnet_daemon_link_frames_total', 'Frames carried by a link (its current connection), by direction', [...linkLabels, 'direction'], (put) =>
    eachLink((l, k) => { put({ ...k, direction: 'tx' }, l.txFrames); put({ ...k, direction: 'rx' }, l.rxFrames); }));
  readCounter('vnet_daemon_link_dropped_frames_total', 'Frames a link dropped, by reason (backpressure: its socket queue was over the high-water mark)', [...linkLabels, 'reason'], (put) =>
    eachLink((l, k) => put({ ...k, reason: 'backpressure' }, l.txDropped)));
  readCounter('vnet_daemon_link_decode_errors_total', 'Messages on a link that did not decode', linkLabels, (put) =>
    eachLink((l, k) => put(k, l.decodeErrors)));
  readCounter('vnet_daemon_link_reconnects_total', 'Times this daemon redialled a link', linkLabels, (put) =>
    eachLink((l, k) => put(k, l.reconnects)));
  readCounter('vnet_daemon_link_keepalives_total', 'Keepalives on a link, by direction', [...linkLabels, 'direction'], (put) =>
    eachLink((l, k) => { put({ ...k, direction: 'tx' }, l.keepalivesSent); put({ ...k, direction: 'rx' }, l.keepalivesReceived); }));
  readGauge('vnet_daemon_link_rtt_seconds', 'A link\'s round trip, smoothed (echo request → reply every 2 s); absent until measured', linkLabels, (put) =>
    eachLink((l, k) => { if (l.srttMs !== undefined) put(k, l.srttMs / 1000); }));
  readGauge('vnet_daemon_link_queue_bytes', 'Bytes queued on a link\'s socket, not yet written', linkLabels, (put) =>
    eachLink((l, k) => put(k, l.backlogBytes)));
  // Native records (TLS links switched to them): absent for other links.
  readGauge('vnet_daemon_link_record_version', 'The native records version of a TLS link (1, or 2: rekeying in place); absent for a link without records', linkLabels, (put) =>
    eachLink((l, k) => { if (l.records !== undefined) put(k, l.records.version); }));
  readCounter('vnet_daemon_link_key_updates_total', 'Key updates (KEY_UPDATE records) of a native-records link, by direction: the key generation (its current connection)', [...linkLabels, 'direction'], (put) =>
    eachLink((l, k) => { if (l.records !== undefined) { put({ ...k, direction: 'tx' }, l.records.txGeneration); put({ ...k, direction: 'rx' }, l.records.rxGeneration); } }));
  readGauge('vnet_daemon_link_key_bytes', 'Plaintext bytes sealed (tx) or opened (rx) under a native-records link\'s current key', [...linkLabels, 'direction'], (put) =>
    eachLink((l, k) => { if (l.records !== undefined) { put({ ...k, direction: 'tx' }, l.records.txBytes); put({ ...k, direction: 'rx' }, l.records.rxBytes); } }));
  readGauge('vnet_daemon_link_key_age_seconds', 'How long a native-records link\'s send key has been in use (it is updated at rekey ageMs, default 1 h)', linkLabels, (put) =>
    eachLink((l, k) => { if (l.records !== undefined) put(k, l.records.txKeyAgeMs / 1000); }));
  readCounter('vnet_daemon_link_failures_total', 'Links that ended with an error, by error code (all peers, since start)', ['code'], (put) => {
    for (const [code, n] of Object.entries(daemon.stats.linkFailuresByCode)) put({ code }, n);
  });

  // ---- ports
  readCounter('vnet_daemon_port_frames_total', 'Frames through a VM port, by direction (rx: from the VM)', ['port', 'direction'], (put) => {
    for (const p of daemon.facts().ports) { put({ port: p.name, direction: 'rx' }, p.rxFrames); put({ port: p.name, direction: 'tx' }, p.txFrames); }
  });
  readCounter('vnet_daemon_port_bytes_total', 'Bytes through a VM port, by direction (rx: from the VM)', ['port', 'direction'], (put) => {
    for (const p of daemon.facts().ports) { put({ port: p.name, direction: 'rx' }, p.rxBytes); put({ port: p.name, direction: 'tx' }, p.txBytes); }
  });
  readCounter('vnet_daemon_port_dropped_frames_total', 'Frames to a VM that its port dropped (device down or refusing, queue full, over the MTU)', ['port'], (put) => {
    for (const p of daemon.facts().ports) put({ port: p.name }, p.txDropped);
  });
  readCounter('vnet_daemon_port_security_dropped_frames_total', 'Frames from a VM its port refused, by the limit that refused them (port-security.ts)', ['port', 'limit'], (put) => {
    for (const p of daemon.facts().ports) {
      if (p.security === undefined) continue;
      for (const limit of PORT_LIMITS) put({ port: p.name, limit }, p.security[limit]);
    }
  });
  readCounter('vnet_daemon_packet_port_dropped_frames_total', 'Frames from a VM a packet port dropped before forwarding (runts, too-large: truncated, spoofed-mac, spoofed-ip, malformed) or the kernel dropped for its socket (kernel)', ['port', 'reason'], (put) => {
    for (const p of daemon.facts().ports) {
      if (p.packet === undefined) continue;
      for (const [reason, n] of packetDropReasons(p.packet)) put({ port: p.name, reason }, n);
    }
  });
  readGauge('vnet_daemon_learned_macs', 'MAC addresses learned, by where they were learned (a port, or a link to a peer)', ['location', 'name'], (put) => {
    const counts = new Map<string, number>();
    for (const p of daemon.facts().ports) counts.set(`port\0${p.name}`, 0);
    for (const e of daemon.table.learned()) {
      const key = e.location.kind === 'port' ? `port\0${e.location.name}` : `link\0${e.location.peer}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const [key, n] of counts) {
      const [location, name] = key.split('\0') as [string, string];
      put({ location, name }, n);
    }
  });

  // ---- forwarding
  readCounter('vnet_daemon_forwarding_cache_hits_total', 'Forwarding decisions answered by the flow cache', [], (put) => put({}, daemon.table.stats.hits));
  readCounter('vnet_daemon_forwarding_cache_misses_total', 'Forwarding decisions computed (flow cache misses)', [], (put) => put({}, daemon.table.stats.misses));
  readCounter('vnet_daemon_forwarding_cache_invalidations_total', 'Whole flow-cache invalidations (rule, port or link changes)', [], (put) => put({}, daemon.table.stats.invalidations));
  readGauge('vnet_daemon_native_forwarding', 'Whether the native forwarder runs (1: established flows between TAP ports and plain-TCP links bypass the event loop) or not (0)', [], (put) =>
    put({}, daemon.nativeForwarding.running ? 1 : 0));
  readCounter('vnet_daemon_native_forwarded_frames_total', 'Frames the native forwarder carried on its own thread (absent when it does not run)', [], (put) => {
    const n = daemon.nativeCarriedFrames;
    if (n !== undefined) put({}, n);
  });
  readCounter('vnet_daemon_native_poll_spins_total', 'Times the native forwarder spun (polled without sleeping) after a batch, by how the spin ended: traffic came (hit) or its deadline passed (miss)', ['result'], (put) => {
    const p = daemon.nativePollStats;
    if (p === undefined) return;
    put({ result: 'hit' }, p.hits);
    put({ result: 'miss' }, p.spins - p.hits);
  });
  readCounter('vnet_daemon_native_poll_spin_seconds_total', 'Time the native forwarder spent spinning', [], (put) => {
    const p = daemon.nativePollStats;
    if (p !== undefined) put({}, p.spinNs / 1e9);
  });
  readCounter('vnet_daemon_native_poll_refused_total', 'Spins the adaptive policy refused, by reason: its CPU budget was spent (budget), the CPUs were oversubscribed (contention)', ['reason'], (put) => {
    const p = daemon.nativePollStats;
    if (p === undefined) return;
    put({ reason: 'budget' }, p.budgetDenied);
    put({ reason: 'contention' }, p.contended);
  });
  readCounter('vnet_daemon_mac_conflicts_total', 'Frames from a link whose source MAC belongs to a local port or a controller-placed VM (not re-learned)', [], (put) => put({}, daemon.table.stats.macConflicts));
  readCounter('vnet_daemon_forwarding_dropped_frames_total', 'Frames the forwarding table dropped, by reason', ['reason'], (put) => {
    const s = daemon.table.stats;
    for (const reason of ['rule-drop', 'hairpin', 'split-horizon', 'unknown-ingress'] as const) put({ reason }, s.drops[reason]);
    put({ reason: 'runt' }, daemon.stats.runtFrames);
    put({ reason: 'no-route' }, daemon.stats.droppedNoRoute);
  });

  // ---- VXLAN endpoint (present without VXLAN too, with no series)
  readCounter('vnet_daemon_vxlan_dropped_total', 'Datagrams the VXLAN endpoint dropped on receipt (unknown source, wrong VNI, malformed by reason) and frames it did not send (oversize, send error)', ['reason'], (put) => {
    const v = daemon.vxlan;
    if (v === undefined) return;
    for (const [reason, n] of vxlanDrops(v.stats)) put({ reason }, n);
  });

  // ---- control channel
  if (sources.controllerConnected !== undefined) {
    const connected = sources.controllerConnected;
    readGauge('vnet_daemon_controller_connected', 'Whether the control channel to the controller is up (1) or not (0)', [], (put) => put({}, connected() === true ? 1 : 0));
  }
  return registry;
}

export interface MetricsServer {
  /** "http://HOST:PORT/metrics" */
  readonly url: string;
  close(): Promise<void>;
}

/** A read-only HTTP server for scrapers: `GET /metrics` and nothing else. */
export async function startMetricsServer(components: { logger: Logger; registry: Registry }, init: { host: string; port: number }): Promise<MetricsServer> {
  const log = componentLogger(components.logger, 'metrics');
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    components.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
      (err: unknown) => {
        log.error({ err }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(init.port, init.host, resolve));
  } catch (err) {
    throw new MetricsListenError(formatHostPort(init), err as Error);
  }
  server.on('error', (err) => log.warn({ err: err.message }, 'metrics server error'));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : init.port;
  log.info({ host: init.host, port }, 'metrics endpoint listening');
  return {
    url: `http://${formatHostPort({ host: init.host, port })}/metrics`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
