import type { LinkCounters } from '../control/daemon-control.ts';
import { pairKey, type LinkRate } from './views.ts';

/**
 * Link rates from the daemons' cumulative link counters: each facts report
 * gives, per (host, peer), the bytes and frames sent since the previous
 * report, over the time between them. Pure: state in, state out.
 *
 *   facts(host, links, now) ─▶ per direction host→peer: Δtx / Δt
 *   linkRates(state)        ─▶ per host pair: both directions summed
 *
 * A counter that went backwards (the daemon restarted) starts over without a
 * rate; a host that disconnects takes its directions with it.
 */

interface CounterSample {
  readonly atMs: number;
  readonly txBytes: number;
  readonly txFrames: number;
}

export interface LinkRateState {
  /** Last cumulative tx counters, keyed host\0peer. */
  readonly counters: ReadonlyMap<string, CounterSample>;
  /** Per-direction rates, keyed host\0peer. */
  readonly directed: ReadonlyMap<string, LinkRate>;
}

export const INITIAL_LINK_RATES: LinkRateState = { counters: new Map(), directed: new Map() };

const SEP = '\u0000';

/** The state after a daemon's facts report at `nowMs`. */
export function nextLinkRates(
  state: LinkRateState,
  host: string,
  links: readonly (Pick<LinkCounters, 'txBytes' | 'txFrames'> & { peer: string })[],
  nowMs: number,
): LinkRateState {
  const counters = new Map(state.counters);
  const directed = new Map(state.directed);
  for (const l of links) {
    const key = `${host}${SEP}${l.peer}`;
    const prev = counters.get(key);
    counters.set(key, { atMs: nowMs, txBytes: l.txBytes, txFrames: l.txFrames });
    if (prev === undefined || nowMs <= prev.atMs || l.txBytes < prev.txBytes) continue;
    const secs = (nowMs - prev.atMs) / 1000;
    directed.set(key, { bytesPerSec: (l.txBytes - prev.txBytes) / secs, framesPerSec: (l.txFrames - prev.txFrames) / secs });
  }
  return { counters, directed };
}

/** The state once `host` has disconnected: its directions have no rate any more. */
export function withoutHost(state: LinkRateState, host: string): LinkRateState {
  const prefix = `${host}${SEP}`;
  return { counters: state.counters, directed: new Map([...state.directed].filter(([k]) => !k.startsWith(prefix))) };
}

/** Link rates (both directions summed), keyed by pairKey(a, b). */
export function linkRates(state: LinkRateState): Map<string, LinkRate> {
  const out = new Map<string, LinkRate>();
  for (const [key, r] of state.directed) {
    const [host, peer] = key.split(SEP) as [string, string];
    const k = pairKey(host, peer);
    const prev = out.get(k) ?? { bytesPerSec: 0, framesPerSec: 0 };
    out.set(k, { bytesPerSec: prev.bytesPerSec + r.bytesPerSec, framesPerSec: prev.framesPerSec + r.framesPerSec });
  }
  return out;
}
