import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { TopologyClass } from '../topology/class-fit.ts';
import type { EventView } from './api-events.ts';
import type { HostView, LinkView, MigrationView } from './api-views.ts';

/**
 * The controller's metrics that follow its event log (what the operator API
 * streams): hosts connected, the inferred topology class, fast-path links
 * added and removed, migrations and their downtime. One subscriber turns each
 * event into gauges and counters (runtime.ts subscribes it), so nothing the
 * planners decide has to know about metrics, and a metric says exactly what
 * the event stream says. `start` seeds the gauges from the store at startup.
 */

export const TOPOLOGY_CLASSES: readonly TopologyClass[] = ['none', 'all-to-all', 'ring', 'bus', 'star', 'mesh', 'tree', 'neighbour', 'irregular'];

/** Migration downtime (the cutover: source paused → every daemon acknowledged), seconds. */
const DOWNTIME_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Whole migration, seconds. */
const DURATION_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export interface EventMetricsStart {
  hosts: readonly { id: string; connected: boolean }[];
  fastPathLinks: readonly { a: string; b: string }[];
  topologyClass: TopologyClass;
}

export class EventMetrics {
  readonly hostConnected: Gauge<'host'>;
  readonly topologyClass: Gauge<'class'>;
  readonly topologyChanges: Counter<'class'>;
  readonly fastPathLinks: Gauge;
  readonly fastPathChanges: Counter<'change'>;
  readonly migrationsRunning: Gauge;
  readonly migrations: Counter<'result'>;
  readonly migrationDowntime: Histogram;
  readonly migrationDuration: Histogram;
  readonly #fastPath = new Set<string>();
  readonly #running = new Set<string>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.hostConnected = new Gauge({ name: 'vnet_host_connected', help: 'Whether a host of the deployment has its control session up (1) or not (0)', labelNames: ['host'], registers });
    this.topologyClass = new Gauge({ name: 'vnet_topology_class', help: 'The inferred topology class of the application: 1 for the class now, 0 for the others', labelNames: ['class'], registers });
    this.topologyChanges = new Counter({ name: 'vnet_topology_changes_total', help: 'Topology changes announced (the class or the edges changed beyond the detection threshold), by the new class', labelNames: ['class'], registers });
    this.fastPathLinks = new Gauge({ name: 'vnet_fast_path_links', help: 'Fast-path links the controller wants now (adaptation, operator, deployment)', registers });
    this.fastPathChanges = new Counter({ name: 'vnet_fast_path_changes_total', help: 'Fast-path links added and removed, by change', labelNames: ['change'], registers });
    this.migrationsRunning = new Gauge({ name: 'vnet_migrations_running', help: 'Live migrations under way', registers });
    this.migrations = new Counter({ name: 'vnet_migrations_total', help: 'Live migrations finished, by result (succeeded, failed, cancelled)', labelNames: ['result'], registers });
    this.migrationDowntime = new Histogram({ name: 'vnet_migration_downtime_seconds', help: 'A migration\'s cutover: from the pause at the source to every daemon acknowledging the rules that point at the destination', buckets: DOWNTIME_BUCKETS, registers });
    this.migrationDuration = new Histogram({ name: 'vnet_migration_duration_seconds', help: 'A successful migration, from its start to its end', buckets: DURATION_BUCKETS, registers });
    for (const result of ['succeeded', 'failed', 'cancelled']) this.migrations.inc({ result }, 0);
    for (const change of ['added', 'removed']) this.fastPathChanges.inc({ change }, 0);
  }

  /** The state the controller starts from (the store's). */
  start(init: EventMetricsStart): void {
    for (const h of init.hosts) this.hostConnected.set({ host: h.id }, h.connected ? 1 : 0);
    for (const l of init.fastPathLinks) this.#fastPath.add(linkKey(l));
    this.fastPathLinks.set(this.#fastPath.size);
    this.#setClass(init.topologyClass);
    this.migrationsRunning.set(0);
  }

  record(event: EventView): void {
    switch (event.type) {
      case 'host-changed': return this.#host(event.payload.host);
      case 'host-removed': this.hostConnected.remove({ host: event.payload.id }); return;
      case 'topology-changed':
        this.#setClass(event.payload.topology.class);
        this.topologyChanges.inc({ class: event.payload.topology.class });
        return;
      case 'link-changed': return this.#link(event.payload.link);
      case 'link-removed':
        if (event.payload.kind === 'fast-path' && this.#fastPath.delete(linkKey(event.payload))) {
          this.fastPathChanges.inc({ change: 'removed' });
          this.fastPathLinks.set(this.#fastPath.size);
        }
        return;
      case 'migration-changed': return this.#migration(event.payload.migration);
      default:
    }
  }

  #host(h: HostView): void {
    this.hostConnected.set({ host: h.id }, h.state === 'up' ? 1 : 0);
  }

  #setClass(now: TopologyClass): void {
    for (const c of TOPOLOGY_CLASSES) this.topologyClass.set({ class: c }, c === now ? 1 : 0);
  }

  #link(l: LinkView): void {
    if (l.kind !== 'fast-path' || this.#fastPath.has(linkKey(l))) return;
    this.#fastPath.add(linkKey(l));
    this.fastPathChanges.inc({ change: 'added' });
    this.fastPathLinks.set(this.#fastPath.size);
  }

  #migration(m: MigrationView): void {
    if (m.state === 'running') {
      this.#running.add(m.id);
    } else if (this.#running.delete(m.id)) {
      this.migrations.inc({ result: m.state });
      if (m.state === 'succeeded') {
        if (m.cutover?.timeMs != null) this.migrationDowntime.observe(m.cutover.timeMs / 1000);
        if (m.finishedAt !== null) this.migrationDuration.observe((m.finishedAt - m.startedAt) / 1000);
      }
    }
    this.migrationsRunning.set(this.#running.size);
  }
}

function linkKey(l: { a: string; b: string }): string {
  return l.a < l.b ? `${l.a}|${l.b}` : `${l.b}|${l.a}`;
}
