import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_FEATURES, MAX_FEATURES, isFeaturesRefusal, negotiateFeatures, welcomeFeatures, withFeatures } from '../../src/control/control-features.ts';
import { CONTROL_PROTOCOL_VERSION, decodeControllerMessage } from '../../src/control/control-protocol.ts';

test('the negotiated features are those both sides list; unknown names are ignored; no list is no features', () => {
  assert.deepEqual([...negotiateFeatures(['port-packet-counters', 'from-the-future'])], ['port-packet-counters']);
  assert.deepEqual([...negotiateFeatures(['migration-timing'], ['port-packet-counters'])], []);
  assert.deepEqual([...negotiateFeatures([...CONTROL_FEATURES])].sort(), [...CONTROL_FEATURES].sort());
  assert.equal(negotiateFeatures(undefined).size, 0);
  assert.equal(negotiateFeatures([]).size, 0);
});

test('the welcome carries the controller\'s list only for a hello that had one', () => {
  assert.deepEqual(welcomeFeatures({}), {});
  assert.deepEqual(welcomeFeatures({ features: [] }), { features: [...CONTROL_FEATURES] });
});

test('a feature\'s field is left out unless it was negotiated; other fields stay', () => {
  const report = { type: 'migration', id: 'm1', state: 'paused', timing: { pausedAt: 5 } };
  assert.deepEqual(withFeatures(report, new Set(), 'migration-timing', 'timing'), { type: 'migration', id: 'm1', state: 'paused' });
  assert.equal(withFeatures(report, new Set(['migration-timing']), 'migration-timing', 'timing'), report);
});

test('an older controller\'s refusal of the features key is told from other refusals', () => {
  assert.equal(isFeaturesRefusal({ code: 'VNET_ERR_CONTROL_MESSAGE', message: 'invalid hello: unknown key(s) features' }), true);
  assert.equal(isFeaturesRefusal({ code: 'VNET_ERR_CONTROL_MESSAGE', message: 'invalid hello: unknown key(s) images, features' }), true);
  assert.equal(isFeaturesRefusal({ code: 'VNET_ERR_CONTROL_MESSAGE', message: 'invalid hello: unknown key(s) featuresX' }), false);
  assert.equal(isFeaturesRefusal({ code: 'VNET_ERR_CONTROL_MESSAGE', message: 'invalid hello at facts: unknown key(s) features' }), false);
  assert.equal(isFeaturesRefusal({ code: 'VNET_ERR_UNKNOWN_HOST', message: 'invalid hello: unknown key(s) features' }), false);
});

test('a list is bounded: too many names, or a name too long, makes the message invalid', () => {
  const w = (features: string[]): string => JSON.stringify({ type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', updatePeriodMs: 1000, features });
  assert.equal(decodeControllerMessage(w(['migration-timing'])).ok, true);
  const many = decodeControllerMessage(w(Array.from({ length: MAX_FEATURES + 1 }, (_, i) => `f${i}`)));
  assert.equal(many.ok, false);
  assert.match(!many.ok ? many.error.message : '', /invalid welcome at features/);
  assert.equal(decodeControllerMessage(w(['x'.repeat(65)])).ok, false);
});
