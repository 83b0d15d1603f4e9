/**
 * A VM with fast-path links, migrated end to end (root): a hub and three
 * spokes as `vnet daemon` processes, the controller in this process with a
 * quick adaptation policy. P on c3 pings A on c1 every 10 ms and sends it a
 * checked TCP stream: the controller's adaptation adds the fast path c1–c3
 * and c3 sends A's frames over it. A moves to c2. The fast paths are then
 * recomputed for A's new host: c3's rule for A leaves the c1 link at the
 * cutover, adaptation adds c2–c3 and c3 sends A's frames over it, and c1–c3
 * (no longer carrying anything) goes. Throughout: no ping lost, the stream
 * intact (no reset, gap or duplicate), A keeps its MAC and IP.
 *
 * Bounded waits only; no wall-clock assertions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStream } from '../../bench/cutover/probes.ts';
import type { ControllerModel } from '../../src/controller/api-model.ts';
import { vmRuleId } from '../../src/controller/reconcile.ts';
import { startNetnsOverlay } from '../helpers/netns-overlay.ts';
import { assertMovedIntact, EchoLedger, nicOf, Pinger } from '../helpers/migration-probes.ts';
import { waitFor } from '../helpers/wait.ts';

function fastPathUp(model: ControllerModel, a: string, b: string): boolean {
  const l = model.getLink(a, b);
  return l?.kind === 'fast-path' && l.state === 'up' && l.requestedBy === 'adaptation';
}

/** Where c3's applied rule set sends A's frames (its link), once c3 acknowledged the set. */
function c3SendsAVia(model: ControllerModel, mac: string): string | undefined {
  const r = model.getRules('c3');
  if (r === undefined || r.appliedVersion !== r.version) return undefined;
  const rule = r.rules.find((x) => x.id === vmRuleId(mac));
  const action = rule?.action;
  return action !== undefined && typeof action === 'object' && 'link' in action ? action.link : undefined;
}

test('a VM with a fast-path link to its partner moves: the fast paths are recomputed for its new host, nothing lost', { timeout: 300_000 }, async (t) => {
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    vms: [{ host: 'c1', guest: { profile: 'idle', memoryMiB: 16, diskMiB: 4 } }, { host: 'c3' }],
    policy: '  updatePeriodMs: 200\n  smoothingIntervalMs: 400\n  fastPathBudget: 2\n  fastPathMinBytesPerSec: 5000',
    tools: ['ping'],
  });
  const { model } = o;
  const [a, p] = o.vms;
  const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', a!.ip]);
  assert.equal(first.code, 0, `P reaches A before the move: ${first.stdout}${first.stderr}`);
  await waitFor(() => model.getVm(a!.mac)?.host === 'c1' && model.getVm(p!.mac)?.host === 'c3', 'the controller sees A on c1 and P on c3', 30_000);
  const before = await nicOf(o, 0);
  const stream = await startStream(a!.ns, p!.ns, a!.ip, 5421, undefined, t);
  const echoes = await EchoLedger.open(o, 1, 0);
  const ping = new Pinger(o, 1, a!.ip);

  await waitFor(() => fastPathUp(model, 'c1', 'c3'), 'adaptation\'s fast path c1–c3 up', 60_000);
  await waitFor(() => c3SendsAVia(model, a!.mac) === 'c1', 'c3 sends A\'s frames over c1–c3', 30_000);
  const overC1 = model.getLink('c1', 'c3')!.frames;
  await waitFor(() => model.getLink('c1', 'c3')!.frames > overC1 + 50, 'the pings counted on c1–c3', 30_000);
  await ping.more(50, 'pings before the move');

  const started = await model.startMigration!('vm0', 'c2', 'test', { rule: 'smart-stop' });
  const done = await waitFor(() => {
    const m = model.getMigration(started.id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the migration over', 120_000);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(done.cutover?.lost, 0, 'no frame lost at the cutover');
  t.diagnostic(`cutover: ${JSON.stringify(done.cutover)}`);
  assert.equal(model.getVm(a!.mac)?.host, 'c2');
  assert.notEqual(c3SendsAVia(model, a!.mac), 'c1', 'c3 no longer sends A\'s frames to c1');

  await waitFor(() => fastPathUp(model, 'c2', 'c3'), 'adaptation\'s fast path c2–c3 up', 60_000);
  await waitFor(() => c3SendsAVia(model, a!.mac) === 'c2', 'c3 sends A\'s frames over c2–c3', 30_000);
  const overC2 = model.getLink('c2', 'c3')!.frames;
  await waitFor(() => model.getLink('c2', 'c3')!.frames > overC2 + 50, 'the pings counted on c2–c3', 30_000);
  await waitFor(() => model.getLink('c1', 'c3') === undefined, 'c1–c3 removed, no longer needed', 60_000);
  assert.ok(model.listDecisions({}).some((d) => d.kind === 'fast-path-removed' && d.detail.a === 'c1' && d.detail.b === 'c3'));

  await assertMovedIntact(t, o, { ping, echoes, stream, before }, { vm: 0, from: 'c1', to: 'c2' });
});
