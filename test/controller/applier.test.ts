import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/common/logger.ts';
import type { EventView } from '../../src/controller/api-events.ts';
import { Applier } from '../../src/controller/applier.ts';
import { decision, event, noEffects } from '../../src/controller/effects.ts';
import { ControllerEventLog } from '../../src/controller/event-log.ts';
import { ControllerMetrics } from '../../src/controller/metrics.ts';
import { SessionTable } from '../../src/controller/session-table.ts';
import type { StoreBackend } from '../../src/controller/store/store-backend.ts';
import { ControllerStore, openStore } from '../../src/controller/store/store.ts';
import { metricValue } from './fixtures/controller-harness.ts';
import { fakeSession } from './fixtures/fake-session.ts';

function setup(): { applier: Applier; store: ReturnType<typeof openStore>; events: ControllerEventLog; sessions: SessionTable; registry: Registry } {
  const store = openStore({ path: ':memory:' });
  const events = new ControllerEventLog({ store, logger: silentLogger(), wallClock: () => 42 });
  const sessions = new SessionTable();
  const registry = new Registry();
  const applier = new Applier({ store, events, sessions, metrics: new ControllerMetrics(registry), logger: silentLogger() });
  return { applier, store, events, sessions, registry };
}

test('writes land before the messages and the events that announce them; messages go to connected sessions first, and pushes are counted', async (t) => {
  const { applier, store, events, sessions, registry } = setup();
  t.after(() => store.close());
  store.upsertHost({ id: 'h1', site: undefined, role: 'spoke', addresses: [] });
  store.upsertHost({ id: 'h2', site: undefined, role: 'spoke', addresses: [] });
  const session = fakeSession('h1');
  sessions.open(session, { linksVersion: 0, rulesVersion: 0 });
  const seen: Array<[string, number, number]> = [];
  // Each event is written with the messages already handed to the sessions (a cutover's push waits for no event row).
  events.subscribe((e: EventView) => seen.push([e.type, store.listLinks('fast-path').length, session.sent.length]));
  const e = noEffects();
  e.writes.push({ op: 'put-link', link: { a: 'h1', b: 'h2', kind: 'fast-path', requestedBy: 'adaptation', reason: 'hot' }, atMs: 7 });
  e.events.push(event('link-removed', { a: 'x', b: 'y', kind: 'fast-path', actor: null, reason: 'r' }), decision('fast-path-added', 'hot', { a: 'h1', b: 'h2' }));
  e.messages.push({ host: 'h1', message: { type: 'set-rules', version: 3, rules: [] } }, { host: 'h2', message: { type: 'set-rules', version: 1, rules: [] } });
  applier.apply(e);
  assert.deepEqual(seen, [['link-removed', 1, 1], ['decision', 1, 1]]);
  assert.deepEqual(session.sent, [{ type: 'set-rules', version: 3, rules: [] }]);
  assert.equal(await metricValue(registry, 'vnet_control_pushes_total', { kind: 'rules' }), 1);
  assert.equal(events.listDecisions(10)[0]?.reason, 'hot');
});

test('the writes are one transaction: a failing write leaves none of them, and nothing is announced', (t) => {
  const { applier, store, events } = setup();
  t.after(() => store.close());
  store.upsertHost({ id: 'h1', site: undefined, role: 'spoke', addresses: [] });
  const before = events.latestSeq();
  const e = noEffects();
  e.writes.push({ op: 'upsert-vm', vm: { mac: '02:00:00:00:00:01', name: undefined, ip: undefined, host: 'h1', state: 'running', source: 'learned', updatedMs: 1 } });
  e.writes.push({ op: 'topology', atMs: 1, kind: 'ring', body: { bad: 1n } });
  e.events.push(event('vm-removed', { mac: '02:00:00:00:00:01' }));
  assert.throws(() => applier.apply(e));
  assert.equal(store.getVm('02:00:00:00:00:01'), undefined);
  assert.equal(events.latestSeq(), before);
});

/** A backend whose writes become durable when the test says so (as etcd's answer would make them). */
function gatedBackend(): StoreBackend & { release(): void; refuse(err: Error): void } {
  let gate: { promise: Promise<void>; resolve(): void; reject(err: Error): void } | undefined;
  return {
    kind: 'etcd', location: 'gated',
    committed() {
      if (gate === undefined) {
        let resolve!: () => void;
        let reject!: (err: Error) => void;
        const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
        gate = { promise, resolve, reject };
      }
      return gate.promise;
    },
    durableTransaction: (db, fn) => db.transaction(fn).immediate(),
    close: () => undefined,
    release() { gate?.resolve(); gate = undefined; },
    refuse(err) { gate?.reject(err); gate = undefined; },
  };
}

test('on a store whose writes are durable later (etcd), messages wait for the commit, in order; refused writes release nothing', async (t) => {
  const sqlite = openStore({ path: ':memory:' });
  t.after(() => sqlite.close());
  const backend = gatedBackend();
  const store = new ControllerStore(sqlite.db, backend);
  const events = new ControllerEventLog({ store, logger: silentLogger(), wallClock: () => 42 });
  const sessions = new SessionTable();
  const applier = new Applier({ store, events, sessions, metrics: new ControllerMetrics(new Registry()), logger: silentLogger() });
  store.upsertHost({ id: 'h1', site: undefined, role: 'spoke', addresses: [] });
  const session = fakeSession('h1');
  sessions.open(session, { linksVersion: 0, rulesVersion: 0 });
  const push = (version: number): void => {
    const e = noEffects();
    e.writes.push({ op: 'ack', host: 'h1', kind: 'rules', version });
    e.messages.push({ host: 'h1', message: { type: 'set-rules', version, rules: [] } });
    applier.apply(e);
  };
  push(1);
  assert.equal(store.getVersions('h1').rulesAcked, 1, 'the write is in the model at once');
  assert.deepEqual(session.sent, [], 'nothing is sent before the write is durable');
  backend.release();
  await applier.settled();
  push(2);
  push(3);
  assert.deepEqual(session.sent.map((m) => (m as { version: number }).version), [1]);
  backend.refuse(new Error('fenced'));
  await applier.settled();
  assert.deepEqual(session.sent.map((m) => (m as { version: number }).version), [1], 'a refused write releases nothing that followed it');
});
