/**
 * The controller tells every daemon who the deployment's hosts are (the
 * `members` of set-links), so a daemon can refuse links from anyone else:
 * every host gets the list, and a host added to the deployment reaches every
 * daemon as a new list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectedPair, startHarness } from '../controller/fixtures/controller-harness.ts';
import { desiredState, nextVersions, planPushes } from '../../src/controller/reconcile.ts';
import { waitFor } from '../helpers/wait.ts';
import { joinLinks, splitControllerMessage } from '../../src/control/control-parts.ts';
import { decodeControllerMessage, encodeControlMessage, type ControllerMessage } from '../../src/control/control-protocol.ts';

test('every daemon receives the deployment’s host ids with its links', async (t) => {
  const h = await startHarness(t);
  const { a, b } = await connectedPair(h);
  await waitFor(() => a.daemon.members !== undefined && b.daemon.members !== undefined, 'members pushed');
  assert.deepEqual(a.daemon.members, ['h1', 'h2', 'hub']);
  assert.deepEqual(b.daemon.members, ['h1', 'h2', 'hub']);
});

test('a host added to the registry changes every host’s links version and is pushed as members', () => {
  const addr = { transport: 'tcp' as const, host: '127.0.0.1', port: 1 };
  const view = (ids: string[]) => ({ hubId: 'hub', hosts: ids.map((id) => ({ id, role: id === 'hub' ? ('hub' as const) : ('spoke' as const), addresses: [addr] })), vms: [], links: [] });
  const before = desiredState(view(['hub', 'h1'])).get('h1')!;
  const after = desiredState(view(['hub', 'h1', 'h9'])).get('h1')!;
  assert.deepEqual(after.members, ['h1', 'h9', 'hub']);
  const v1 = nextVersions({ host: 'h1', linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 }, before).versions;
  const v2 = nextVersions(v1, after);
  assert.equal(v2.linksChanged, true, 'a new member is a new links version');
  const progress = { linksVersion: v1.linksVersion, rulesVersion: v1.rulesVersion, linksInFlight: undefined, rulesInFlight: undefined };
  const push = planPushes(v2.versions, after, progress, 0, 1000).messages.find((m) => m.type === 'set-links');
  assert.deepEqual(push !== undefined && 'members' in push ? push.members : undefined, ['h1', 'h9', 'hub']);
});

test('a deployment whose host list is over one message goes in parts and joins back whole', () => {
  const LIMIT = 64 * 1024;
  const members = Array.from({ length: 20_000 }, (_, i) => `host-${String(i).padStart(5, '0')}`);
  const links = [{ peer: 'host-00001', address: { transport: 'tcp' as const, host: '127.0.0.1', port: 7001 }, reason: 'r', dial: true }];
  const m: ControllerMessage = { type: 'set-links', version: 5, links, members };
  const parts = splitControllerMessage(m, LIMIT).map((p) => {
    const text = encodeControlMessage(p);
    assert.ok(Buffer.byteLength(text) <= LIMIT);
    const d = decodeControllerMessage(text, LIMIT);
    assert.ok(d.ok, d.ok ? '' : d.error.message);
    return d.message as Extract<ControllerMessage, { type: 'set-links' }>;
  });
  assert.ok(parts.length > 1);
  assert.ok(parts.every((p) => p.members !== undefined));
  assert.deepEqual(joinLinks(parts), m);
  // Without members (an old controller), none appear.
  assert.deepEqual(joinLinks(splitControllerMessage({ type: 'set-links', version: 6, links }, LIMIT) as Array<Extract<ControllerMessage, { type: 'set-links' }>>), { type: 'set-links', version: 6, links });
});
