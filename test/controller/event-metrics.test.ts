import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { EventView } from '../../src/controller/api-events.ts';
import type { MigrationView } from '../../src/controller/api-views.ts';
import { EventMetrics } from '../../src/controller/event-metrics.ts';
import { metricValue } from './fixtures/controller-harness.ts';

/** The controller's event-log metrics: each event type moves the metric named for it. */

let seq = 0;
const ev = (e: Omit<EventView, 'seq' | 'time'>): EventView => ({ seq: ++seq, time: 0, ...e }) as EventView;

function migration(state: MigrationView['state'], over: Partial<MigrationView> = {}): EventView {
  const m = {
    id: 'm1', vm: 'vm1', from: 'h1', to: 'h2', phase: 'done', progress: 1, bytesSent: 0, bytesTotal: null, etaMs: null, state,
    startedAt: 1_000, finishedAt: state === 'running' ? null : 31_000, error: null, step: 'done', rule: null, requestedBy: null,
    enginePhase: null, iteration: null, pagesLeft: null, dirtyRate: null,
    cutover: { timeMs: 180, pausedAt: 30_000, acknowledgedAt: 30_180, held: 0, flushed: 0, relayed: 0, lost: 0, announced: 0 },
    ...over,
  } as MigrationView;
  return ev({ type: 'migration-changed', payload: { migration: m } });
}

/** A histogram's series `_sum` or `_count`. */
async function histogramPart(registry: Registry, name: string, part: 'sum' | 'count'): Promise<number | undefined> {
  const values = (await registry.getSingleMetric(name)!.get()).values as { metricName?: string; value: number }[];
  return values.find((v) => v.metricName === `${name}_${part}`)?.value;
}

function setup(): { registry: Registry; m: EventMetrics } {
  const registry = new Registry();
  const m = new EventMetrics(registry);
  m.start({ hosts: [{ id: 'h1', connected: false }, { id: 'h2', connected: false }], fastPathLinks: [{ a: 'h1', b: 'h3' }], topologyClass: 'none' });
  return { registry, m };
}

test('hosts connected: from the store at start, then host-changed and host-removed', async () => {
  const { registry, m } = setup();
  assert.equal(await metricValue(registry, 'vnet_host_connected'), 0);
  m.record(ev({ type: 'host-changed', payload: { host: { id: 'h1', state: 'up' } as never } }));
  assert.equal(await metricValue(registry, 'vnet_host_connected', { host: 'h1' }), 1);
  m.record(ev({ type: 'host-removed', payload: { id: 'h1' } }));
  const series = (await registry.getSingleMetric('vnet_host_connected')!.get()).values.map((v) => v.labels.host);
  assert.deepEqual(series, ['h2']);
});

test('the topology class: one class at 1, a change counted by its new class', async () => {
  const { registry, m } = setup();
  assert.equal(await metricValue(registry, 'vnet_topology_class', { class: 'none' }), 1);
  m.record(ev({ type: 'topology-changed', payload: { topology: { class: 'ring', centre: null, confidence: 0.9, edges: [], detectedAt: 0, weightsAt: 0 } as never } }));
  assert.equal(await metricValue(registry, 'vnet_topology_class', { class: 'ring' }), 1);
  assert.equal(await metricValue(registry, 'vnet_topology_class'), 1, 'one class at a time');
  assert.equal(await metricValue(registry, 'vnet_topology_changes_total', { class: 'ring' }), 1);
});

test('fast-path links: added once however often the link changes state, removed once; backbone links ignored', async () => {
  const { registry, m } = setup();
  const link = (a: string, b: string, kind: 'fast-path' | 'backbone', state: string) => ev({ type: 'link-changed', payload: { link: { a, b, kind, state } as never } });
  m.record(link('h1', 'h2', 'fast-path', 'pending'));
  m.record(link('h1', 'h2', 'fast-path', 'up'));
  m.record(link('h1', 'h3', 'fast-path', 'up'));
  m.record(link('h1', 'h4', 'backbone', 'up'));
  assert.equal(await metricValue(registry, 'vnet_fast_path_changes_total', { change: 'added' }), 1);
  assert.equal(await metricValue(registry, 'vnet_fast_path_links'), 2);
  m.record(ev({ type: 'link-removed', payload: { a: 'h3', b: 'h1', kind: 'fast-path', actor: null, reason: 'idle' } }));
  m.record(ev({ type: 'link-removed', payload: { a: 'h3', b: 'h1', kind: 'fast-path', actor: null, reason: 'idle' } }));
  assert.equal(await metricValue(registry, 'vnet_fast_path_changes_total', { change: 'removed' }), 1);
  assert.equal(await metricValue(registry, 'vnet_fast_path_links'), 1);
});

test('migrations: running, then counted once by result, with the downtime and duration of a success', async () => {
  const { registry, m } = setup();
  m.record(migration('running'));
  m.record(migration('running'));
  assert.equal(await metricValue(registry, 'vnet_migrations_running'), 1);
  m.record(migration('succeeded'));
  m.record(migration('succeeded'));
  assert.equal(await metricValue(registry, 'vnet_migrations_running'), 0);
  assert.equal(await metricValue(registry, 'vnet_migrations_total', { result: 'succeeded' }), 1);
  assert.equal(await histogramPart(registry, 'vnet_migration_downtime_seconds', 'sum'), 0.18);
  assert.equal(await histogramPart(registry, 'vnet_migration_duration_seconds', 'sum'), 30);
  m.record(migration('running', { id: 'm2' }));
  m.record(migration('failed', { id: 'm2', cutover: null }));
  assert.equal(await metricValue(registry, 'vnet_migrations_total', { result: 'failed' }), 1);
  assert.equal(await histogramPart(registry, 'vnet_migration_downtime_seconds', 'count'), 1, 'a failure has no downtime');
});
