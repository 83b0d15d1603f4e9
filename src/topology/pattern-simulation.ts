import { localMac } from '../common/mac.ts';
import type { TopologyChangeEvent } from './change-detection.ts';
import type { Topology } from './classify.ts';
import { patternEdges, syntheticReports, type PatternKind } from './patterns.ts';
import { seededRandom, type Random } from './seeded-random.ts';
import type { TrafficReport } from './traffic-report.ts';
import { buildRegistryIndex, type RegistryIndex, type VmPlacement } from './vm-registry.ts';
import { INITIAL_VTTIF_STATE, vttifStep, type VttifParams, type VttifState } from './vttif.ts';

/**
 * Runs the VTTIF step over synthetic Patterns traffic in virtual time: one
 * or more phases, each a pattern held for some update periods, with random
 * background traffic. The VMs are numbered in a seeded random order, so the
 * pattern's structure never coincides with VM numbering. Pure (seeded).
 * Used by the accuracy tests, the benchmarks and the demo.
 */

export interface SimulationPhase {
  readonly kind: PatternKind;
  readonly periods: number;
}

export interface SimulationParams {
  readonly vmCount: number;
  readonly hostCount: number;
  readonly phases: readonly SimulationPhase[];
  readonly params: VttifParams;
  readonly seed: number;
  /** Fraction of the pattern's bytes added as random background traffic (default 0.1). */
  readonly backgroundFraction?: number;
  readonly messageBytes?: number;
  readonly messagesPerSecond?: number;
  /** Relative random jitter of each period's length (default 0.1: 0.9–1.1 × updatePeriodMs). */
  readonly periodJitter?: number;
}

export interface SimulatedPeriod {
  readonly phase: number;
  /** Period index within its phase, from 0. */
  readonly periodInPhase: number;
  readonly nowMs: number;
  readonly topology: Topology | undefined;
  readonly distance: number | undefined;
  readonly event: TopologyChangeEvent | undefined;
}

export interface SimulationVms {
  readonly vms: readonly VmPlacement[];
  readonly registry: RegistryIndex;
  /** vms[order[i]] plays pattern vertex i. */
  readonly order: readonly number[];
}

/** VMs vm0..vm{n−1} spread round-robin on hosts host0..host{h−1}, with pattern roles assigned in a seeded random order. */
export function simulationVms(vmCount: number, hostCount: number, random: Random): SimulationVms {
  const vms: VmPlacement[] = Array.from({ length: vmCount }, (_, i) => ({ id: `vm${i}`, mac: localMac(i + 1), host: `host${i % hostCount}` }));
  const order = Array.from({ length: vmCount }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return { vms, registry: buildRegistryIndex(vms), order };
}

export function simulatePatterns(sim: SimulationParams): SimulatedPeriod[] {
  const random = seededRandom(sim.seed);
  const { vms, registry, order } = simulationVms(sim.vmCount, sim.hostCount, random);
  const jitter = sim.periodJitter ?? 0.1;
  let state: VttifState = INITIAL_VTTIF_STATE;
  let now = 1_000_000;
  const out: SimulatedPeriod[] = [];
  sim.phases.forEach((phase, phaseIndex) => {
    const edges = patternEdges(phase.kind, sim.vmCount).map(([a, b]) => [order[a]!, order[b]!] as const);
    for (let p = 0; p < phase.periods; p++) {
      const length = Math.round(sim.params.updatePeriodMs * (1 + jitter * (2 * random() - 1)));
      const reports = syntheticPeriod(vms, edges, now, now + length, sim, random);
      now += length;
      const r = vttifStep(state, reports, registry, sim.params, now);
      state = r.state;
      out.push({ phase: phaseIndex, periodInPhase: p, nowMs: now, topology: r.topology, distance: r.distance, event: r.event });
    }
  });
  return out;
}


function syntheticPeriod(
  vms: readonly VmPlacement[],
  edges: readonly (readonly [number, number])[],
  startMs: number,
  endMs: number,
  sim: SimulationParams,
  random: Random,
): TrafficReport[] {
  const fraction = sim.backgroundFraction ?? 0.1;
  return syntheticReports({
    edges,
    vms,
    messageBytes: sim.messageBytes ?? 64_000,
    messagesPerSecond: sim.messagesPerSecond ?? 10,
    startMs,
    endMs,
    ...(fraction > 0 ? { background: { fraction, random } } : {}),
  });
}
