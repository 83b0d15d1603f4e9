import type { DaemonFacts } from '../control/daemon-control.ts';

/**
 * Which facts reports are stored. A daemon reports its facts every update
 * period; most reports differ from the last only in counters (frames and
 * bytes of its ports and links, drops, MAC conflicts), which are the
 * leader's soft state (link-reports.ts, metrics). The store gets a report
 * when anything else changed — a port added or gone, an address, a link's
 * state or re-opening, the versions it holds, its listen address — so the
 * store writes of N reporting hosts are proportional to what changed, not N
 * per period (docs/scale.md).
 */

/** Everything of `facts` but counters, as one comparable string ('' for none). */
export function factsSignature(facts: DaemonFacts | undefined): string {
  if (facts === undefined) return '';
  return JSON.stringify([
    facts.hostId, facts.role, facts.site ?? null, facts.listen ?? null, facts.rulesVersion, facts.linksVersion,
    facts.ports.map((p) => [p.name, p.kind, p.mac, p.ip ?? null, p.mtu, p.security?.locked ?? null, p.security?.learnedMacs ?? null]),
    facts.links.map((l) => [l.peer, l.kind, l.state, l.direction, l.reconnects]),
  ]);
}

/** Whether `next` must be stored over `stored`: something but counters changed. */
export function factsChanged(stored: DaemonFacts | undefined, next: DaemonFacts): boolean {
  return factsSignature(stored) !== factsSignature(next);
}
