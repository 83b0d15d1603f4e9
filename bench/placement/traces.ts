// Synthetic traces for bench/placement/run.ts, seeded and reproducible.
//
//   clients    per site, the share of a service's clients by UTC hour: a
//              diurnal curve in the site's local time (night floor 0.1,
//              peak 1.0 at 14h local: max(0.1, cos((h − 14)·π/12))), with
//              ±15% seeded noise per hour and weekends at 60% (the usual
//              shape of web traffic by time zone)
//   prices     per site, a spot price every minute: a mean-reverting walk
//              around the site's base price (±3% a step, 1% pull back), plus
//              seeded spikes (0.04% a minute, about one in two days a site,
//              to 4–10× base for 20–90 min), the shape of
//              the EC2 spot price histories the seed shows ("usually cheap",
//              "prices can jump up")
//   load       the share of each VM's vCPUs in use by UTC hour: office hours
//              in one time zone, 0.12 at night rising to 0.72 at 14h
//              (0.12 + 0.6·max(0, sin(π(h − 7)/14)) for 7h..21h), weekends
//              at 40%, ±10% seeded noise per hour
import { seededRandom } from '../../src/topology/seeded-random.ts';

export const HOUR = 3_600_000;
export const MINUTE = 60_000;

export interface ClientSite {
  readonly site: string;
  /** Hours ahead of UTC. */
  readonly utcOffset: number;
  /** Relative number of clients at the site's peak. */
  readonly size: number;
}

/** Client weights, one map site → weight per hour, for `days` days. */
export function clientTrace(sites: readonly ClientSite[], days: number, seed: number): Array<Map<string, number>> {
  const rnd = seededRandom(seed);
  const out: Array<Map<string, number>> = [];
  for (let h = 0; h < days * 24; h++) {
    const m = new Map<string, number>();
    for (const s of sites) {
      const local = (h + s.utcOffset + 24 * 8) % 24;
      const day = Math.floor((h + s.utcOffset + 24) / 24) % 7;
      const weekend = day === 5 || day === 6 ? 0.6 : 1;
      const shape = Math.max(0.1, Math.cos(((local - 14) * Math.PI) / 12));
      m.set(s.site, s.size * shape * weekend * (0.85 + 0.3 * rnd()));
    }
    out.push(m);
  }
  return out;
}

export interface PriceSite {
  readonly site: string;
  readonly base: number;
}

/** Price points, one a minute per site, for `days` days from t = 0. */
export function priceTrace(sites: readonly PriceSite[], days: number, seed: number): Map<string, Array<{ atMs: number; perHour: number }>> {
  const rnd = seededRandom(seed);
  const out = new Map<string, Array<{ atMs: number; perHour: number }>>();
  for (const s of sites) {
    const series: Array<{ atMs: number; perHour: number }> = [];
    let p = s.base;
    let spikeUntil = -1;
    let spikeLevel = 1;
    for (let m = 0; m < days * 24 * 60; m++) {
      p += (s.base - p) * 0.01 + s.base * 0.03 * (rnd() * 2 - 1);
      p = Math.max(0.3 * s.base, p);
      if (m > spikeUntil && rnd() < 0.0004) {
        spikeUntil = m + 20 + Math.floor(rnd() * 70);
        spikeLevel = 4 + 6 * rnd();
      }
      series.push({ atMs: m * MINUTE, perHour: m <= spikeUntil ? s.base * spikeLevel : p });
    }
    out.set(s.site, series);
  }
  return out;
}

/** CPU load factor by hour for `days` days. */
export function loadTrace(days: number, seed: number): number[] {
  const rnd = seededRandom(seed);
  const out: number[] = [];
  for (let h = 0; h < days * 24; h++) {
    const local = h % 24;
    const day = Math.floor(h / 24) % 7;
    const weekend = day === 5 || day === 6 ? 0.4 : 1;
    const office = local >= 7 && local <= 21 ? Math.sin((Math.PI * (local - 7)) / 14) : 0;
    out.push(Math.min(1, (0.12 + 0.6 * office * weekend) * (0.9 + 0.2 * rnd())));
  }
  return out;
}
