import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PlacementError } from '../../src/topology/errors.ts';
import { advisePlacement, latencyFromTable, trafficLatencyScore, type PlacementContext } from '../../src/topology/placement.ts';
import { edgeKey } from '../../src/topology/vm-registry.ts';

const ids = ['vm0', 'vm1', 'vm2', 'vm3'];
const hosts = ['h1', 'h2', 'h3'];
const latencyMs = latencyFromTable(new Map([['h1', new Map([['h2', 40], ['h3', 80]])], ['h2', new Map([['h3', 40]])]]), 100);
// vm2 (on h2) talks heavily with vm0 and vm1 (on h1); vm3 (h3) is quiet.
const traffic = { ids, rates: new Map([[edgeKey(2, 0, 4), 1000], [edgeKey(0, 2, 4), 1000], [edgeKey(2, 1, 4), 500], [edgeKey(3, 0, 4), 1]]) };
const context: PlacementContext = { traffic, latencyMs, hosts };
const current = new Map([['vm0', 'h1'], ['vm1', 'h1'], ['vm2', 'h2'], ['vm3', 'h3']]);

describe('placement', () => {
  it('the default score is −Σ rate × latency', () => {
    assert.equal(trafficLatencyScore(current, context), -(2500 * 40 + 1 * 80));
  });

  it('proposes the obvious move: vm2 next to the VMs it talks to', () => {
    const advice = advisePlacement(current, context, { threshold: 1000, maxVmsPerHost: 3, maxMoves: 1 });
    assert.deepEqual(advice.moves.map((m) => [m.vm, m.from, m.to, m.gain]), [['vm2', 'h2', 'h1', 2500 * 40]]);
    assert.equal(advice.gain, 100_000);
    assert.equal(advice.scoreAfter, -80);
    assert.match(advice.moves[0]!.reason, /move vm2 h2→h1 .*2.5 kB\/s with vm0,vm1 on h1 would cross 0 ms instead of 40 ms/);
  });

  it('proposes nothing when the gain does not beat the threshold T', () => {
    const advice = advisePlacement(current, context, { threshold: 100_000, maxVmsPerHost: 3 });
    assert.deepEqual(advice.moves, []);
    assert.equal(advice.gain, 0);
    assert.match(advice.reason, /not more than the threshold T = 100000/);
  });

  it('respects host capacity', () => {
    const advice = advisePlacement(current, context, { threshold: 0, maxVmsPerHost: 2 });
    assert.ok(!advice.moves.some((m) => m.to === 'h1' && m.vm !== 'vm0' && m.vm !== 'vm1'));
    const load = new Map<string, number>();
    const after = new Map(current);
    for (const m of advice.moves) after.set(m.vm, m.to);
    for (const h of after.values()) load.set(h, (load.get(h) ?? 0) + 1);
    for (const c of load.values()) assert.ok(c <= 2);
    // h1 is full, so the best move within capacity is vm0 to h2, next to vm2 (2,000 B/s no longer crossing 40 ms).
    assert.deepEqual(advice.moves.map((m) => [m.vm, m.to]).slice(0, 1), [['vm0', 'h2']]);
  });

  it('uses an application-supplied score', () => {
    const onH3 = (p: ReadonlyMap<string, string>): number => [...p.values()].filter((h) => h === 'h3').length;
    const advice = advisePlacement(current, context, { threshold: 1.5, maxVmsPerHost: 4, score: onH3, maxMoves: 2 });
    assert.equal(advice.moves.length, 2);
    for (const m of advice.moves) {
      assert.equal(m.to, 'h3');
      assert.match(m.reason, /application score prefers it/);
    }
    assert.equal(advice.gain, 2);
  });

  it('rejects a placement on an unknown host', () => {
    assert.throws(() => advisePlacement(new Map([['vm0', 'nowhere']]), context, { threshold: 0, maxVmsPerHost: 3 }), PlacementError);
  });

  it('proposes nothing without traffic', () => {
    const advice = advisePlacement(current, { ...context, traffic: { ids, rates: new Map() } }, { threshold: 0, maxVmsPerHost: 3 });
    assert.deepEqual(advice.moves, []);
  });
});
