/**
 * The controller's view of the hubs (hub-status.ts): each hub's state and
 * each spoke's hub from the daemons' facts, the events a change gives, and
 * the rules that follow a spoke to its new hub (reconcile.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DaemonFacts, LinkFacts, LinkState } from '../../src/control/daemon-control.ts';
import { backboneVerdict, defaultHub, EMPTY_VERDICT, planHubWatch } from '../../src/controller/hub-status.ts';
import { desiredState, type RegistryView } from '../../src/controller/reconcile.ts';
import type { HostRecord } from '../../src/controller/store/records.ts';

const link = (peer: string, state: LinkState): LinkFacts => ({
  peer, kind: 'backbone', state, direction: 'outbound', reconnects: 0, txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0,
});

function host(id: string, role: 'hub' | 'spoke', links: LinkFacts[], connected = true): Pick<HostRecord, 'id' | 'role' | 'connected' | 'facts'> {
  const facts: DaemonFacts = { hostId: id, role, site: undefined, listen: undefined, ports: [], links, rulesVersion: 0, linksVersion: 0 };
  return { id, role, connected, facts };
}

/** h1 primary, h2 standby (trunked to h1), spokes a and b. */
const normal = [
  host('h1', 'hub', []),
  host('h2', 'hub', [link('h1', 'up')]),
  host('a', 'spoke', [link('h1', 'up')]),
  host('b', 'spoke', [link('h1', 'up')]),
];

describe('hub status', () => {
  it('spokes on the primary: it is active, the standby is standby', () => {
    const v = backboneVerdict(normal);
    assert.deepEqual([...v.hubs], [['h1', 'active'], ['h2', 'standby']]);
    assert.deepEqual([...v.hubOf], [['a', 'h1'], ['b', 'h1']]);
    assert.equal(defaultHub(v), 'h1');
  });

  it('a stopped primary: spokes on the standby and the trunk down make it lost, while its control session still looks up', () => {
    const v = backboneVerdict([
      host('h1', 'hub', []),
      host('h2', 'hub', [link('h1', 'connecting')]),
      host('a', 'spoke', [link('h2', 'up')]),
      host('b', 'spoke', [link('h2', 'up')]),
    ]);
    assert.deepEqual([...v.hubs], [['h1', 'lost'], ['h2', 'active']]);
    assert.equal(defaultHub(v), 'h2');
  });

  it('a single hub that spokes cannot reach is lost; one whose daemon left the controller is down', () => {
    const stopped = backboneVerdict([host('h1', 'hub', []), host('a', 'spoke', [link('h1', 'connecting')])]);
    assert.equal(stopped.hubs.get('h1'), 'lost');
    assert.equal(stopped.hubOf.get('a'), null);
    const killed = backboneVerdict([host('h1', 'hub', [], false), host('a', 'spoke', [link('h1', 'connecting')])]);
    assert.equal(killed.hubs.get('h1'), 'down');
  });

  it('facts of a disconnected daemon count for nothing', () => {
    const v = backboneVerdict([host('h1', 'hub', []), host('a', 'spoke', [link('h1', 'up')], false)]);
    assert.equal(v.hubs.get('h1'), 'standby');
    assert.equal(v.hubOf.has('a'), false);
  });
});

