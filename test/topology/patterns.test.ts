import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PatternError } from '../../src/topology/errors.ts';
import { meshShape, PATTERN_KINDS, patternEdges, syntheticReports } from '../../src/topology/patterns.ts';
import { validateReport } from '../../src/topology/report-validation.ts';
import { seededRandom } from '../../src/topology/seeded-random.ts';
import { vmsOn } from './fixtures.ts';

describe('patternEdges', () => {
  it('has the expected edge counts on 8 and 16 VMs', () => {
    const expected: Record<string, [number, number]> = {
      'all-to-all': [28, 120],
      ring: [8, 16],
      bus: [7, 15],
      star: [7, 15],
      mesh: [10, 24],
      tree: [7, 15],
      neighbour: [16, 32],
    };
    for (const kind of PATTERN_KINDS) {
      assert.deepEqual([patternEdges(kind, 8).length, patternEdges(kind, 16).length], expected[kind], kind);
    }
  });

  it('gives each edge once, smaller index first, no self-loops', () => {
    for (const kind of PATTERN_KINDS) {
      const edges = patternEdges(kind, 16);
      assert.equal(new Set(edges.map(([a, b]) => `${a}-${b}`)).size, edges.length);
      for (const [a, b] of edges) assert.ok(a < b);
    }
  });

  it('refuses patterns that are undefined for the count', () => {
    assert.throws(() => patternEdges('mesh', 7), PatternError);
    assert.throws(() => patternEdges('neighbour', 5), PatternError);
    assert.throws(() => patternEdges('ring', 1), PatternError);
    assert.deepEqual(meshShape(16), { rows: 4, cols: 4 });
    assert.deepEqual(meshShape(8), { rows: 2, cols: 4 });
  });
});

describe('syntheticReports', () => {
  const vms = vmsOn(['A', 'B', 'A', 'B']);
  it('makes one valid report per host with both directions of every edge at the source VM’s host', () => {
    const reports = syntheticReports({ edges: [[0, 1], [2, 3]], vms, messageBytes: 1000, messagesPerSecond: 10, startMs: 0, endMs: 1000 });
    assert.deepEqual(reports.map((r) => r.host).sort(), ['A', 'B']);
    for (const r of reports) {
      assert.ok(validateReport(r).ok);
      assert.equal(r.entries.length, 2);
      for (const e of r.entries) {
        assert.equal(e.bytes, 10_000);
        assert.equal(vms.find((v) => v.mac === e.src)!.host, r.host);
      }
    }
  });

  it('adds background traffic of the requested share, reproducibly for a seed', () => {
    const make = () => syntheticReports({
      edges: [[0, 1]], vms, messageBytes: 1000, messagesPerSecond: 10, startMs: 0, endMs: 1000,
      background: { fraction: 0.1, random: seededRandom(5) },
    });
    const total = (rs: ReturnType<typeof make>) => rs.flatMap((r) => r.entries).reduce((s, e) => s + e.bytes, 0);
    const a = make();
    assert.deepEqual(a, make());
    assert.ok(Math.abs(total(a) - 22_000) < 200, `total ${total(a)}`);
  });
});
