import type { DeploymentPolicy } from './deployment-file.ts';
import { decision, event, noEffects, type Planned } from './effects.ts';
import type { PlacementStepOutput } from './placement-advisor.ts';

/**
 * Placement advice as effects: the advisor (placement-advisor.ts) scores
 * the VM→host mapping on the smoothed matrix; this planner decides when it
 * runs (every `placementIntervalMs`, default 10 update periods: a migration
 * takes minutes, so advice every period buys nothing, and at 10,000 VMs one
 * computation costs a few hundred ms) and turns a changed proposal into a
 * `placement-changed` event and a decision with its reason. With
 * `policy.autoMigrate` the control loop hands the proposed moves to the
 * migration coordinator (migration-requests.ts `planAutoMigrations`: a limit
 * on concurrent migrations, a cool-down per VM). A scheduling policy's
 * refused move (its cost exceeds its gain) becomes a `no-change` decision
 * saying why, once per refused move.
 */

export interface PlacementPlanState {
  /** When advice last ran (wall ms). */
  readonly lastRunMs: number;
}

export const INITIAL_PLACEMENT_PLAN: PlacementPlanState = { lastRunMs: Number.NEGATIVE_INFINITY };

/** Whether advice is due at `nowMs`. */
export function placementDue(state: PlacementPlanState, policy: Readonly<DeploymentPolicy>, nowMs: number, intervalMs?: number): boolean {
  return nowMs - state.lastRunMs >= (intervalMs ?? 10 * policy.updatePeriodMs);
}

/** The effects of one advice run: `out` is the advisor's step, `hadMoves` whether the previous proposal had moves. */
export function planPlacement(out: PlacementStepOutput, hadMoves: boolean, policy: Readonly<DeploymentPolicy>, nowMs: number): Planned<PlacementPlanState> {
  const state = { lastRunMs: nowMs };
  const effects = noEffects();
  const { view, advice } = out;
  if (view.moves.length === 0 && !(out.changed && hadMoves)) {
    // Nothing proposed before or now: a scheduling policy's refusal is news once (withdrawing a proposal says it too).
    if (out.refusedChanged === true && view.refused !== undefined) {
      effects.events.push(event('placement-changed', { placement: view }));
      effects.events.push(decision('no-change', `scheduler: ${advice.reason}`, { policy: view.policy ?? null, refused: view.refused, score: view.score, threshold: view.threshold }));
      effects.logs.push({ level: 'info', fields: { reason: view.refused }, msg: 'scheduler move refused' });
    }
    return { state, effects };
  }
  if (!out.changed) return { state, effects };
  if (view.moves.length === 0) {
    effects.events.push(event('placement-changed', { placement: view }));
    const who = view.policy !== undefined ? 'scheduler' : 'placement';
    effects.events.push(decision('no-change', `${who}: proposal withdrawn: ${advice.reason}`, { score: view.score, threshold: view.threshold, ...(view.refused !== undefined ? { refused: view.refused } : {}) }));
    effects.logs.push({ level: 'info', fields: { reason: advice.reason }, msg: 'placement proposal withdrawn' });
    return { state, effects };
  }
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  effects.events.push(event('placement-changed', { placement: view }));
  const why = view.policy !== undefined
    ? `scheduler: ${advice.reason}: ${[...new Set(view.moves.map((m) => m.reason))].join('; ')}`
    : `placement: ${advice.reason} (${pct(out.relativeGain)} of the traffic × latency cost, T = ${pct(policy.placementThreshold)}): ${view.moves.map((m) => m.reason).join('; ')}`;
  effects.events.push(decision('migration-proposed', why, {
    moves: view.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to, gain: m.gain, ...(m.cost !== undefined ? { cost: m.cost } : {}) })),
    ...(view.policy !== undefined ? { policy: view.policy } : {}),
    score: view.score, proposedScore: view.proposedScore, threshold: view.threshold, relativeGain: out.relativeGain,
    autoMigrate: policy.autoMigrate,
  }));
  effects.logs.push({ level: 'info', fields: { moves: view.moves.length, gain: advice.gain, threshold: view.threshold }, msg: 'placement moves proposed' });
  return { state, effects };
}