describe('hub watch (events)', () => {
  it('the primary lost and spokes on the standby: hub-changed events, one spoke-hub-changed per spoke, a reconcile', () => {
    const first = planHubWatch(EMPTY_VERDICT, normal);
    assert.deepEqual(first.effects.events.map((e) => e.kind === 'event' ? e.type : e.kind), ['hub-changed', 'hub-changed']);
    assert.equal(first.effects.reconcile, undefined);
    const failed = planHubWatch(first.state, [
      host('h1', 'hub', []),
      host('h2', 'hub', [link('h1', 'connecting')]),
      host('a', 'spoke', [link('h2', 'up')]),
      host('b', 'spoke', [link('h2', 'up')]),
    ]);
    const events = failed.effects.events.filter((e) => e.kind === 'event').map((e) => ({ type: e.type, payload: e.payload }));
    assert.deepEqual(events, [
      { type: 'hub-changed', payload: { hub: 'h1', state: 'lost', previous: 'active', spokes: [] } },
      { type: 'hub-changed', payload: { hub: 'h2', state: 'active', previous: 'standby', spokes: ['a', 'b'] } },
      { type: 'spoke-hub-changed', payload: { host: 'a', hub: 'h2', previous: 'h1' } },
      { type: 'spoke-hub-changed', payload: { host: 'b', hub: 'h2', previous: 'h1' } },
    ]);
    assert.ok(failed.effects.logs.some((l) => l.level === 'warn' && l.fields.hub === 'h1'));
    assert.match(failed.effects.reconcile ?? '', /a, b/);
    // The primary returns: the trunk is up again, spokes stay on the standby: it is a standby now, and nothing moves.
    const back = planHubWatch(failed.state, [
      host('h1', 'hub', []),
      host('h2', 'hub', [link('h1', 'up')]),
      host('a', 'spoke', [link('h2', 'up')]),
      host('b', 'spoke', [link('h2', 'up')]),
    ]);
    assert.deepEqual(back.effects.events.filter((e) => e.kind === 'event').map((e) => e.payload), [{ hub: 'h1', state: 'standby', previous: 'lost', spokes: [] }]);
    assert.equal(back.effects.reconcile, undefined);
  });

  it('a spoke seen between hubs (its link down, then up to the standby) is one failover from its last hub', () => {
    const first = planHubWatch(EMPTY_VERDICT, normal);
    const between = planHubWatch(first.state, [normal[0]!, normal[1]!, host('a', 'spoke', [link('h1', 'connecting')]), normal[3]!]);
    assert.equal(between.state.hubOf.get('a'), null);
    assert.equal(between.effects.reconcile, undefined);
    const after = planHubWatch(between.state, [normal[0]!, normal[1]!, host('a', 'spoke', [link('h2', 'up')]), normal[3]!]);
    const moved = after.effects.events.filter((e) => e.kind === 'event' && e.type === 'spoke-hub-changed').map((e) => e.kind === 'event' ? e.payload : undefined);
    assert.deepEqual(moved, [{ host: 'a', hub: 'h2', previous: 'h1' }]);
    // Back on the same hub after a reconnect: not a failover.
    const again = planHubWatch(between.state, normal);
    assert.equal(again.effects.events.filter((e) => e.kind === 'event' && e.type === 'spoke-hub-changed').length, 0);
  });

  it('the same facts again: no events', () => {
    const first = planHubWatch(EMPTY_VERDICT, normal);
    const again = planHubWatch(first.state, normal);
    assert.deepEqual(again.effects.events, []);
  });
});

describe('rules follow the spoke\'s hub', () => {
  const addr = (port: number) => ({ transport: 'tcp' as const, host: '127.0.0.1', port });
  const view: RegistryView = {
    hubId: 'h1',
    hosts: [
      { id: 'h1', role: 'hub', addresses: [addr(1)] },
      { id: 'h2', role: 'hub', addresses: [addr(2)] },
      { id: 'a', role: 'spoke', addresses: [addr(3)] },
      { id: 'b', role: 'spoke', addresses: [addr(4)] },
    ],
    vms: [{ mac: '02:00:00:00:00:0a', host: 'a' }, { mac: '02:00:00:00:00:0b', host: 'b' }],
    links: [],
    // a failed over to h2, b is still on h1.
    hubOf: new Map([['a', 'h2'], ['b', 'h1']]),
  };
  const action = (host: string, mac: string) => desiredState(view).get(host)!.rules.find((r) => r.dst === mac)?.action;

  it('a spoke sends to the hub it is on', () => {
    assert.deepEqual(action('a', '02:00:00:00:00:0b'), { link: 'h2' });
    assert.deepEqual(action('b', '02:00:00:00:00:0a'), { link: 'h1' });
  });

  it('a hub sends a spoke on the other hub over the trunk, its own spokes directly', () => {
    assert.deepEqual(action('h1', '02:00:00:00:00:0a'), { link: 'h2' });
    assert.deepEqual(action('h1', '02:00:00:00:00:0b'), { link: 'b' });
    assert.deepEqual(action('h2', '02:00:00:00:00:0a'), { link: 'a' });
    assert.deepEqual(action('h2', '02:00:00:00:00:0b'), { link: 'h1' });
  });

  it('a spoke whose hub is unknown goes to the default hub', () => {
    const unknown = desiredState({ ...view, hubOf: new Map([['a', null]]) });
    assert.deepEqual(unknown.get('a')!.rules.find((r) => r.dst === '02:00:00:00:00:0b')?.action, { link: 'h1' });
  });
});
