/** Summary figures of a run's per-round times. */
export interface RoundSummary {
  readonly meanMs: number;
  readonly medianMs: number;
  readonly p95Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly totalMs: number;
}

/** Value at quantile q (0..1) of ascending `sorted`, by linear interpolation; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summariseRounds(roundMs: readonly number[]): RoundSummary {
  const sorted = [...roundMs].sort((a, b) => a - b);
  const totalMs = roundMs.reduce((s, x) => s + x, 0);
  return {
    meanMs: roundMs.length === 0 ? Number.NaN : totalMs / roundMs.length,
    medianMs: quantile(sorted, 0.5),
    p95Ms: quantile(sorted, 0.95),
    minMs: sorted[0] ?? Number.NaN,
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    totalMs,
  };
}
