import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/errors.ts';
import { simulatePatterns } from '../../src/topology/pattern-simulation.ts';
import { PATTERN_KINDS } from '../../src/topology/patterns.ts';
import { edgeKey } from '../../src/topology/vm-registry.ts';
import { DEFAULT_VTTIF_PARAMS, INITIAL_VTTIF_STATE, parseVttifParams, vttifStep, vttifStepValidated } from '../../src/topology/vttif.ts';
import { entry, mac, registryOn, report } from './fixtures.ts';

const registry = registryOn(['A', 'A', 'B', 'C']);
// The pipeline's own behaviour at a 1 s smoothing window (the figures at the defaults are in vttif-sequences.test.ts).
const params = parseVttifParams({ smoothingIntervalMs: 1000, detectionThreshold: 0.15 });

describe('parseVttifParams', () => {
  it('fills defaults and accepts overrides', () => {
    assert.deepEqual(parseVttifParams({}), DEFAULT_VTTIF_PARAMS);
    assert.equal(parseVttifParams({ detectionThreshold: 0.3 }).detectionThreshold, 0.3);
    assert.ok(Object.isFrozen(parseVttifParams(undefined)));
  });

  it('rejects unknown keys and out-of-range values, naming the key', () => {
    const bad: [unknown, string][] = [
      [{ smoothingInterval: 5 }, 'smoothingInterval'],
      [{ detectionThreshold: 0 }, 'detectionThreshold'],
      [{ detectionThreshold: Number.NaN }, 'detectionThreshold'],
      [{ persistence: 0 }, 'persistence'],
      [{ persistence: 1.5 }, 'persistence'],
      [{ updatePeriodMs: -1 }, 'updatePeriodMs'],
      [{ pruneFraction: 1 }, 'pruneFraction'],
      [{ minConfidence: 'high' }, 'minConfidence'],
    ];
    for (const [input, key] of bad) {
      assert.throws(() => parseVttifParams(input, 'vnet.yaml'), (e: unknown) => e instanceof ConfigError && e.key === key && e.file === 'vnet.yaml', JSON.stringify(input));
    }
  });
});

