// The page's copy of the controller's state, kept up to date by the snapshot and the event stream.

export const MAX_EVENTS_SHOWN = 40;

export const state = {
  hosts: new Map(),
  vms: new Map(),
  links: new Map(),
  migrations: new Map(),
  topology: { class: 'none', centre: null, confidence: 0, edges: [], detectedAt: null, weightsAt: null },
  placement: { computedAt: null, score: 0, proposedScore: 0, threshold: 0, moves: [] },
  seq: 0,
  /** Recent events for the events panel (no traffic reports). */
  events: [],
};

/** A link's key: its two host ids in order. */
export function linkId(a, b) {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/** The VMs on a host, by MAC. */
export function vmsOf(hostId) {
  return [...state.vms.values()].filter((v) => v.host === hostId).sort((x, y) => (x.mac < y.mac ? -1 : 1));
}

/** Replace the state with a snapshot (GET /api/v1/overview) and the recent events. */
export function loadState(overview, recentEvents) {
  state.hosts = new Map(overview.hosts.map((h) => [h.id, h]));
  state.vms = new Map(overview.vms.map((v) => [v.mac, v]));
  state.links = new Map(overview.links.map((l) => [linkId(l.a, l.b), l]));
  state.migrations = new Map(overview.migrations.map((m) => [m.id, m]));
  state.topology = overview.topology;
  if (overview.placement) state.placement = overview.placement;
  state.seq = overview.latestSeq;
  state.events = recentEvents.filter((e) => e.seq <= overview.latestSeq).slice(-MAX_EVENTS_SHOWN);
}

/** Apply one event from the stream. */
export function applyEvent(e) {
  const p = e.payload;
  switch (e.type) {
    case 'host-changed': state.hosts.set(p.host.id, p.host); break;
    case 'host-removed': state.hosts.delete(p.id); break;
    case 'hub-changed': { const h = state.hosts.get(p.hub); if (h) state.hosts.set(p.hub, { ...h, hubState: p.state }); break; }
    case 'spoke-hub-changed': { const h = state.hosts.get(p.host); if (h) state.hosts.set(p.host, { ...h, hub: p.hub }); break; }
    case 'vm-changed': state.vms.set(p.vm.mac, p.vm); break;
    case 'vm-removed': state.vms.delete(p.mac); break;
    case 'link-changed': state.links.set(linkId(p.link.a, p.link.b), p.link); break;
    case 'link-removed': state.links.delete(linkId(p.a, p.b)); break;
    case 'traffic-updated':
      for (const r of p.links) {
        const l = state.links.get(linkId(r.a, r.b));
        if (l) Object.assign(l, { bytes: r.bytes, frames: r.frames, bytesPerSec: r.bytesPerSec, framesPerSec: r.framesPerSec });
      }
      // The announced topology's edges with their current smoothed weights (structure unchanged).
      if (p.topology) Object.assign(state.topology, { edges: p.topology.edges, weightsAt: p.topology.weightsAt });
      break;
    case 'topology-changed': state.topology = p.topology; break;
    case 'migration-changed': state.migrations.set(p.migration.id, p.migration); break;
    case 'placement-changed': state.placement = p.placement; break;
    default: break;
  }
  state.seq = Math.max(state.seq, e.seq);
  if (e.type !== 'traffic-updated') {
    state.events.push(e);
    if (state.events.length > MAX_EVENTS_SHOWN) state.events.shift();
  }
}
