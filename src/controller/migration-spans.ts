import type { CutoverTiming } from '../control/migration-control.ts';
import type { MigrationSpansView } from './api-views.ts';

/**
 * Where a migration's cutover time goes: the moments of its steps, kept in
 * its run (migration-run.ts) and shown in the API as offsets from the pause
 * (`cutover.spans`), so the tail of the cutover can be pinned on one step.
 *
 *   pausedAt       the source paused the guest            (source's clock, its `paused` report)
 *   finalSentAt    the final copy handed to the channel   (source's clock, its `released` report)
 *   appliedAt      received, applied, verified: ready     (destination's clock, its `ready` report)
 *   readyAt        the `ready` report heard               (controller: the run's readyMs)
 *   committedAt    the commit point durably written       (controller: the store answered)
 *   pushedAt       the rules that point at the destination handed to every daemon's channel
 *   acks           each re-pointed daemon's acknowledgement heard (host → ms)
 *   acknowledgedAt the last of them                       (the run's acknowledgedMs)
 *   resumedAt      the VM runs on the destination         (destination's clock, its `resumed` report)
 *
 * The daemons' moments are their wall clocks: offsets between hosts hold
 * only as well as their clocks agree (one machine in the benchmark and the
 * privileged tests; NTP's few ms between real hosts).
 */
export interface CutoverSpans {
  pausedAt: number | null;
  finalSentAt: number | null;
  appliedAt: number | null;
  committedAt: number | null;
  pushedAt: number | null;
  acks: Record<string, number>;
  resumedAt: number | null;
}

export function emptySpans(): CutoverSpans {
  return { pausedAt: null, finalSentAt: null, appliedAt: null, committedAt: null, pushedAt: null, acks: {}, resumedAt: null };
}

export function cloneSpans(s: CutoverSpans): CutoverSpans {
  return { ...s, acks: { ...s.acks } };
}

/** A report's timing merged in (a moment once known is kept: a repeated report changes nothing). */
export function withTiming(s: CutoverSpans, t: CutoverTiming | undefined): CutoverSpans {
  if (t === undefined) return s;
  return {
    ...s,
    pausedAt: s.pausedAt ?? t.pausedAt ?? null,
    finalSentAt: s.finalSentAt ?? t.finalSentAt ?? null,
    appliedAt: s.appliedAt ?? t.appliedAt ?? null,
    resumedAt: s.resumedAt ?? t.resumedAt ?? null,
  };
}

/** What the driver measured around the commit (the store's answer, the push, the acks). */
export interface MeasuredCutover {
  committedAt?: number;
  pushedAt?: number;
  acks: Record<string, number>;
}

export function withMeasured(s: CutoverSpans, m: MeasuredCutover | undefined): CutoverSpans {
  if (m === undefined) return s;
  return { ...s, committedAt: s.committedAt ?? m.committedAt ?? null, pushedAt: s.pushedAt ?? m.pushedAt ?? null, acks: { ...m.acks, ...s.acks } };
}

/** Offsets from the pause (the source's own moment when it said, else when the controller heard it), ms. */
export function spansView(s: CutoverSpans, run: { pausedMs: number | null; readyMs: number | null; acknowledgedMs: number | null }): MigrationSpansView | null {
  const origin = s.pausedAt ?? run.pausedMs;
  if (origin === null) return null;
  const off = (t: number | null): number | null => (t === null ? null : t - origin);
  const acks: Record<string, number> = {};
  for (const [host, at] of Object.entries(s.acks)) acks[host] = at - origin;
  return {
    pausedHeard: off(run.pausedMs),
    finalSent: off(s.finalSentAt),
    applied: off(s.appliedAt),
    ready: off(run.readyMs),
    committed: off(s.committedAt),
    pushed: off(s.pushedAt),
    acks,
    acknowledged: off(run.acknowledgedMs),
    resumed: off(s.resumedAt),
  };
}

/**
 * The driver's side: at a commit it notes the store's answer, the push and
 * which daemons' rule versions the push raised; as acks come in (ticks) it
 * notes when each of those daemons runs its new version. The coordinator
 * takes these into the run as it leaves the commit step.
 */
export class CutoverRecorder {
  readonly #measured = new Map<string, MeasuredCutover & { waiting: Map<string, number> }>();

  /** The commit points of `ids` are durable since `committedAt`. */
  committed(ids: readonly string[], committedAt: number): void {
    for (const id of ids) this.#measured.set(id, { committedAt, acks: {}, waiting: new Map() });
  }

  /** The rules of the commit left at `pushedAt`, raising `raised` (host → rules version). */
  pushed(ids: readonly string[], pushedAt: number, raised: ReadonlyMap<string, number>): void {
    for (const id of ids) {
      const m = this.#measured.get(id);
      if (m === undefined) continue;
      m.pushedAt = pushedAt;
      for (const [host, version] of raised) m.waiting.set(host, version);
    }
  }

  /** Daemons that now run the version they were pushed at the commit. */
  observe(applied: (host: string) => number | undefined, nowMs: number): void {
    for (const m of this.#measured.values()) {
      for (const [host, version] of m.waiting) {
        const v = applied(host);
        if (v !== undefined && v >= version) { m.acks[host] = nowMs; m.waiting.delete(host); }
      }
    }
  }

  get(id: string): MeasuredCutover | undefined {
    const m = this.#measured.get(id);
    return m === undefined ? undefined : { ...(m.committedAt !== undefined ? { committedAt: m.committedAt } : {}), ...(m.pushedAt !== undefined ? { pushedAt: m.pushedAt } : {}), acks: { ...m.acks } };
  }

  ids(): string[] {
    return [...this.#measured.keys()];
  }

  /** The run took what was measured (or ended): forget it. */
  forget(id: string): void {
    this.#measured.delete(id);
  }
}
