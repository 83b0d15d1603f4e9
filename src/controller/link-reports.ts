import type { LinkFacts } from '../control/daemon-control.ts';
import type { LinkReportRecord } from './store/records.ts';
import { pairKey, type LinkRate } from './views.ts';

/**
 * What the daemons last reported of their links — state and cumulative
 * counters per (host, peer) — and the link rates those counters give. Soft
 * state of the leader, kept in memory and never stored: the hub reports one
 * backbone link per spoke every update period, so a stored row per link was
 * one store write (one etcd key) per spoke per second whatever changed
 * (docs/scale.md). A new leader rebuilds it from the next report of each
 * daemon (one update period); followers forward the reads that show it
 * (`/links`, `/overview`: api/leader-reads.ts). What of a link must survive
 * a leader change — its desired existence (`links`) and its reported state
 * in the host's facts — is in the store, written when it changes
 * (control-loop.ts).
 *
 *   report(host, links, now) ─▶ the host's links replaced; per direction
 *                               host→peer: rate = Δtx / Δt since its last report
 *   hostGone(host)           ─▶ its directions have no rate any more (its last
 *                               report stays: the links' last known state)
 *
 * A counter that went backwards (the daemon restarted) starts over without a
 * rate. A report costs its own links; `list` and `rates` cost every link.
 */

interface CounterSample {
  readonly atMs: number;
  readonly txBytes: number;
  readonly txFrames: number;
}

type ReportedLink = Pick<LinkFacts, 'peer' | 'kind' | 'state' | 'txFrames' | 'txBytes' | 'rxFrames' | 'rxBytes' | 'txDropped' | 'decodeErrors' | 'reconnects'>;

export class LinkReports {
  /** Per host: its links as last reported, by peer. */
  readonly #reports = new Map<string, Map<string, LinkReportRecord>>();
  /** Last cumulative tx counters, per host then peer. */
  readonly #counters = new Map<string, Map<string, CounterSample>>();
  /** Per-direction rates, per host then peer. */
  readonly #directed = new Map<string, Map<string, LinkRate>>();

  /** A daemon's links as it reports them at `nowMs`: they replace the ones it reported before. */
  report(host: string, links: readonly ReportedLink[], nowMs: number): void {
    const reports = new Map<string, LinkReportRecord>();
    let counters = this.#counters.get(host);
    if (counters === undefined) this.#counters.set(host, (counters = new Map()));
    let directed = this.#directed.get(host);
    if (directed === undefined) this.#directed.set(host, (directed = new Map()));
    for (const l of links) {
      reports.set(l.peer, {
        host, peer: l.peer, kind: l.kind, state: l.state, txFrames: l.txFrames, txBytes: l.txBytes, rxFrames: l.rxFrames, rxBytes: l.rxBytes,
        txDropped: l.txDropped, decodeErrors: l.decodeErrors, reconnects: l.reconnects, updatedMs: nowMs,
      });
      const prev = counters.get(l.peer);
      counters.set(l.peer, { atMs: nowMs, txBytes: l.txBytes, txFrames: l.txFrames });
      if (prev === undefined || nowMs <= prev.atMs || l.txBytes < prev.txBytes) continue;
      const secs = (nowMs - prev.atMs) / 1000;
      directed.set(l.peer, { bytesPerSec: (l.txBytes - prev.txBytes) / secs, framesPerSec: (l.txFrames - prev.txFrames) / secs });
    }
    this.#reports.set(host, reports);
  }

  /** `host` disconnected: its directions have no rate any more; its last report stays. */
  hostGone(host: string): void {
    this.#directed.delete(host);
  }

  /** Every host's last report of every link, ordered by host then peer. */
  list(): LinkReportRecord[] {
    const out: LinkReportRecord[] = [];
    for (const host of [...this.#reports.keys()].sort()) {
      const byPeer = this.#reports.get(host)!;
      for (const peer of [...byPeer.keys()].sort()) out.push(byPeer.get(peer)!);
    }
    return out;
  }

  /** What each end last reported of the link between `a` and `b` (none, one or both): what a link's view reads, without a scan of every report. */
  ends(a: string, b: string): LinkReportRecord[] {
    const out: LinkReportRecord[] = [];
    const ab = this.#reports.get(a)?.get(b);
    const ba = this.#reports.get(b)?.get(a);
    if (ab !== undefined) out.push(ab);
    if (ba !== undefined) out.push(ba);
    return out;
  }

  /** Whether either end last reported the link between `a` and `b` up. */
  up(a: string, b: string): boolean {
    return this.#reports.get(a)?.get(b)?.state === 'up' || this.#reports.get(b)?.get(a)?.state === 'up';
  }

  /** Link rates (both directions summed), keyed by pairKey(a, b). */
  rates(): Map<string, LinkRate> {
    const out = new Map<string, LinkRate>();
    for (const [host, byPeer] of this.#directed) {
      for (const [peer, r] of byPeer) {
        const k = pairKey(host, peer);
        const prev = out.get(k) ?? { bytesPerSec: 0, framesPerSec: 0 };
        out.set(k, { bytesPerSec: prev.bytesPerSec + r.bytesPerSec, framesPerSec: prev.framesPerSec + r.framesPerSec });
      }
    }
    return out;
  }
}
