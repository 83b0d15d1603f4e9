import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostLink, selectFastPaths, type FastPathParams, type HostLink } from '../../src/topology/fast-path-selection.ts';
import { edgeKey } from '../../src/topology/vm-registry.ts';
import { mac, registryOn } from './fixtures.ts';

const MB = 1_000_000;
// vm0@A vm1@B vm2@C vm3@D vm4@hub vm5@A vm6@E
const registry = registryOn(['A', 'B', 'C', 'D', 'hub', 'A', 'E']);

function matrix(pairs: [number, number, number][]) {
  const rates = new Map<number, number>();
  for (const [s, d, r] of pairs) rates.set(edgeKey(s, d, 7), r);
  return { ids: registry.ids, rates };
}

const traffic = matrix([
  [0, 1, 25 * MB], [1, 0, 15 * MB], // A–B 40 MB/s
  [0, 2, 30 * MB], // A–C 30
  [5, 3, 20 * MB], // A–D 20
  [1, 2, 10 * MB], // B–C 10
  [0, 4, 100 * MB], // A–hub: already direct
  [0, 5, 100 * MB], // same host
]);

const params: FastPathParams = {
  budget: { maxLinksPerHost: 2, maxLinksTotal: 10 },
  addThresholdBytesPerSecond: 5 * MB,
  keepThresholdBytesPerSecond: 2 * MB,
};

const key = (l: HostLink): string => `${l.a}-${l.b}`;

describe('selectFastPaths', () => {
  it('picks the biggest savers greedily, within the per-host budget', () => {
    const plan = selectFastPaths({ matrix: traffic, registry, currentLinks: [], hubHost: 'hub' }, params);
    assert.deepEqual(plan.links.map(key), ['A-B', 'A-C', 'B-C']);
    assert.deepEqual(plan.add.map((d) => [key(d.link), d.benefitBytesPerSecond / MB]), [['A-B', 40], ['A-C', 30], ['B-C', 10]]);
    assert.deepEqual(plan.notChosen.map((d) => key(d.link)), ['A-D']);
    assert.match(plan.notChosen[0]!.reason, /A already has its budget of 2 links/);
    assert.equal(plan.add[0]!.reason, 'A↔B carries 40.0 MB/s between vm0,vm1 through the hub');
    const perHost = new Map<string, number>();
    for (const l of plan.links) for (const h of [l.a, l.b]) perHost.set(h, (perHost.get(h) ?? 0) + 1);
    for (const c of perHost.values()) assert.ok(c <= 2);
  });

  it('respects the total budget, keeping the largest saver', () => {
    const plan = selectFastPaths({ matrix: traffic, registry, currentLinks: [], hubHost: 'hub' }, { ...params, budget: { maxLinksPerHost: 5, maxLinksTotal: 1 } });
    assert.deepEqual(plan.links.map(key), ['A-B']);
    assert.equal(plan.notChosen.length, 3);
  });

  it('never proposes links to the hub or within a host, nor under the add threshold', () => {
    const plan = selectFastPaths({ matrix: traffic, registry, currentLinks: [], hubHost: 'hub' }, { ...params, addThresholdBytesPerSecond: 35 * MB });
    assert.deepEqual(plan.links.map(key), ['A-B']);
    for (const l of plan.links) assert.ok(l.a !== 'hub' && l.b !== 'hub' && l.a !== l.b);
  });

  it('removes an existing link whose traffic stopped, with a reason', () => {
    const plan = selectFastPaths({ matrix: traffic, registry, currentLinks: [hostLink('D', 'E')], hubHost: 'hub' }, params);
    assert.deepEqual(plan.remove.map((d) => key(d.link)), ['D-E']);
    assert.match(plan.remove[0]!.reason, /D↔E carries only 0 B\/s, below the keep threshold 2.0 MB\/s/);
  });

  it('hysteresis: a link is kept between the keep and add thresholds, so a wobbling benefit never flaps', () => {
    let links: HostLink[] = [];
    let adds = 0;
    let removes = 0;
    const wobble = [6, 4, 6, 3, 6, 4, 5.5, 3, 6, 4]; // MB/s between A and C, around the add threshold of 5
    for (const rate of wobble) {
      const plan = selectFastPaths({ matrix: matrix([[0, 2, rate * MB]]), registry, currentLinks: links, hubHost: 'hub' }, params);
      adds += plan.add.length;
      removes += plan.remove.length;
      links = [...plan.links];
    }
    assert.equal(adds, 1);
    assert.equal(removes, 0);
    // and it goes once the benefit falls under the keep threshold
    const gone = selectFastPaths({ matrix: matrix([[0, 2, 1 * MB]]), registry, currentLinks: links, hubHost: 'hub' }, params);
    assert.deepEqual(gone.remove.map((d) => key(d.link)), ['A-C']);
    assert.deepEqual(gone.links, []);
  });

  it('hysteresis under a full budget: a new link displaces an existing one only if clearly better', () => {
    const budget = { maxLinksPerHost: 5, maxLinksTotal: 1 };
    const close = selectFastPaths({ matrix: matrix([[0, 2, 30 * MB], [0, 1, 33 * MB]]), registry, currentLinks: [hostLink('A', 'C')], hubHost: 'hub' }, { ...params, budget });
    assert.deepEqual(close.links.map(key), ['A-C']);
    assert.deepEqual(close.keep.map((d) => key(d.link)), ['A-C']);
    const clear = selectFastPaths({ matrix: matrix([[0, 2, 30 * MB], [0, 1, 40 * MB]]), registry, currentLinks: [hostLink('A', 'C')], hubHost: 'hub' }, { ...params, budget });
    assert.deepEqual(clear.links.map(key), ['A-B']);
    assert.deepEqual(clear.remove.map((d) => key(d.link)), ['A-C']);
    assert.match(clear.remove[0]!.reason, /total budget of 1 links is taken by larger savers/);
  });

  it('emits rules that steer exactly the VM pairs on the chosen links, both ways', () => {
    const plan = selectFastPaths({ matrix: traffic, registry, currentLinks: [], hubHost: 'hub' }, { ...params, budget: { maxLinksPerHost: 1, maxLinksTotal: 1 } });
    assert.deepEqual(plan.links.map(key), ['A-B']);
    assert.deepEqual(plan.rules, [
      { host: 'A', priority: 100, src: 'any', dst: mac(1), action: { link: 'B' } },
      { host: 'B', priority: 100, src: 'any', dst: mac(0), action: { link: 'A' } },
    ]);
    // Every rule sends from one end of a chosen link to a VM on the other end.
    const hostOfMac = new Map(registry.macs.map((m, i) => [m, registry.hosts[i]!]));
    for (const r of plan.rules) {
      assert.equal(hostOfMac.get(r.dst), r.action.link);
      assert.ok(plan.links.some((l) => key(l) === key(hostLink(r.host, r.action.link))));
    }
  });

  it('names VMs by name in the reasons where a name is known, by registry id otherwise', () => {
    const vmNames = new Map([[mac(0), 'web1']]);
    const plan = selectFastPaths({ matrix: traffic, registry, currentLinks: [], hubHost: 'hub', vmNames }, params);
    assert.equal(plan.add[0]!.reason, 'A↔B carries 40.0 MB/s between web1,vm1 through the hub');
  });

  it('is empty for an empty matrix', () => {
    const plan = selectFastPaths({ matrix: matrix([]), registry, currentLinks: [], hubHost: 'hub' }, params);
    assert.deepEqual([plan.links, plan.add, plan.remove, plan.rules], [[], [], [], []]);
  });
});
