import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_FEATURES } from '../../src/control/control-features.ts';
import { startHarness } from './fixtures/controller-harness.ts';
import { hello, rawClient } from './fixtures/raw-control-client.ts';
import { testPki } from './fixtures/test-pki.ts';
import { oldDaemonRefuses } from '../control/fixtures/pre-features-schemas.ts';
import { waitFor } from '../helpers/wait.ts';

/** Feature negotiation, the controller's side (control-features.ts): its list goes only to a daemon that sent one. */

test('a daemon older than the lists is welcomed with a welcome its strict schema takes: no features key', async (t) => {
  const h = await startHarness(t);
  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h1'));
  await waitFor(() => c.received.length >= 1, 'the welcome');
  assert.equal(c.received[0]!['type'], 'welcome');
  assert.equal('features' in c.received[0]!, false);
  assert.equal(oldDaemonRefuses(c.received[0]!), undefined);
});

test('a daemon that lists features (names this controller does not know included) is welcomed with the controller\'s list', async (t) => {
  const h = await startHarness(t);
  const c = await rawClient(h, testPki().host('h1'));
  c.ws.send(hello('h1', { features: ['a-later-feature', 'migration-timing'] }));
  await waitFor(() => c.received.length >= 1, 'the welcome');
  assert.equal(c.received[0]!['type'], 'welcome');
  assert.deepEqual(c.received[0]!['features'], [...CONTROL_FEATURES]);
});

test('a daemon and a controller of this build agree on every feature', async (t) => {
  const h = await startHarness(t);
  const { agent } = h.daemon('h1');
  agent.start();
  await waitFor(() => agent.state === 'connected', 'connected');
  assert.deepEqual([...agent.features].sort(), [...CONTROL_FEATURES].sort());
});