describe('vttifStep', () => {
  it('rejects garbage reports with a typed error and keeps them out of the matrix', () => {
    const goodA = report('A', 0, 1000, [entry(0, 2, 5000)]);
    const garbage: unknown[] = [
      report('B', 0, 1000, [{ src: mac(2), dst: mac(0), frames: Number.NaN, bytes: 100 }]),
      report('C', 0, 1000, [{ src: mac(3), dst: mac(0), frames: -3, bytes: 1000 }]),
      { host: 'C', startMs: 1000, endMs: 1000, entries: [] },
      'not a report',
      null,
    ];
    const r = vttifStep(INITIAL_VTTIF_STATE, [goodA, ...garbage], registry, params, 1000);
    assert.deepEqual(r.rejected.map((x) => [x.index, x.error.code]), [
      [1, 'VNET_ERR_REPORT_COUNT'],
      [2, 'VNET_ERR_REPORT_COUNT'],
      [3, 'VNET_ERR_REPORT_INTERVAL'],
      [4, 'VNET_ERR_REPORT_SHAPE'],
      [5, 'VNET_ERR_REPORT_SHAPE'],
    ]);
    assert.equal(r.rejected[0]!.host, 'B');
    assert.deepEqual([...r.matrix!.rates], [[edgeKey(0, 2, 4), 5000]]);
    for (const v of r.normalised!.weights.values()) assert.ok(Number.isFinite(v) && v > 0 && v <= 1);
  });

  it('handles no reports at all: empty matrix, topology "none", no event', () => {
    const r = vttifStep(INITIAL_VTTIF_STATE, [], registry, params, 1000);
    assert.equal(r.due, true);
    assert.equal(r.matrix!.rates.size, 0);
    assert.equal(r.topology!.class, 'none');
    assert.equal(r.event, undefined);
  });

  it('handles one VM: its traffic to unknown MACs is listed, not mixed in, and the topology is "none"', () => {
    const one = registryOn(['A']);
    const r = vttifStep(INITIAL_VTTIF_STATE, [report('A', 0, 1000, [{ src: mac(0), dst: mac(42), frames: 2, bytes: 3000 }])], one, params, 1000);
    assert.equal(r.matrix!.rates.size, 0);
    assert.deepEqual(r.unknown, [{ host: 'A', mac: mac(42), role: 'dst', bytesPerSecond: 3000 }]);
    assert.equal(r.topology!.class, 'none');
  });

  it('handles all-zero reports: empty matrix, topology "none"', () => {
    const zero = [report('A', 0, 1000, [{ src: mac(0), dst: mac(2), frames: 0, bytes: 0 }]), report('B', 0, 1000, [{ src: mac(2), dst: mac(0), frames: 0, bytes: 0 }])];
    const r = vttifStep(INITIAL_VTTIF_STATE, zero, registry, params, 1000);
    assert.deepEqual(r.rejected, []);
    assert.equal(r.matrix!.rates.size, 0);
    assert.equal(r.normalised!.weights.size, 0);
    assert.equal(r.topology!.class, 'none');
  });

  it('enforces the update rate: reports arriving early are buffered and merged at the next due update', () => {
    const first = vttifStep(INITIAL_VTTIF_STATE, [], registry, params, 1000);
    const early = vttifStep(first.state, [report('A', 1000, 1500, [entry(0, 2, 1000)])], registry, params, 1500);
    assert.equal(early.due, false);
    assert.equal(early.state.pending.length, 1);
    const due = vttifStep(early.state, [report('A', 1500, 2000, [entry(0, 2, 1000)])], registry, params, 2000);
    assert.equal(due.due, true);
    assert.equal(due.state.pending.length, 0);
    // 2,000 bytes over 1 s of reports, smoothed with α = 1 − e^(−1)
    assert.ok(Math.abs(due.matrix!.rates.get(edgeKey(0, 2, 4))! - 2000 * (1 - Math.exp(-1))) < 1e-6);
  });

  it('vttifStepValidated (reports validated at the edge) gives what vttifStep gives for the valid ones', () => {
    const reports = [report('A', 0, 1000, [entry(0, 2, 5000)]), report('B', 0, 1000, [entry(2, 3, 7000)])];
    const a = vttifStep(INITIAL_VTTIF_STATE, [...reports, 'garbage'], registry, params, 1000);
    const b = vttifStepValidated(INITIAL_VTTIF_STATE, reports, registry, params, 1000);
    assert.deepEqual([...b.matrix!.rates], [...a.matrix!.rates]);
    assert.equal(b.topology!.fingerprint, a.topology!.fingerprint);
    assert.deepEqual(b.rejected, []);
    assert.deepEqual(a.rejected.map((x) => x.index), [2]);
  });

  it('does not modify the state passed in', () => {
    const s = INITIAL_VTTIF_STATE;
    vttifStep(s, [report('A', 0, 1000, [entry(0, 2, 5000)])], registry, params, 1000);
    assert.equal(s.smoothed, undefined);
    assert.equal(s.pending.length, 0);
  });
});

describe('VTTIF accuracy on the Patterns benchmark (10% seeded background traffic, jittered periods)', () => {
  for (const n of [8, 16]) {
    for (const kind of PATTERN_KINDS) {
      it(`infers ${kind} on ${n} VMs and reports no change over 60 stable periods`, () => {
        const periods = simulatePatterns({ vmCount: n, hostCount: 4, phases: [{ kind, periods: 60 }], params, seed: 1000 + n });
        const events = periods.filter((p) => p.event !== undefined);
        assert.equal(events.length, 1, `events: ${events.map((e) => `${e.periodInPhase}:${e.event!.topology.class}`).join(' ')}`);
        assert.equal(events[0]!.event!.topology.class, kind);
        assert.ok(events[0]!.periodInPhase <= 2, `first announced after ${events[0]!.periodInPhase + 1} periods`);
        const wrong = periods.filter((p) => p.periodInPhase >= 3 && p.topology?.class !== kind);
        assert.deepEqual(wrong.map((p) => `${p.periodInPhase}:${p.topology?.class}`), []);
      });
    }
  }

  for (const n of [8, 16]) {
    it(`announces ring → all-to-all on ${n} VMs within 3 update periods`, (t) => {
      const periods = simulatePatterns({ vmCount: n, hostCount: 4, phases: [{ kind: 'ring', periods: 20 }, { kind: 'all-to-all', periods: 10 }], params, seed: 77 + n });
      const change = periods.find((p) => p.phase === 1 && p.event !== undefined);
      assert.ok(change !== undefined, 'change never announced');
      const reaction = change.periodInPhase + 1;
      t.diagnostic(`ring → all-to-all on ${n} VMs announced after ${reaction} update periods`);
      assert.equal(change.event!.topology.class, 'all-to-all');
      assert.equal(change.event!.previous?.class, 'ring');
      assert.ok(reaction <= 3, `took ${reaction} periods`);
      assert.equal(periods.filter((p) => p.phase === 1 && p.event !== undefined).length, 1, 'announced once');
    });
  }
});
