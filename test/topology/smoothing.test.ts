import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { smoothingWeight, smoothMatrix } from '../../src/topology/smoothing.ts';
import { mergeReports } from '../../src/topology/traffic-matrix.ts';
import { buildRegistryIndex, edgeKey } from '../../src/topology/vm-registry.ts';
import { entry, registryOn, report, vmsOn } from './fixtures.ts';

const registry = registryOn(['A', 'A', 'B']);
const params = { smoothingIntervalMs: 1000 };

function observe(host: string, at: number, bytesPerSecond: number, pair: [number, number] = [0, 2]) {
  return mergeReports([report(host, at - 1000, at, bytesPerSecond > 0 ? [entry(pair[0], pair[1], bytesPerSecond)] : [])], registry);
}

describe('smoothMatrix', () => {
  it('takes the first observation as is', () => {
    const s = smoothMatrix(undefined, observe('A', 1000, 5000), registry, 1000, params);
    assert.equal(s.rates.get(edgeKey(0, 2, 3)), 5000);
  });

  it('weights a new observation by 1 − e^(−Δt/τ)', () => {
    const s0 = smoothMatrix(undefined, observe('A', 1000, 0), registry, 1000, params);
    const s1 = smoothMatrix(s0, observe('A', 2000, 10_000), registry, 2000, params);
    assert.ok(Math.abs(s1.rates.get(edgeKey(0, 2, 3))! - 10_000 * (1 - Math.exp(-1))) < 1e-6);
  });

  it('is exact for irregular periods: two half steps equal one full step for a constant input', () => {
    const start = smoothMatrix(undefined, observe('A', 1000, 1000), registry, 1000, params);
    const one = smoothMatrix(start, observe('A', 2000, 9000), registry, 2000, params);
    const half = smoothMatrix(start, observe('A', 1500, 9000), registry, 1500, params);
    const two = smoothMatrix(half, observe('A', 2000, 9000), registry, 2000, params);
    assert.ok(Math.abs(one.rates.get(edgeKey(0, 2, 3))! - two.rates.get(edgeKey(0, 2, 3))!) < 1e-6);
  });

  it('decays silent edges and drops them once below the floor', () => {
    let s = smoothMatrix(undefined, observe('A', 1000, 1000), registry, 1000, params);
    for (let t = 2000; t <= 12_000; t += 1000) s = smoothMatrix(s, observe('A', t, 0), registry, t, params);
    assert.equal(s.rates.size, 0);
  });

  it('holds the rows of a host that did not report (missing data is not silence), for a bounded time', () => {
    let s = smoothMatrix(undefined, observe('A', 1000, 4000), registry, 1000, params);
    s = smoothMatrix(s, observe('B', 2000, 0), registry, 2000, params); // A silent
    assert.equal(s.rates.get(edgeKey(0, 2, 3)), 4000);
    for (let t = 3000; t <= 10_000; t += 1000) s = smoothMatrix(s, observe('B', t, 0), registry, t, params);
    assert.ok((s.rates.get(edgeKey(0, 2, 3)) ?? 0) < 4000, 'held beyond maxHoldMs');
  });

  it('follows a VM id to its new index when the registry is rebuilt in another order', () => {
    const s = smoothMatrix(undefined, observe('A', 1000, 3000), registry, 1000, params);
    const reordered = buildRegistryIndex([...vmsOn(['A', 'A', 'B'])].reverse()); // vm2, vm1, vm0
    const s1 = smoothMatrix(s, { ...observe('A', 2000, 3000), matrix: { ids: registry.ids, rates: new Map([[edgeKey(0, 2, 3), 3000]]) } }, reordered, 2000, params);
    assert.equal(s1.ids, reordered.ids);
    assert.ok(Math.abs(s1.rates.get(edgeKey(2, 0, 3))! - 3000) < 1e-6);
  });

  it('smoothingWeight is 0 for no elapsed time and 1 for a zero interval', () => {
    assert.equal(smoothingWeight(0, 1000), 0);
    assert.equal(smoothingWeight(-5, 1000), 0);
    assert.equal(smoothingWeight(100, 0), 1);
  });
});
