import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { simulateSequence, startupSequence, type SequencePhase } from '../../src/topology/sequence-simulation.ts';
import { simulatePatterns } from '../../src/topology/pattern-simulation.ts';
import { PATTERN_KINDS } from '../../src/topology/patterns.ts';
import { DEFAULT_VTTIF_PARAMS } from '../../src/topology/vttif.ts';

/**
 * Change detection on sequences a new user's deployment sees, at the default
 * parameters (5 s smoothing window, 1 s update period), through the real
 * pure pipeline in virtual time (seeded): the pattern must be announced
 * within 3 smoothing windows, nothing else on the way, and never stay stuck
 * on an earlier structure.
 */
const params = DEFAULT_VTTIF_PARAMS;
const goal = (3 * params.smoothingIntervalMs) / params.updatePeriodMs;

function describeOutcome(o: ReturnType<typeof simulateSequence>[number]): string {
  return `expected ${o.expect}; announced ${o.events.map((e) => `${e.topology.class}@${e.periods}`).join(', ') || 'nothing'} in ${o.periods} periods`;
}

describe('VTTIF on sequences at the default parameters', () => {
  for (const n of [8, 16]) {
    it(`path of pings, then a ring, on ${n} VMs: ring announced within 3 windows, never stuck on bus`, () => {
      const phases: SequencePhase[] = [
        { traffic: { kind: 'pings', length: n }, durationMs: 4 * params.smoothingIntervalMs, expect: 'bus' },
        { traffic: { kind: 'pattern', pattern: 'ring' }, durationMs: 5 * params.smoothingIntervalMs, expect: 'ring' },
      ];
      const [pings, ring] = simulateSequence({ vmCount: n, hostCount: 4, phases, params, seed: 11 + n, backgroundFraction: 0.1 });
      assert.ok(pings!.correct, describeOutcome(pings!));
      assert.ok(ring!.correct, describeOutcome(ring!));
      assert.ok(ring!.periodsToCorrect! <= goal, describeOutcome(ring!));
      assert.equal(ring!.wrong, 0, describeOutcome(ring!));
    });

    it(`short pings and an ARP sweep, then a ring on ${n} VMs: nothing announced for the start-up traffic`, () => {
      const out = simulateSequence({ vmCount: n, hostCount: 4, phases: startupSequence('ring', undefined, params.smoothingIntervalMs), params, seed: 5 + n, backgroundFraction: 0.3 });
      assert.deepEqual([out[0]!.events.length, out[1]!.events.length], [0, 0]);
      assert.ok(out[2]!.correct && out[2]!.periodsToCorrect! <= goal && out[2]!.wrong === 0, describeOutcome(out[2]!));
    });

    it(`a brief mix, then a clean star on ${n} VMs: star announced, not irregular`, () => {
      const phases: SequencePhase[] = [
        { traffic: { kind: 'mix', patterns: ['ring', 'tree'] }, durationMs: params.smoothingIntervalMs / 2 },
        { traffic: { kind: 'pattern', pattern: 'star' }, durationMs: 5 * params.smoothingIntervalMs, expect: 'star' },
      ];
      const [mix, star] = simulateSequence({ vmCount: n, hostCount: 4, phases, params, seed: 23 + n, backgroundFraction: 0.3 });
      assert.equal(mix!.events.length, 0, 'the brief mix is not announced');
      assert.ok(star!.correct && star!.periodsToCorrect! <= goal, describeOutcome(star!));
      assert.equal(star!.wrong, 0, describeOutcome(star!));
    });

    it(`a mix held long enough to be announced (irregular), then a clean star on ${n} VMs: the star replaces it`, () => {
      const phases: SequencePhase[] = [
        { traffic: { kind: 'mix', patterns: ['ring', 'tree'] }, durationMs: 6 * params.smoothingIntervalMs },
        { traffic: { kind: 'pattern', pattern: 'star' }, durationMs: 5 * params.smoothingIntervalMs, expect: 'star' },
      ];
      const [mix, star] = simulateSequence({ vmCount: n, hostCount: 4, phases, params, seed: 41 + n, backgroundFraction: 0.1 });
      assert.deepEqual(mix!.events.map((e) => e.topology.class), ['irregular']);
      assert.ok(star!.correct && star!.periodsToCorrect! <= goal, describeOutcome(star!));
      assert.equal(star!.wrong, 0, describeOutcome(star!));
    });

    it(`a pattern whose edges start one by one over up to a window on ${n} VMs: nothing announced before it is complete`, () => {
      for (const [kind, spreadMs] of [['ring', params.smoothingIntervalMs], ['mesh', params.smoothingIntervalMs / 2], ['tree', params.smoothingIntervalMs / 2]] as const) {
        const phases: SequencePhase[] = [{ traffic: { kind: 'staggered', pattern: kind, spreadMs }, durationMs: 5 * params.smoothingIntervalMs, expect: kind }];
        const [o] = simulateSequence({ vmCount: n, hostCount: 4, phases, params, seed: 31 + n + kind.length, backgroundFraction: 0.1 });
        assert.ok(o!.correct && o!.periodsToCorrect! <= goal, describeOutcome(o!));
        assert.equal(o!.wrong, 0, describeOutcome(o!));
        assert.equal(o!.events.length, 1, describeOutcome(o!));
        assert.ok(o!.periodsToCorrect! * params.updatePeriodMs > spreadMs, 'announced after the last edge started');
      }
    });
  }

  it('pattern pairs (bus → ring, ring → bus, all-to-all → star, star → tree) on 8 VMs with 30% background: each announced within 3 windows, none stuck', () => {
    for (const [a, b] of [['bus', 'ring'], ['ring', 'bus'], ['all-to-all', 'star'], ['star', 'tree']] as const) {
      const out = simulateSequence({ vmCount: 8, hostCount: 4, phases: startupSequence(a, b, params.smoothingIntervalMs), params, seed: 97, backgroundFraction: 0.3 });
      for (const o of out.slice(2)) {
        assert.ok(o.correct, `${a} → ${b}: ${describeOutcome(o)}`);
        assert.ok(o.periodsToCorrect! <= goal, `${a} → ${b}: ${describeOutcome(o)}`);
      }
    }
  });

  it('a pattern replaced on 8 VMs with 30% background: announced within 3 windows though the old edges are held up by the background', () => {
    // The bench's seeds (bench/topology/sequences.ts, seed 1) of the five phases that took 16–18
    // periods when edges left the pruned graph only at the smoothed matrix's pace (about 2τ).
    const cases: [string, SequencePhase[], number, number][] = [
      ['all-to-all → mesh', startupSequence('all-to-all', 'mesh', params.smoothingIntervalMs), 8392, 3],
      ['bus → mesh', startupSequence('bus', 'mesh', params.smoothingIntervalMs), 8175, 3],
      ['tree → neighbour', startupSequence('tree', 'neighbour', params.smoothingIntervalMs), 8361, 3],
      ['neighbour → ring', startupSequence('neighbour', 'ring', params.smoothingIntervalMs), 8361, 3],
      ['brief mix → mesh', [
        { traffic: { kind: 'mix', patterns: ['ring', 'star'] }, durationMs: Math.max(3000, params.smoothingIntervalMs / 2) },
        { traffic: { kind: 'pattern', pattern: 'mesh' }, durationMs: Math.max(40_000, 5 * params.smoothingIntervalMs), expect: 'mesh' },
      ], 104_945, 1],
    ];
    for (const [name, phases, seed, measured] of cases) {
      const o = simulateSequence({ vmCount: 8, hostCount: 4, phases, params, seed, backgroundFraction: 0.3 })[measured]!;
      assert.ok(o.correct, `${name}: ${describeOutcome(o)}`);
      assert.ok(o.periodsToCorrect! <= goal, `${name}: ${describeOutcome(o)}`);
      assert.equal(o.wrong, 0, `${name}: ${describeOutcome(o)}`);
      assert.equal(o.events.length, 1, `${name}: ${describeOutcome(o)}`);
    }
  });

  it('background traffic alone is never announced', () => {
    const [o] = simulateSequence({ vmCount: 8, hostCount: 4, phases: [{ traffic: { kind: 'noise' }, durationMs: 10 * params.smoothingIntervalMs }], params, seed: 3, backgroundFraction: 0.3 });
    assert.equal(o!.events.length, 0, describeOutcome(o!));
  });

  for (const n of [8, 16]) {
    it(`a stable pattern is announced once over 60 periods, on ${n} VMs (every class)`, () => {
      for (const kind of PATTERN_KINDS) {
        const periods = simulatePatterns({ vmCount: n, hostCount: 4, phases: [{ kind, periods: 60 }], params, seed: 1000 + n });
        const events = periods.filter((p) => p.event !== undefined);
        assert.deepEqual(events.map((e) => e.event!.topology.class), [kind]);
      }
    });
  }
});
