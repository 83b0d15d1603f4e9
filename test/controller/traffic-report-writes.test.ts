/**
 * What the daemons' traffic reports cost the store: counted in store
 * transactions (each one an etcd flush's worth of work on etcd, a commit on
 * SQLite), not timed. Every host sends one report a period; the period's
 * reports are stored together at its end, so N reports cost the same few
 * transactions whatever N is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_PROTOCOL_VERSION, factsToWire } from '../../src/control/control-protocol.ts';
import { testDeployment } from './fixtures/controller-harness.ts';
import { loopRig } from './fixtures/loop-rig.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { fakeSession } from './fixtures/fake-session.ts';

const PERIOD_MS = 1000;

function periodOfReports(t: { after(fn: () => void): void }, spokes: number): { duringReports: number; atTheTick: number; stored: number } {
  const hosts = ['hub', ...Array.from({ length: spokes }, (_, i) => `s${String(i).padStart(4, '0')}`)];
  const yaml = `name: scale\nsites: [{ id: lab }]\nhosts:\n${hosts.map((id, i) =>
    `  - { id: ${id}, site: lab${i === 0 ? ', hub: true' : ''}, listen: { transport: tcp, host: 127.0.0.1, port: ${7000 + i} } }`).join('\n')}\npolicy:\n  updatePeriodMs: ${PERIOD_MS}\n`;
  const { loop, store, clock } = loopRig(t, testDeployment(yaml));
  const sessions = hosts.map((id, i) => {
    const daemon = new FakeDaemon(id, { role: i === 0 ? 'hub' : 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 + i } });
    const session = fakeSession(id);
    loop.sessionOpened(session, { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: id, facts: factsToWire(daemon.facts()) });
    return session;
  });
  loop.tick();
  clock.advance(PERIOD_MS);

  // Outermost store transactions only (nested ones join them).
  let transactions = 0;
  const transaction = store.transaction.bind(store);
  store.transaction = <T>(fn: () => T): T => {
    if (!store.db.inTransaction) transactions++;
    return transaction(fn);
  };
  const end = clock.now();
  sessions.forEach((session, i) => {
    loop.messageReceived(session, {
      type: 'traffic',
      report: { host: session.hostId, startMs: end - PERIOD_MS, endMs: end, entries: [{ src: 0x020000000000 + i, dst: 0x020000000000 + ((i + 1) % sessions.length), frames: 10, bytes: 10_000 }] },
    });
  });
  const duringReports = transactions;
  loop.tick();
  return { duringReports, atTheTick: transactions - duringReports, stored: store.trafficSince(end - 1).length };
}

test('N traffic reports in one period cost no store transaction each, and the same few at the period\'s end whatever N is', (t) => {
  const small = periodOfReports(t, 20);
  const large = periodOfReports(t, 200);
  console.log(`store transactions per period of reports: 21 hosts ${JSON.stringify(small)}, 201 hosts ${JSON.stringify(large)}`);
  assert.equal(small.duringReports, 0, 'a report writes nothing on arrival');
  assert.equal(large.duringReports, 0, 'a report writes nothing on arrival');
  assert.equal(small.stored, 21, 'every report of the period stored');
  assert.equal(large.stored, 201, 'every report of the period stored');
  assert.equal(large.atTheTick, small.atTheTick, 'the period\'s transactions do not grow with the reports');
  assert.ok(large.atTheTick <= 4, `a few transactions a period (${large.atTheTick})`);
});
