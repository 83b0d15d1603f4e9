import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BROADCAST_MAC } from '../../src/common/mac.ts';
import { mergeReports } from '../../src/topology/traffic-matrix.ts';
import { edgeKey } from '../../src/topology/vm-registry.ts';
import { entry, mac, registryOn, report } from './fixtures.ts';

// vm0, vm1 on A; vm2 on B; vm3 on C
const registry = registryOn(['A', 'A', 'B', 'C']);

describe('mergeReports', () => {
  it('gives an empty matrix for no reports', () => {
    const m = mergeReports([], registry);
    assert.equal(m.matrix.rates.size, 0);
    assert.equal(m.reportedHosts.size, 0);
    assert.equal(m.startMs, 0);
  });

  it('turns bytes into bytes/s using each report’s own interval', () => {
    const m = mergeReports([
      report('A', 0, 2000, [entry(0, 2, 10_000)]), // 5,000 B/s
      report('B', 0, 500, [entry(2, 0, 1_000)]), // 2,000 B/s
    ], registry);
    assert.equal(m.matrix.rates.get(edgeKey(0, 2, 4)), 5000);
    assert.equal(m.matrix.rates.get(edgeKey(2, 0, 4)), 2000);
    assert.deepEqual([...m.reportedHosts].sort(), ['A', 'B']);
    assert.equal(m.startMs, 0);
    assert.equal(m.endMs, 2000);
  });

  it('counts a frame once, at the source VM’s host, when another host also reports the pair', () => {
    const m = mergeReports([
      report('A', 0, 1000, [entry(0, 2, 4000)]),
      report('B', 0, 1000, [entry(0, 2, 4000)]), // B counted transit: must not double
    ], registry);
    assert.equal(m.matrix.rates.get(edgeKey(0, 2, 4)), 4000);
    assert.deepEqual(m.issues, [{ kind: 'counted-twice', host: 'B', src: mac(0), dst: mac(2) }]);
  });

  it('keeps a pair reported only by another host (VM in mid-migration) once', () => {
    const m = mergeReports([report('C', 0, 1000, [entry(0, 3, 3000)]), report('B', 0, 1000, [entry(0, 3, 3000)])], registry);
    assert.equal(m.matrix.rates.get(edgeKey(0, 3, 4)), 3000);
    assert.equal(m.issues.length, 1);
  });

  it('reports unknown MACs instead of mixing them in, and keeps multicast apart', () => {
    const m = mergeReports([
      report('A', 0, 1000, [
        { src: mac(0), dst: mac(99), frames: 1, bytes: 100 },
        { src: mac(98), dst: mac(1), frames: 1, bytes: 200 },
        { src: mac(0), dst: BROADCAST_MAC, frames: 1, bytes: 64 },
        // IPv6 neighbour discovery and all-nodes multicast (33:33:…) count with broadcast.
        { src: mac(0), dst: 0x3333_ff00_0001, frames: 1, bytes: 86 },
        { src: mac(1), dst: 0x3333_0000_0001, frames: 1, bytes: 118 },
        entry(0, 1, 1000),
      ]),
    ], registry);
    assert.equal(m.matrix.rates.size, 1);
    assert.equal(m.matrix.rates.get(edgeKey(0, 1, 4)), 1000);
    assert.deepEqual(
      [...m.unknown].sort((a, b) => a.mac - b.mac),
      [
        { host: 'A', mac: mac(98), role: 'src', bytesPerSecond: 200 },
        { host: 'A', mac: mac(99), role: 'dst', bytesPerSecond: 100 },
      ],
    );
    assert.equal(m.multicastBytesPerSecond.get('A'), 64 + 86 + 118);
  });

  it('sums two consecutive reports of one host over their total time, and drops an overlapping one', () => {
    const m = mergeReports([
      report('A', 0, 1000, [entry(0, 2, 1000)]),
      report('A', 1000, 2000, [entry(0, 2, 3000)]),
      report('A', 500, 1500, [entry(0, 2, 99_999)]),
    ], registry);
    assert.equal(m.matrix.rates.get(edgeKey(0, 2, 4)), 2000);
    assert.deepEqual(m.issues, [{ kind: 'overlapping-report', host: 'A', startMs: 500, endMs: 1500 }]);
  });

  it('leaves zero-byte entries out of the sparse matrix', () => {
    const m = mergeReports([report('A', 0, 1000, [{ src: mac(0), dst: mac(2), frames: 0, bytes: 0 }])], registry);
    assert.equal(m.matrix.rates.size, 0);
    assert.ok(m.reportedHosts.has('A'));
  });
});
