/**
 * Rule-set patches through the control loop (control-loop.ts, loop-reconcile.ts)
 * in one process: daemons are FakeDaemons behind fake sessions whose pushes
 * go through the daemon's real ControllerChanges (base and digest checked),
 * wall time a ManualClock. A daemon listing `rule-patches` in its hello gets
 * a VM's move as a patch; one that refuses a patch gets the whole set at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { CONTROL_PROTOCOL_VERSION, factsToWire, type HelloMessage } from '../../src/control/control-protocol.ts';
import { DEFAULT_PART_LIMITS } from '../../src/control/part-assembler.ts';
import { ControllerChanges } from '../../src/dataplane/controller-changes.ts';
import type { SessionInput } from '../../src/controller/control-server.ts';
import { DEPLOYMENT_YAML, testDeployment } from './fixtures/controller-harness.ts';
import { FakeDaemon } from './fixtures/fake-daemon.ts';
import { fakeSession, type FakeSession } from './fixtures/fake-session.ts';
import { loopRig, type LoopRig } from './fixtures/loop-rig.ts';

const V1 = '02:00:00:00:00:01';
const V2 = '02:00:00:00:00:02';

interface Host {
  daemon: FakeDaemon;
  session: FakeSession;
  /** Deliver what was sent (all, or all but the last rules push: lost), as the agent would, and hand the acks back; the types delivered. */
  sync(opts?: { dropRules?: boolean }): string[];
}

function connect(r: LoopRig, id: string, features: string[] | undefined, vms: string[] = []): Host {
  const daemon = new FakeDaemon(id, { role: id === 'hub' ? 'hub' : 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 + id.length }, vms: vms.map((mac) => ({ mac })) });
  const session = fakeSession(id);
  const hello: HelloMessage = { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: id, facts: factsToWire(daemon.facts()), ...(features !== undefined ? { features } : {}) };
  const changes = new ControllerChanges(daemon, silentLogger(), { linksApplied: 0, rulesApplied: 0, applyFailures: 0, partsRefused: 0, partsDropped: 0, patchesApplied: 0, patchesRefused: 0 }, DEFAULT_PART_LIMITS);
  r.loop.sessionOpened(session, hello);
  return {
    daemon, session,
    sync(opts = {}) {
      const types: string[] = [];
      const acks: SessionInput[] = [];
      for (const m of session.sent.splice(0)) {
        if (opts.dropRules === true && (m.type === 'set-rules' || m.type === 'patch-rules')) continue;
        types.push(m.type);
        const ack = m.type === 'set-links' ? changes.links(m, 0, 0) : m.type === 'set-rules' ? changes.rules(m, 0, 0) : m.type === 'patch-rules' ? changes.patch(m) : undefined;
        if (ack !== undefined) acks.push(ack);
      }
      for (const ack of acks) r.loop.messageReceived(session, ack);
      return types;
    },
  };
}

function moveV1ToH2(r: LoopRig, h1: Host, h2: Host): void {
  h1.daemon.removePort('vm0');
  r.loop.messageReceived(h1.session, { type: 'facts', facts: factsToWire(h1.daemon.facts()) });
  h2.daemon.addPort('v1', V1);
  r.loop.messageReceived(h2.session, { type: 'facts', facts: factsToWire(h2.daemon.facts()) });
}

test('a daemon that takes rule patches gets a VM\'s move as a patch of its rule, and ends with the set a whole push gives; one that does not gets the whole set', (t) => {
  const r = loopRig(t, testDeployment(DEPLOYMENT_YAML));
  r.loop.reconcile('test start');
  const hub = connect(r, 'hub', ['rule-patches']);
  const h1 = connect(r, 'h1', ['rule-patches'], [V1]);
  const h2 = connect(r, 'h2', undefined, [V2]);
  for (const h of [hub, h1, h2]) assert.deepEqual(h.sync(), ['set-links', 'set-rules'], `${h.daemon.hostId}: whole sets first`);
  assert.deepEqual(hub.daemon.rules.find((x) => x.dst === V1)?.action, { link: 'h1' });

  moveV1ToH2(r, h1, h2);
  const patch = hub.session.sent.find((m) => m.type === 'patch-rules');
  assert.ok(patch !== undefined && patch.type === 'patch-rules', 'the hub gets a patch');
  assert.deepEqual([patch.remove, patch.upsert.map((x) => [x.dst, x.action])], [[], [[V1, { link: 'h2' }]]]);
  assert.deepEqual(hub.sync(), ['patch-rules']);
  assert.deepEqual(h1.sync(), ['patch-rules'], 'h1 (rule for V1 now to the hub) gets a patch too');
  assert.deepEqual(h2.sync(), ['set-rules'], 'h2 listed no features: the whole set');
  assert.deepEqual(hub.daemon.rules, r.loop.desiredRules('hub'));
  assert.deepEqual(h1.daemon.rules, r.loop.desiredRules('h1'));
  assert.deepEqual(r.loop.appliedVersions('hub')?.rulesVersion, r.store.getVersions('hub').rulesVersion, 'the patch acknowledged: converged');
});

test('a patch the daemon cannot take (its base push was lost) is refused, and the whole set goes at once', (t) => {
  const r = loopRig(t, testDeployment(DEPLOYMENT_YAML));
  r.loop.reconcile('test start');
  const hub = connect(r, 'hub', ['rule-patches']);
  const h1 = connect(r, 'h1', ['rule-patches'], [V1]);
  const h2 = connect(r, 'h2', ['rule-patches'], [V2]);
  for (const h of [hub, h1, h2]) h.sync();
  // V1 moves; the hub's patch is lost on the way.
  moveV1ToH2(r, h1, h2);
  assert.deepEqual(hub.sync({ dropRules: true }), []);
  const held = hub.daemon.rulesVersion;
  // V1 moves back: the hub is patched from the version in flight, which it never got; it refuses, and is sent its whole set.
  h2.daemon.removePort('v1');
  r.loop.messageReceived(h2.session, { type: 'facts', facts: factsToWire(h2.daemon.facts()) });
  h1.daemon.addPort('vm0', V1);
  r.loop.messageReceived(h1.session, { type: 'facts', facts: factsToWire(h1.daemon.facts()) });
  assert.deepEqual(hub.sync(), ['patch-rules']);
  assert.equal(hub.daemon.rulesVersion, held, 'the refused patch applied nothing');
  assert.deepEqual(hub.sync(), ['set-rules'], 'the refusal answered with the whole set');
  assert.deepEqual(hub.daemon.rules, r.loop.desiredRules('hub'));
  assert.equal(r.loop.appliedVersions('hub')?.rulesVersion, r.store.getVersions('hub').rulesVersion);
});
