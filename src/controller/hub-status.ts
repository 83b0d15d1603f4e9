import type { DaemonFacts } from '../control/daemon-control.ts';
import type { HubState } from './api-views.ts';
import { event, noEffects, type Effects, type Planned } from './effects.ts';
import type { HostRecord } from './store/records.ts';

/**
 * Which hub each spoke uses and how each hub is doing, from what the
 * connected daemons report (their facts), with no memory of its own beyond
 * the previous verdict (to announce changes). Pure: hosts in, a verdict and
 * effects out.
 *
 * A spoke's hub is the hub its backbone link is up to. A hub is
 *
 *   down     its daemon is not connected to the controller;
 *   active   connected, and at least one spoke's backbone link is up to it;
 *   lost     connected (as far as the control channel knows), but no spoke
 *            is on it while some spoke is dialling it, or the other hub's
 *            trunk to it is down: the data plane gave up on it — a hub
 *            stopped (SIGSTOP) or cut off is seen here within the spokes'
 *            dead timer, long before its control channel times out;
 *   standby  connected, no spoke on it, nothing says it is unreachable.
 *
 * `planHubWatch` compares a new verdict with the previous one: a hub whose
 * state changed is a `hub-changed` event (and a warning when it is lost or
 * down); a spoke now on another hub than the last one it was seen on is a
 * `spoke-hub-changed` event (its failover) and asks for a reconcile, so that
 * its rules point at its new hub.
 */

export interface BackboneVerdict {
  /** Every hub's state. */
  hubs: ReadonlyMap<string, HubState>;
  /** Every connected spoke's hub (null: its backbone link is down). */
  hubOf: ReadonlyMap<string, string | null>;
  /** The last hub each spoke was seen on (kept while its link is down or it is away), to tell a failover from a reconnect. */
  lastHubOf: ReadonlyMap<string, string>;
}

export const EMPTY_VERDICT: BackboneVerdict = { hubs: new Map(), hubOf: new Map(), lastHubOf: new Map() };

type Host = Pick<HostRecord, 'id' | 'role' | 'connected' | 'facts'>;

/** The hub `facts`' backbone link is up to (one of `hubs`), or null. */
export function hubInFacts(facts: DaemonFacts | undefined, hubs: ReadonlySet<string>): string | null {
  const up = facts?.links.find((l) => l.kind === 'backbone' && l.state === 'up' && hubs.has(l.peer));
  return up?.peer ?? null;
}

/** What of a host's facts the hub watch reads: its backbone links and their states (equal signatures: nothing to re-judge). */
export function backboneSignature(facts: DaemonFacts | undefined): string {
  if (facts === undefined) return '';
  return facts.links
    .filter((l) => l.kind === 'backbone')
    .map((l) => `${l.peer}:${l.state}`)
    .sort()
    .join(',');
}

/** The verdict on `hosts` now; `prev` only carries each spoke's last hub forward. */
export function backboneVerdict(hosts: readonly Host[], prev: BackboneVerdict = EMPTY_VERDICT): BackboneVerdict {
  const hubIds = new Set(hosts.filter((h) => h.role === 'hub').map((h) => h.id));
  const hubOf = new Map<string, string | null>();
  const onHub = new Map<string, number>();
  const unreachable = new Set<string>();
  for (const h of hosts) {
    if (!h.connected || h.facts === undefined) continue;
    const backbone = h.facts.links.filter((l) => l.kind === 'backbone' && hubIds.has(l.peer) && l.peer !== h.id);
    for (const l of backbone) {
      if (l.state === 'up') onHub.set(l.peer, (onHub.get(l.peer) ?? 0) + (h.role === 'spoke' ? 1 : 0));
      else unreachable.add(l.peer);
    }
    if (h.role === 'spoke') hubOf.set(h.id, hubInFacts(h.facts, hubIds));
  }
  const hubs = new Map<string, HubState>();
  for (const h of hosts) {
    if (h.role !== 'hub') continue;
    const spokes = onHub.get(h.id) ?? 0;
    hubs.set(h.id, !h.connected ? 'down' : spokes > 0 ? 'active' : unreachable.has(h.id) ? 'lost' : 'standby');
  }
  const lastHubOf = new Map(prev.lastHubOf);
  for (const [spoke, hub] of hubOf) if (hub !== null) lastHubOf.set(spoke, hub);
  return { hubs, hubOf, lastHubOf };
}

/** The hub spokes fall back to while their own is unknown: an active hub, else a standby, else any (in id order). */
export function defaultHub(verdict: BackboneVerdict): string | undefined {
  const ids = [...verdict.hubs.keys()].sort();
  for (const wanted of ['active', 'standby'] as const) {
    const id = ids.find((h) => verdict.hubs.get(h) === wanted);
    if (id !== undefined) return id;
  }
  return ids[0];
}

/** A new verdict from `hosts`, and the events announcing what changed since `prev`. */
export function planHubWatch(prev: BackboneVerdict, hosts: readonly Host[]): Planned<BackboneVerdict> {
  const next = backboneVerdict(hosts, prev);
  const effects: Effects = noEffects();
  for (const [hub, state] of next.hubs) {
    const before = prev.hubs.get(hub);
    if (before === state) continue;
    const spokes = [...next.hubOf].filter(([, h]) => h === hub).map(([s]) => s).sort();
    effects.events.push(event('hub-changed', { hub, state, previous: before ?? null, spokes }));
    if ((state === 'lost' || state === 'down') && before !== undefined) {
      effects.logs.push({ level: 'warn', fields: { hub, state, previous: before }, msg: state === 'lost' ? 'hub lost: spokes could not keep their backbone link to it' : 'hub down: its daemon left the control channel' });
    } else if (before === 'lost' || before === 'down') {
      effects.logs.push({ level: 'info', fields: { hub, state, previous: before }, msg: 'hub back' });
    }
  }
  const moved: string[] = [];
  for (const [spoke, hub] of next.hubOf) {
    if (hub === null || prev.hubOf.get(spoke) === hub) continue;
    const before = prev.lastHubOf.get(spoke);
    if (before === undefined || before === hub) continue; // its first hub, or back on the same one
    moved.push(spoke);
    effects.events.push(event('spoke-hub-changed', { host: spoke, hub, previous: before }));
    effects.logs.push({ level: 'info', fields: { spoke, hub, previous: before }, msg: 'spoke moved to another hub' });
  }
  if (moved.length > 0) effects.reconcile = `spokes on another hub: ${moved.sort().join(', ')}`;
  return { state: next, effects };
}
