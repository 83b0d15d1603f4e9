import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import { createApiMetrics } from '../../src/controller/api/http-metrics.ts';
import { createControllerRegistry } from '../../src/controller/launch.ts';
import { startController, type ControllerHandle } from '../../src/controller/runtime.ts';
import { openStore } from '../../src/controller/store/store.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { createDaemonRegistry } from '../../src/dataplane/daemon-metrics.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { testDeployment } from '../controller/fixtures/controller-harness.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { metricCatalogue, type MetricCatalogue } from '../helpers/metric-catalogue.ts';
import { promqlReads } from '../helpers/promql-selectors.ts';

/**
 * deploy/grafana/vnet.json is importable (a Prometheus datasource variable,
 * no hard-coded datasource uid) and reads only what vnet exports: every
 * metric each PromQL expression names is in the controller's or a daemon's
 * real registry, and every label it filters or groups by is one that metric
 * carries. Renaming a metric or a label in src/ fails this test.
 */

const DASHBOARD_FILE = new URL('../../deploy/grafana/vnet.json', import.meta.url);
const GRAFANA_VARIABLES: Record<string, string> = { $__rate_interval: '1m', $__interval: '1m', $__range: '1h' };

interface Target { expr?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id: number; type: string; title: string; datasource?: { type?: string; uid?: string }; targets?: Target[]; panels?: Panel[]; gridPos?: unknown }
interface Dashboard {
  schemaVersion: number;
  uid: string;
  id: number | null;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: { uid?: string } }[] };
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard (panel targets; `label_values(METRIC, LABEL)` of query variables as `METRIC` grouped by LABEL), Grafana's variables filled in. */
function expressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  }
  for (const v of d.templating.list.filter((x) => x.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
    assert.ok(m !== null, `variable ${v.name}: expected label_values(METRIC, LABEL), got ${q}`);
    out.push({ where: `variable $${v.name}`, expr: `count by (${m[2]}) (${m[1]})` });
  }
  return out.map(({ where, expr }) => ({ where, expr: expr.replace(/\$__\w+/g, (v) => GRAFANA_VARIABLES[v] ?? v) }));
}

/** What in `d` names a metric or a label that `catalogue` does not have (empty: all is exported). */
function problems(d: Dashboard, catalogue: MetricCatalogue): string[] {
  const out: string[] = [];
  for (const { where, expr } of expressions(d)) {
    let reads;
    try {
      reads = promqlReads(expr);
    } catch (err) {
      out.push(`${where}: ${(err as Error).message}`);
      continue;
    }
    for (const s of reads.selectors) {
      const metric = catalogue.get(s.metric);
      if (metric === undefined) { out.push(`${where}: ${s.metric} is not exported`); continue; }
      for (const l of s.labels) if (!metric.labels.has(l)) out.push(`${where}: ${s.metric} has no label ${l}`);
    }
    for (const g of reads.groupings) {
      for (const s of g.selectors) {
        for (const l of g.labels) if (catalogue.get(s.metric)?.labels.has(l) === false) out.push(`${where}: ${g.op} by (${l}) over ${s.metric}, which has no label ${l}`);
      }
    }
  }
  return out;
}

describe('promqlReads (the checker\'s PromQL reader)', () => {
  it('finds selectors with their matchers\' labels and groupings with the selectors under them, through functions, ranges, offsets and operators', () => {
    const r = promqlReads('histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="1", b=~"x|y"}[5m] offset 1h30m))) > bool 0.5 and max without (c) (y) / -z');
    assert.deepEqual(r.selectors.map((s) => [s.metric, s.labels]), [['x_bucket', ['a', 'b']], ['y', []], ['z', []]]);
    assert.deepEqual(r.groupings.map((g) => [g.op, g.labels, g.selectors.map((s) => s.metric)]), [['sum', ['le'], ['x_bucket']], ['max', ['c'], ['y']]]);
    assert.deepEqual(promqlReads('sum(rate(a[1m])) by (host)').groupings[0]?.labels, ['host'], 'by after the arguments');
  });

  it('refuses what it cannot check, naming it', () => {
    assert.throws(() => promqlReads('a * on (host) b'), /on is not supported/);
    assert.throws(() => promqlReads('a{b=1}'), /expected a string value for b/);
    assert.throws(() => promqlReads('sum(a'), /unexpected end/);
    assert.throws(() => promqlReads('a b'), /unexpected b/);
  });
});

