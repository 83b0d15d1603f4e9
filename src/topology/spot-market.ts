import type { Placement } from './placement.ts';
import { fmt, type MoveEstimate, type SchedulingInput, type SchedulingPolicy } from './scheduling.ts';

/**
 * Smart spot market (Supercloud): every VM runs in a spot instance of its
 * host's site, billed by the hour (hours aligned on `billingEpochMs`), at a
 * price that changes over time (a series per site). A site can be reclaimed:
 * a termination notice names the site and when; a site whose price is at or
 * above the bid is reclaimed too. The score ($, higher is better) is minus
 * what the next billing hour (or `horizonHours` of them, at today's price)
 * costs at each VM's site, minus
 * `terminationPenalty` per VM left on a site being reclaimed: a VM is never
 * left to be terminated while any site is safe.
 *
 * Moving costs (`moveCost`): egress at `perGiB` $ for the bytes the engine
 * estimates; the rest of the current hour at the new site, which is billed
 * from the move while the old hour is already paid — so a move for price
 * happens just before the next billing hour, when this is small; and if the
 * move would not finish before the billing hour turns, the old site's next
 * hour too.
 */

export interface PricePoint {
  readonly atMs: number;
  /** $ per VM-hour from `atMs` on. */
  readonly perHour: number;
}

export interface TerminationNotice {
  readonly site: string;
  /** When the notice is given (the policy ignores it before). */
  readonly noticeAtMs: number;
  /** When the site's instances are terminated. */
  readonly atMs: number;
}

export interface SpotMarketParams {
  /** site → price series, sorted by time. */
  readonly prices: ReadonlyMap<string, readonly PricePoint[]>;
  readonly terminations: readonly TerminationNotice[];
  readonly billingPeriodMs: number;
  readonly billingEpochMs: number;
  /** A site priced at or above this is being reclaimed (Infinity: no bid). */
  readonly bidPerHour: number;
  readonly perGiB: number;
  readonly terminationPenalty: number;
  /** Billing hours a price difference is counted for (prices assumed to hold; default 1: only the next hour). */
  readonly horizonHours?: number;
}

/** The price at `site` at time `t` (the last point at or before t; the first point before the series starts). */
export function priceAt(params: SpotMarketParams, site: string, t: number): number {
  const series = params.prices.get(site);
  if (series === undefined || series.length === 0) return Number.POSITIVE_INFINITY;
  let p = series[0]!.perHour;
  for (const x of series) {
    if (x.atMs > t) break;
    p = x.perHour;
  }
  return p;
}

/** The next billing boundary strictly after `t`. */
export function nextBillingHour(params: SpotMarketParams, t: number): number {
  const k = Math.floor((t - params.billingEpochMs) / params.billingPeriodMs) + 1;
  return params.billingEpochMs + k * params.billingPeriodMs;
}

/** Whether `site` is being reclaimed at `t`: a notice given and not yet past, or its price at or above the bid. */
export function reclaimed(params: SpotMarketParams, site: string, t: number): boolean {
  if (params.terminations.some((n) => n.site === site && n.noticeAtMs <= t && t < n.atMs)) return true;
  return priceAt(params, site, t) >= params.bidPerHour;
}

export function spotMarketPolicy(params: SpotMarketParams): SchedulingPolicy {
  const siteOf = (input: SchedulingInput, host: string): string => input.hosts.find((h) => h.id === host)?.site ?? host;
  return {
    name: 'spot-market',
    unit: '$',
    evaluate(placement: Placement, input: SchedulingInput) {
      const next = nextBillingHour(params, input.nowMs);
      let score = 0;
      const perSite = new Map<string, { vms: number; price: number; doomed: boolean }>();
      for (const host of placement.values()) {
        const site = siteOf(input, host);
        const s = perSite.get(site) ?? { vms: 0, price: priceAt(params, site, next), doomed: reclaimed(params, site, input.nowMs) };
        s.vms++;
        perSite.set(site, s);
      }
      const notes: string[] = [];
      for (const [site, s] of [...perSite].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
        score -= s.vms * (Number.isFinite(s.price) ? s.price * (params.horizonHours ?? 1) : params.terminationPenalty);
        if (s.doomed) score -= s.vms * params.terminationPenalty;
        notes.push(`${site}: ${s.vms} VM(s) at $${fmt(s.price)}/h for the hour from ${new Date(next).toISOString()}${s.doomed ? ', being reclaimed' : ''}`);
      }
      return { score, notes };
    },
    moveCost(_vm: string, from: string, to: string, e: MoveEstimate, input: SchedulingInput) {
      const now = input.nowMs;
      const next = nextBillingHour(params, now);
      const egress = (e.bytes / 1024 ** 3) * params.perGiB;
      const newSite = priceAt(params, siteOf(input, to), now);
      const overlap = Number.isFinite(newSite) ? newSite * ((next - now) / params.billingPeriodMs) : params.terminationPenalty;
      const late = now + e.seconds * 1000 > next ? priceAt(params, siteOf(input, from), next) : 0;
      return egress + overlap + (Number.isFinite(late) ? late : 0);
    },
    explain(_vm, from, to, input) {
      const a = siteOf(input, from);
      const b = siteOf(input, to);
      const next = nextBillingHour(params, input.nowMs);
      const why = reclaimed(params, a, input.nowMs) ? `${a} is being reclaimed` : `the next hour costs $${fmt(priceAt(params, b, next))} at ${b}, $${fmt(priceAt(params, a, next))} at ${a}`;
      return `${why} (billing hour turns in ${Math.round((next - input.nowMs) / 60_000)} min)`;
    },
  };
}
