import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/common/logger.ts';
import { ControlLoop } from '../../src/controller/control-loop.ts';
import { ControllerEventLog } from '../../src/controller/event-log.ts';
import { ControllerMetrics } from '../../src/controller/metrics.ts';
import { ControllerService } from '../../src/controller/service.ts';
import { SqliteTokenStore } from '../../src/controller/sqlite-token-store.ts';
import { DEFAULT_POLICY } from '../../src/controller/deployment-file.ts';
import { openStore, type ControllerStore } from '../../src/controller/store/store.ts';
import { TopologyTracker, vttifParamsFromPolicy } from '../../src/controller/topology-tracker.ts';
import { createApiToken, verifyApiToken } from '../../src/controller/api/token-store.ts';
import { controllerModelCompliance, type ControllerModelHarness } from './controller-model-compliance.ts';

/** The store-backed model over an in-memory database, without a control channel (no daemon connected). */
function build(store: ControllerStore, now: () => number = Date.now): { model: ControllerService; events: ControllerEventLog; core: ControlLoop } {
  const logger = silentLogger();
  const events = new ControllerEventLog({ store, logger, wallClock: now });
  const metrics = new ControllerMetrics(new Registry());
  const topology = new TopologyTracker(vttifParamsFromPolicy({ ...DEFAULT_POLICY }));
  const core = new ControlLoop({ store, events, metrics, topology, logger, wallClock: now }, { policy: { ...DEFAULT_POLICY } });
  return { model: new ControllerService({ store, events, loop: core, topology, wallClock: now }), events, core };
}

controllerModelCompliance('SQLite store', async (): Promise<ControllerModelHarness> => {
  const store = openStore({ path: ':memory:' });
  const { model } = build(store);
  return {
    model,
    seed(hosts, backbone) {
      for (const id of hosts) {
        store.upsertHost({ id, site: undefined, role: id === 'hub' ? 'hub' : 'spoke', addresses: [] });
        store.setHostConnected(id, true, 1);
      }
      for (const [a, b] of backbone) store.putLink({ a, b, kind: 'backbone', requestedBy: 'deployment', reason: 'star' }, 1);
    },
    close: () => store.close(),
  };
});

describe('ControllerService (SQLite)', () => {
  it('keeps events, links and audit records across a reopen of the database, with seq carrying on', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'vnet-svc-'));
    try {
      const path = join(dir, 'vnet.db');
      let store = openStore({ path });
      for (const id of ['a', 'b', 'hub']) store.upsertHost({ id, site: undefined, role: id === 'hub' ? 'hub' : 'spoke', addresses: [] });
      let { model } = build(store, () => 5000);
      await model.addFastPathLink('a', 'b', 'persist me', 'operator:ann');
      const latest = model.latestSeq();
      const history = model.listEvents({ since: 0 }).events;
      store.close();

      store = openStore({ path });
      ({ model } = build(store, () => 6000));
      assert.equal(model.getLink('a', 'b')?.reason, 'persist me');
      assert.equal(model.getLink('a', 'b')?.actor, 'operator:ann');
      assert.equal(model.latestSeq(), latest);
      assert.deepEqual(model.listEvents({ since: 0 }).events, history);
      await model.removeFastPathLink('a', 'b', 'operator:ann');
      assert.equal(model.listEvents({ since: latest }).events[0]!.seq, latest + 1);
      assert.deepEqual(store.listAudit().map((r) => [r.actor, r.action]), [['operator:ann', 'remove-fast-path-link'], ['operator:ann', 'add-fast-path-link']]);
      assert.ok(model.listDecisions({}).some((d) => d.kind === 'fast-path-added'));
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves desired rules with their version and reason per host', async () => {
    const store = openStore({ path: ':memory:' });
    const { model, core } = build(store);
    for (const id of ['a', 'b', 'hub']) store.upsertHost({ id, site: undefined, role: id === 'hub' ? 'hub' : 'spoke', addresses: [{ transport: 'tcp', host: '127.0.0.1', port: id.length }] });
    store.upsertVm({ mac: '02:00:00:00:00:0b', name: 'vb', ip: '10.0.0.2', host: 'b', state: 'running', source: 'deployment', updatedMs: 1 });
    core.reconcile('test');
    const rules = model.getRules('a')!;
    assert.equal(rules.version, 1);
    assert.equal(rules.appliedVersion, null);
    assert.deepEqual(rules.rules.map((r) => [r.dst, r.action, r.reason]), [['02:00:00:00:00:0b', { link: 'hub' }, 'VM location via hub']]);
    await model.addFastPathLink('a', 'b', 'hot', 'operator:x');
    const after = model.getRules('a')!;
    assert.equal(after.version, 2);
    assert.deepEqual(after.rules.map((r) => [r.action, r.reason]), [[{ link: 'b' }, 'fast path to b']]);
    assert.equal(model.getVm('02-00-00-00-00-0B')?.name, 'vb');
    assert.equal(model.getVm('not a mac'), undefined);
    store.close();
  });

  it('stores API tokens hashed and finds them by hash (the API\'s TokenStore)', () => {
    const store = openStore({ path: ':memory:' });
    const tokens = new SqliteTokenStore(store);
    assert.equal(tokens.count(), 0);
    const { token, record } = createApiToken(tokens, 'admin', 42);
    assert.equal(tokens.count(), 1);
    assert.deepEqual(verifyApiToken(tokens, token), record);
    assert.equal(verifyApiToken(tokens, `${token}x`), undefined);
    assert.equal(JSON.stringify(store.access.listApiTokens()).includes(token), false);
    store.access.revokeApiToken(record.id, 43);
    assert.equal(verifyApiToken(tokens, token), undefined);
    store.close();
  });
});

describe('ControllerEventLog', () => {
  it('prunes traffic snapshots to the latest 100 and the whole history to maxEvents, keeping seq', () => {
    const store = openStore({ path: ':memory:' });
    const events = new ControllerEventLog({ store, logger: silentLogger(), wallClock: () => 1 }, { maxEvents: 500 });
    for (let i = 0; i < 400; i++) {
      events.emit('traffic-updated', { at: i, links: [] });
      events.emit('host-removed', { id: `h${i}` });
    }
    const all = events.listEvents({ since: 0, limit: 1000 });
    assert.equal(all.latestSeq, 800);
    const traffic = events.listEvents({ since: 0, limit: 1000, types: ['traffic-updated'] }).events;
    assert.ok(traffic.length >= 100 && traffic.length < 200, `${traffic.length} traffic events kept`);
    assert.equal(traffic.at(-1)!.seq, 799);
    assert.ok(all.oldestSeq > 1 && all.oldestSeq <= 800 - 500 + 100, `oldest ${all.oldestSeq}`);
    assert.equal(events.listEvents({ since: 0, limit: 1000, types: ['host-removed'] }).events.at(-1)!.seq, 800);
    store.close();
  });
});
