import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryControllerModel } from '../../src/controller/memory-controller-model.ts';
import type { EventView } from '../../src/controller/api-events.ts';
import type { HostView } from '../../src/controller/api-views.ts';
import { controllerModelCompliance } from './controller-model-compliance.ts';

const host = (id: string): HostView => ({ id, site: null, addresses: [], role: 'spoke', state: 'up', lastSeen: null, hub: null, hubState: null });

describe('MemoryControllerModel', () => {
  it('numbers events from 1 and delivers them to subscribers in order', () => {
    const m = new MemoryControllerModel({ now: () => 1000 });
    const seen: EventView[] = [];
    const off = m.subscribe((e) => seen.push(e));
    m.putHost(host('b'));
    m.putHost(host('a'));
    off();
    m.putHost(host('c'));
    assert.deepEqual(seen.map((e) => [e.seq, e.type, e.time]), [[1, 'host-changed', 1000], [2, 'host-changed', 1000]]);
    assert.equal(m.latestSeq(), 3);
    assert.deepEqual(m.listHosts().map((h) => h.id), ['a', 'b', 'c']);
  });

  it('replays retained events after since before live ones, and keeps a bounded history', () => {
    const m = new MemoryControllerModel({ maxEvents: 3 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) m.putHost(host(id));
    const seen: number[] = [];
    m.subscribe((e) => seen.push(e.seq), { since: 1 });
    m.removeHost('a');
    assert.deepEqual(seen, [3, 4, 5, 6]);
    const page = m.listEvents({ since: 0 });
    assert.equal(page.oldestSeq, 4);
    assert.equal(page.latestSeq, 6);
    assert.deepEqual(m.listEvents({ since: 4, limit: 1 }).events.map((e) => e.seq), [5]);
    assert.deepEqual(m.listEvents({ types: ['host-removed'] }).events.map((e) => e.seq), [6]);
  });

  it('adds and removes fast-path links with the actor audited, and refuses bad ones with stable codes', async () => {
    const m = new MemoryControllerModel();
    m.putHost(host('x'));
    m.putHost(host('y'));
    m.putHost(host('hub'));
    m.putLink({ a: 'x', b: 'hub', kind: 'backbone', state: 'up', requestedBy: 'config', actor: null, reason: 'backbone', bytes: 0, frames: 0, bytesPerSec: 0, framesPerSec: 0 });
    const link = await m.addFastPathLink('y', 'x', 'why', 'operator:bob');
    assert.deepEqual([link.a, link.b, link.actor, link.state], ['x', 'y', 'operator:bob', 'pending']);
    const audit = m.listEvents({ types: ['operator-action'] }).events[0]!;
    assert.equal(audit.type === 'operator-action' && audit.payload.actor, 'operator:bob');
    await assert.rejects(m.addFastPathLink('x', 'y', '', 'o'), { code: 'VNET_ERR_CONFLICT' });
    await assert.rejects(m.addFastPathLink('x', 'x', '', 'o'), { code: 'VNET_ERR_CONFLICT' });
    await assert.rejects(m.addFastPathLink('x', 'nope', '', 'o'), { code: 'VNET_ERR_NOT_FOUND' });
    await assert.rejects(m.removeFastPathLink('hub', 'x', 'o'), { code: 'VNET_ERR_CONFLICT' });
    await m.removeFastPathLink('y', 'x', 'operator:bob');
    assert.equal(m.getLink('x', 'y'), undefined);
    await assert.rejects(m.removeFastPathLink('y', 'x', 'o'), { code: 'VNET_ERR_NOT_FOUND' });
  });

  it('applies traffic reports to existing links only', () => {
    const m = new MemoryControllerModel();
    m.putHost(host('a'));
    m.putHost(host('b'));
    m.putLink({ a: 'b', b: 'a', kind: 'backbone', state: 'up', requestedBy: 'config', actor: null, reason: '', bytes: 0, frames: 0, bytesPerSec: 0, framesPerSec: 0 });
    m.setTraffic(5, [
      { a: 'a', b: 'b', bytes: 100, frames: 2, bytesPerSec: 50, framesPerSec: 1 },
      { a: 'a', b: 'zz', bytes: 1, frames: 1, bytesPerSec: 1, framesPerSec: 1 },
    ]);
    assert.equal(m.getLink('a', 'b')!.bytesPerSec, 50);
    const ev = m.listEvents({ types: ['traffic-updated'] }).events[0]!;
    assert.equal(ev.type === 'traffic-updated' && ev.payload.links.length, 1);
  });
});

controllerModelCompliance('MemoryControllerModel', async () => {
  const model = new MemoryControllerModel();
  return {
    model,
    seed(hosts, backbone) {
      for (const id of hosts) model.putHost(host(id));
      for (const [a, b] of backbone) {
        model.putLink({ a, b, kind: 'backbone', state: 'up', requestedBy: 'config', actor: null, reason: 'backbone', bytes: 0, frames: 0, bytesPerSec: 0, framesPerSec: 0 });
      }
    },
    close() {},
  };
});
