import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY } from '../../src/controller/deployment-file.ts';
import { EMPTY_PLACEMENT, type PlacementStepOutput } from '../../src/controller/placement-advisor.ts';
import { INITIAL_PLACEMENT_PLAN, placementDue, planPlacement } from '../../src/controller/placement-planner.ts';

const MOVE = { vm: '02:00:00:00:00:03', from: 'h3', to: 'h1', gain: 4e7, reason: 'move 02:00:00:00:00:03 h3→h1' };
const proposal = (moves: typeof MOVE[], changed = true): PlacementStepOutput => ({
  view: { computedAt: 1000, score: -8e7, proposedScore: moves.length > 0 ? -4e7 : -8e7, threshold: 8e6, moves },
  advice: { moves: [], scoreBefore: -8e7, scoreAfter: -4e7, gain: moves.length > 0 ? 4e7 : 0, reason: moves.length > 0 ? '1 move(s)' : 'nothing beats T' } as unknown as PlacementStepOutput['advice'],
  changed,
  relativeGain: moves.length > 0 ? 0.5 : 0,
});

test('advice runs every 10 update periods by default, or at the interval given', () => {
  const policy = { ...DEFAULT_POLICY, updatePeriodMs: 100 };
  assert.equal(placementDue(INITIAL_PLACEMENT_PLAN, policy, 0), true);
  assert.equal(placementDue({ lastRunMs: 1000 }, policy, 1999), false);
  assert.equal(placementDue({ lastRunMs: 1000 }, policy, 2000), true);
  assert.equal(placementDue({ lastRunMs: 1000 }, policy, 1300, 300), true);
});

test('a new proposal is a placement-changed event and a migration-proposed decision with the gain against T', () => {
  const { state, effects } = planPlacement(proposal([MOVE]), false, DEFAULT_POLICY, 1000);
  assert.deepEqual(state, { lastRunMs: 1000 });
  assert.deepEqual(effects.events.map((e) => (e.kind === 'event' ? e.type : e.decision)), ['placement-changed', 'migration-proposed']);
  const d = effects.events[1]!;
  assert.ok(d.kind === 'decision');
  assert.match(d.reason, /^placement: 1 move\(s\) \(50\.0% of the traffic × latency cost, T = 10\.0%\): move 02:00:00:00:00:03 h3→h1$/);
  assert.deepEqual([effects.writes, effects.messages, effects.reconcile], [[], [], undefined]);
});

test('under auto-migrate the planner still only proposes: the control loop hands the moves to the coordinator', () => {
  const { effects } = planPlacement(proposal([MOVE]), false, { ...DEFAULT_POLICY, autoMigrate: true }, 1000);
  assert.deepEqual(effects.events.map((e) => (e.kind === 'event' ? e.type : e.decision)), ['placement-changed', 'migration-proposed']);
  assert.deepEqual([effects.writes, effects.messages], [[], []]);
});

test('an unchanged proposal says nothing; a withdrawn one says so only if there was one', () => {
  assert.deepEqual(planPlacement(proposal([MOVE], false), true, DEFAULT_POLICY, 2000).effects.events, []);
  assert.deepEqual(planPlacement({ ...proposal([]), view: { ...EMPTY_PLACEMENT } }, false, DEFAULT_POLICY, 2000).effects.events, []);
  const withdrawn = planPlacement(proposal([]), true, DEFAULT_POLICY, 2000).effects;
  assert.deepEqual(withdrawn.events.map((e) => (e.kind === 'event' ? e.type : e.decision)), ['placement-changed', 'no-change']);
  const d = withdrawn.events[1]!;
  assert.ok(d.kind === 'decision' && d.reason === 'placement: proposal withdrawn: nothing beats T');
});

test('a scheduling policy\'s refused move is a no-change decision saying why, once per refused move', () => {
  const refused = 'move 02:00:00:00:00:03 h3→h1: clients elsewhere; gain 20 ms, cost 900 (8 GiB, 900 s), its cost exceeds its gain';
  const out = (refusedChanged: boolean): PlacementStepOutput => ({
    ...proposal([], false),
    view: { ...proposal([]).view, policy: 'follow-the-sun', refused },
    advice: { ...proposal([]).advice, reason: `follow-the-sun: refused: ${refused}` },
    refusedChanged,
  });
  const first = planPlacement(out(true), false, DEFAULT_POLICY, 2000).effects;
  assert.deepEqual(first.events.map((e) => (e.kind === 'event' ? e.type : e.decision)), ['placement-changed', 'no-change']);
  const d = first.events[1]!;
  assert.ok(d.kind === 'decision' && d.reason === `scheduler: follow-the-sun: refused: ${refused}`);
  assert.deepEqual(planPlacement(out(false), false, DEFAULT_POLICY, 3000).effects.events, []);
});
