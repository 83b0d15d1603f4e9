import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionTable } from '../../src/controller/session-table.ts';
import { fakeSession } from './fixtures/fake-session.ts';


test('who is connected and at which versions; a replaced session is no longer current', () => {
  const t = new SessionTable();
  const first = fakeSession('h1');
  t.open(first, { linksVersion: 2, rulesVersion: 3 });
  t.open(fakeSession('a0'), { linksVersion: 0, rulesVersion: 0 });
  assert.deepEqual(t.connectedHosts(), ['a0', 'h1']);
  assert.deepEqual(t.appliedVersions('h1'), { linksVersion: 2, rulesVersion: 3 });
  const second = fakeSession('h1');
  t.open(second, { linksVersion: 2, rulesVersion: 3 });
  assert.equal(t.current(first), false);
  assert.equal(t.close(first), false, 'closing the replaced session leaves the new one');
  assert.equal(t.current(second), true);
  assert.equal(t.close(second), true);
  assert.equal(t.appliedVersions('h1'), undefined);
});

test('an ack of the version in flight clears it; facts set what the daemon runs; convergence against desired versions', () => {
  const t = new SessionTable();
  t.open(fakeSession('h1'), { linksVersion: 0, rulesVersion: 0 });
  t.setProgress('h1', { linksVersion: 0, rulesVersion: 0, linksInFlight: undefined, rulesInFlight: { version: 4, atMs: 10 } });
  assert.equal(t.converged(() => ({ linksVersion: 0, rulesVersion: 4 })), false);
  t.acknowledged('h1', 'rules', 3);
  assert.deepEqual(t.progress('h1')?.rulesInFlight, { version: 4, atMs: 10 }, 'an older ack leaves the newer push in flight');
  t.acknowledged('h1', 'rules', 4);
  assert.equal(t.progress('h1')?.rulesInFlight, undefined);
  assert.equal(t.converged(() => ({ linksVersion: 0, rulesVersion: 4 })), true);
  t.reported('h1', { linksVersion: 1, rulesVersion: 4 });
  assert.deepEqual(t.appliedVersions('h1'), { linksVersion: 1, rulesVersion: 4 });
});
