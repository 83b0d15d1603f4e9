/**
 * The daemon's side of rule-set patches (controller-changes.ts): it lists
 * `rule-patches` in its hello, applies a patch onto exactly the version it
 * holds and acknowledges the new one, and refuses one on another base, or
 * whose result has another digest, with nothing of it applied.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { rulesDigestOf } from '../../src/control/rule-set-digest.ts';
import type { RuleSpec } from '../../src/control/rule-spec.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';
import { fakeController, welcome } from './fixtures/fake-controller.ts';

const rule = (n: number, link = 'hub'): RuleSpec => ({ id: `vm-${n}`, priority: 100, src: 'any', dst: `02:00:00:00:00:0${n}`, action: { link } });

test('a daemon applies a rule-set patch onto its version, and refuses one on another base or with another digest, applying nothing', async (t) => {
  const ctl = await fakeController(t);
  const daemon = new FakeDaemon('h1');
  const pki = testPki();
  const agent = new ControllerAgent({ daemon, logger: silentLogger(), clock: realClock }, { url: ctl.url, tls: { ca: pki.ca, ...pki.host('h1') }, backoff: { initialMs: 10, maxMs: 50 } });
  t.after(() => agent.close());
  agent.start();
  await waitFor(() => ctl.conns[0]?.received.length === 1, 'hello');
  assert.ok((ctl.conns[0]!.received[0]!['features'] as string[]).includes('rule-patches'), 'the hello lists rule-patches');
  const ws = ctl.conns[0]!.ws;
  ws.send(JSON.stringify({ ...JSON.parse(welcome('h1')), features: ['rule-patches'] }));
  await waitFor(() => agent.state === 'connected', 'connected');
  const acks = (): Array<Record<string, unknown>> => ctl.conns[0]!.received.filter((m) => m['type'] === 'ack');

  ws.send(JSON.stringify({ type: 'set-rules', version: 4, rules: [rule(1), rule(2)] }));
  await waitFor(() => acks().length === 1, 'the whole set acknowledged');

  // Onto version 4: rule 2 goes, rule 1 changes, rule 3 comes.
  const want = [rule(1, 's2'), rule(3)];
  ws.send(JSON.stringify({ type: 'patch-rules', from: 4, version: 6, digest: rulesDigestOf(want), remove: ['vm-2'], upsert: [rule(1, 's2'), rule(3)] }));
  await waitFor(() => acks().length === 2, 'the patch acknowledged');
  assert.deepEqual(acks()[1], { type: 'ack', kind: 'rules', version: 6, ok: true });
  assert.deepEqual([daemon.rulesVersion, daemon.rules], [6, want]);

  // From version 4 again (the daemon holds 6): refused, nothing applied.
  ws.send(JSON.stringify({ type: 'patch-rules', from: 4, version: 7, digest: rulesDigestOf([rule(1, 's2')]), remove: ['vm-3'], upsert: [] }));
  await waitFor(() => acks().length === 3, 'the nack');
  const nack = acks()[2] as { ok: boolean; version: number; error: { code: string; message: string } };
  assert.deepEqual([nack.ok, nack.version, nack.error.code], [false, 7, 'VNET_ERR_RULES_PATCH_BASE']);
  assert.match(nack.error.message, /from version 4, but this daemon holds version 6/);
  assert.deepEqual([daemon.rulesVersion, daemon.rules], [6, want]);

  // On its base but announcing another digest: refused, nothing applied.
  ws.send(JSON.stringify({ type: 'patch-rules', from: 6, version: 8, digest: rulesDigestOf([rule(9)]), remove: ['vm-3'], upsert: [] }));
  await waitFor(() => acks().length === 4, 'the second nack');
  assert.equal((acks()[3] as { error: { code: string } }).error.code, 'VNET_ERR_RULES_PATCH_DIGEST');
  assert.deepEqual([daemon.rulesVersion, daemon.rules], [6, want]);
  assert.deepEqual([agent.stats.patchesApplied, agent.stats.patchesRefused], [1, 2]);

  // A whole set after refusals: taken, and patches apply onto it.
  ws.send(JSON.stringify({ type: 'set-rules', version: 9, rules: [rule(5)] }));
  ws.send(JSON.stringify({ type: 'patch-rules', from: 9, version: 10, digest: rulesDigestOf([rule(5), rule(6)]), remove: [], upsert: [rule(6)] }));
  await waitFor(() => acks().length === 6, 'the whole set and the patch on it');
  assert.deepEqual(acks().slice(4).map((a) => [a['version'], a['ok']]), [[9, true], [10, true]]);
  assert.deepEqual(daemon.rules, [rule(5), rule(6)]);
});