describe('deploy/grafana/vnet.json', () => {
  const text = readFileSync(DASHBOARD_FILE, 'utf8');
  const dashboard = JSON.parse(text) as Dashboard;
  let catalogue: MetricCatalogue;
  const closers: (() => Promise<void> | void)[] = [];

  before(async () => {
    const logger = silentLogger();
    // A daemon's registry, with a port so that its per-port series exist.
    const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'h1', network: new MemoryNetwork() }) }, { hostId: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
    closers.push(() => daemon.close());
    daemon.addPort(new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:00:01') }));
    const daemonRegistry = createDaemonRegistry({ daemon, controllerConnected: () => true });
    // The controller's: the process's registry, the controller's metrics, the operator API's.
    const controllerRegistry: Registry = createControllerRegistry();
    const store = openStore({ path: ':memory:' });
    const pki = testPki();
    const controller: ControllerHandle = await startController({ logger, registry: controllerRegistry, store }, {
      deployment: testDeployment(), control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000,
    });
    closers.push(async () => { await controller.close(); store.close(); });
    createApiMetrics(controllerRegistry);
    catalogue = await metricCatalogue([daemonRegistry, controllerRegistry]);
  });
  after(async () => { for (const close of closers.reverse()) await close(); });

  it('is importable: a schema version, a uid, a Prometheus datasource variable that every panel and query uses', () => {
    assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
    assert.match(dashboard.uid, /^[\w-]{1,40}$/);
    assert.equal(dashboard.id, null, 'no instance id: Grafana assigns one at import');
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.equal(ds?.query, 'prometheus');
    const uses = `\${${ds!.name}}`;
    const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 20, `${panels.length} panels`);
    for (const p of panels) {
      assert.equal(p.datasource?.uid, uses, `panel "${p.title}": datasource ${JSON.stringify(p.datasource)}`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, uses, `panel "${p.title}": a target's datasource ${JSON.stringify(t.datasource)}`);
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) assert.equal(v.datasource?.uid, uses, `variable ${v.name}`);
    const ids = allPanels(dashboard.panels).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });

  it('covers hosts, link rates, the topology class, fast-path changes, migrations and downtime, hubs, drops, port security and the control channel', () => {
    const named = new Set(expressions(dashboard).flatMap(({ expr }) => promqlReads(expr).selectors.map((s) => s.metric)));
    for (const m of [
      'vnet_host_connected', 'vnet_daemon_link_bytes_total', 'vnet_topology_class', 'vnet_fast_path_changes_total', 'vnet_migrations_total',
      'vnet_migration_downtime_seconds_bucket', 'vnet_hub_state', 'vnet_daemon_forwarding_dropped_frames_total',
      'vnet_daemon_port_security_dropped_frames_total', 'vnet_control_messages_total', 'vnet_daemon_controller_connected',
    ]) assert.ok(named.has(m), `no panel reads ${m}`);
  });

  it('every metric its expressions name is exported, with every label they filter or group by', () => {
    assert.deepEqual(problems(dashboard, catalogue), []);
  });

  it('the check finds a renamed metric, a label a metric does not have, and PromQL it cannot read', () => {
    const renamed = JSON.parse(text.replaceAll('vnet_daemon_link_bytes_total', 'vnet_daemon_link_octets_total')) as Dashboard;
    assert.ok(problems(renamed, catalogue).some((p) => /vnet_daemon_link_octets_total is not exported/.test(p)));
    const histogramRenamed = JSON.parse(text.replaceAll('vnet_migration_downtime_seconds_bucket', 'vnet_migration_downtime_seconds')) as Dashboard;
    assert.ok(problems(histogramRenamed, catalogue).some((p) => /vnet_migration_downtime_seconds is not exported/.test(p)), 'a histogram is read through its _bucket series');
    const badLabel = JSON.parse(text.replace('sum by (host, peer, kind) (rate(vnet_daemon_link_bytes_total', 'sum by (host, port) (rate(vnet_daemon_link_bytes_total')) as Dashboard;
    assert.ok(problems(badLabel, catalogue).some((p) => /by \(port\) over vnet_daemon_link_bytes_total/.test(p)));
    const badMatcher = JSON.parse(text.replace('vnet_daemon_link_bytes_total{host=~\\"$host\\", direction=\\"tx\\"}', 'vnet_daemon_link_bytes_total{host=~\\"$host\\", dir=\\"tx\\"}')) as Dashboard;
    assert.ok(problems(badMatcher, catalogue).some((p) => /vnet_daemon_link_bytes_total has no label dir/.test(p)));
    const unreadable = JSON.parse(text.replace('sum(vnet_host_connected)', 'sum(vnet_host_connected) * on (host) vnet_control_sessions')) as Dashboard;
    assert.ok(problems(unreadable, catalogue).some((p) => /on is not supported/.test(p)));
  });
});
