/**
 * What 1,000 reporting hosts cost the store per update period, counted as
 * rows written (the change triggers the etcd backend sends its flushes by:
 * one row is one etcd key), not timed. A hub with a backbone link to each of
 * 999 spokes; every daemon sends its facts every period, with counters that
 * grow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_PROTOCOL_VERSION, factsToWire } from '../../src/control/control-protocol.ts';
import type { LinkFacts } from '../../src/control/daemon-control.ts';
import { ControllerService } from '../../src/controller/service.ts';
import { installChangeTriggers } from '../../src/controller/store/etcd/change-triggers.ts';
import { pairKey } from '../../src/controller/views.ts';
import { testDeployment } from './fixtures/controller-harness.ts';
import { loopRig } from './fixtures/loop-rig.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { deliver, fakeSession, type FakeSession } from './fixtures/fake-session.ts';

const SPOKES = 999;
const PERIOD_MS = 1000;

const spokeId = (i: number): string => `s${String(i).padStart(4, '0')}`;

function backbone(peer: string, state: LinkFacts['state'], period: number): LinkFacts {
  const n = period * 100;
  return { peer, kind: 'backbone', state, direction: 'inbound', txFrames: n, txBytes: n * 1000, rxFrames: n, rxBytes: n * 1000, txDropped: 0, decodeErrors: 0, reconnects: 0 };
}

test('1,000 hosts reporting every period: counters alone write nothing to the store; a link going down writes the two hosts whose facts changed', (t) => {
  const hosts = ['hub', ...Array.from({ length: SPOKES }, (_, i) => spokeId(i))];
  const yaml = `name: scale\nsites: [{ id: lab }]\nhosts:\n${hosts.map((id, i) =>
    `  - { id: ${id}, site: lab${i === 0 ? ', hub: true' : ''}, listen: { transport: tcp, host: 127.0.0.1, port: ${7000 + i} } }`).join('\n')}\npolicy:\n  updatePeriodMs: ${PERIOD_MS}\n`;
  const deployment = testDeployment(yaml);
  const { loop, store, events, topology, clock, wallClock } = loopRig(t, deployment);
  const service = new ControllerService({ store, events, topology, loop, wallClock });

  let period = 0;
  const daemons = new Map<string, { daemon: FakeDaemon; session: FakeSession }>();
  // The spokes connect first, then the hub (each connect reads every host's stored facts, and the hub's name 999 links).
  for (const id of [...hosts.slice(1), 'hub']) {
    const daemon = new FakeDaemon(id, { role: id === 'hub' ? 'hub' : 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 + hosts.indexOf(id) } });
    daemon.linkFacts = id === 'hub' ? hosts.slice(1).map((s) => backbone(s, 'up', period)) : [backbone('hub', 'up', period)];
    const session = fakeSession(id);
    loop.sessionOpened(session, { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: id, facts: factsToWire(daemon.facts()) });
    daemons.set(id, { daemon, session });
  }
  const report = (id: string): void => {
    const { daemon, session } = daemons.get(id)!;
    for (const ack of deliver(session, daemon)) loop.messageReceived(session, ack);
    loop.messageReceived(session, { type: 'facts', facts: factsToWire(daemon.facts()) });
  };
  // Converge: pushes acknowledged, and the versions each daemon holds reported once.
  for (let round = 0; round < 2; round++) for (const id of hosts) report(id);

  // Rows (keys) changed per table, as an etcd flush collects them: a row written twice in a period is one key.
  const written = new Map<string, Set<string>>();
  installChangeTriggers(store.db, (table, pk) => {
    if (!written.has(table)) written.set(table, new Set());
    written.get(table)!.add(pk);
  });
  const nextPeriod = (edit: (id: string, daemon: FakeDaemon) => void = () => undefined): Record<string, number> => {
    period++;
    clock.advance(PERIOD_MS);
    written.clear();
    for (const [id, { daemon }] of daemons) {
      daemon.linkFacts = daemon.linkFacts.map((l) => ({ ...backbone(l.peer, l.state, period), reconnects: l.reconnects }));
      edit(id, daemon);
      report(id);
    }
    loop.tick();
    return Object.fromEntries([...written].map(([table, keys]) => [table, keys.size]));
  };

  const steady = [nextPeriod(), nextPeriod(), nextPeriod()];
  console.log(`rows written per period, 1,000 hosts reporting, counters changed only: ${JSON.stringify(steady)}`);
  assert.deepEqual(steady, [{ events: 1 }, { events: 1 }, { events: 1 }], 'no store write for counters: the period\'s one event (traffic-updated) only');
  // The counters went to the leader's memory: rates of every backbone link, and when each host last reported.
  const rates = loop.linkRates();
  assert.equal(rates.size, SPOKES);
  assert.deepEqual(rates.get(pairKey('hub', spokeId(7))), { bytesPerSec: 2 * 100_000, framesPerSec: 2 * 100 });
  assert.equal(hosts.slice(1).filter((s) => loop.linkEnds('hub', s).length === 2).length, SPOKES, 'both ends of every backbone link');
  assert.equal(service.getHost(spokeId(7))?.lastSeen, clock.now(), 'the API has the last report');
  assert.ok((store.getHost(spokeId(7))?.lastSeenMs ?? 0) < clock.now(), 'the store has when its facts last changed');

  const down = spokeId(500);
  const changed = nextPeriod((id, daemon) => {
    if (id === down) daemon.linkFacts = [{ ...backbone('hub', 'connecting', period), reconnects: 1 }];
    if (id === 'hub') daemon.linkFacts = daemon.linkFacts.map((l) => (l.peer === down ? { ...l, state: 'down' } : l));
  });
  console.log(`rows written in the period a spoke's backbone went down: ${JSON.stringify(changed)}`);
  assert.deepEqual(changed, { hosts: 2, events: 1 }, 'the facts of the spoke and of the hub, and the period\'s event');
  assert.equal(store.getHost(down)?.facts?.links[0]?.state, 'connecting');
  assert.equal(store.getHost('hub')?.facts?.links.find((l) => l.peer === down)?.state, 'down');
  // The API's links (the leader's reports, in memory): that one re-connecting, the others up with their rates.
  const links = service.listLinks();
  assert.equal(links.length, SPOKES);
  assert.equal(service.getLink('hub', down)?.state, 'connecting');
  assert.deepEqual([service.getLink('hub', spokeId(7))?.state, service.getLink('hub', spokeId(7))?.bytesPerSec], ['up', 2 * 100_000]);
  assert.deepEqual(nextPeriod(), { events: 1 }, 'and nothing again once it is stored');
});
