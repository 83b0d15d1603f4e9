// The cytoscape graph: the elements the state calls for (nodes here, edges in edges.js), and
// keeping the drawing in step with the state without re-laying it out unless hosts, VMs or
// collapsed sites changed. `view` holds the drawing's own state:
//   { structureKey, labelScale, zoomKey, collapsed: Set of site names, focus: site or null,
//     edgeMode: 'auto' | 'all' | 'bundled' | 'off', selected: { kind, key } or null }
import { edgeElements } from './edges.js';
import { styleSheet } from './graph-style.js';
import { computePositions, groupHosts } from './layout.js';
import { state, vmsOf } from './state.js';

export function newView() {
  return { structureKey: '', labelScale: 1, zoomKey: '', collapsed: new Set(), focus: null, edgeMode: 'auto', selected: null };
}

function nodeElements(sites, view) {
  const els = [];
  for (const [s, hosts] of sites) {
    if (view.collapsed.has(s)) {
      const vms = hosts.reduce((n, h) => n + vmsOf(h.id).length, 0);
      const label = `${s}\n${hosts.length} host${hosts.length === 1 ? '' : 's'} · ${vms} VM${vms === 1 ? '' : 's'}`;
      els.push({ group: 'nodes', data: { id: `site:${s}`, label }, classes: 'site collapsed' });
      continue;
    }
    els.push({ group: 'nodes', data: { id: `site:${s}`, label: s }, classes: view.focus === s ? 'site focus' : 'site' });
    for (const h of hosts) {
      const cls = ['host', h.role === 'hub' ? 'hub' : '', h.state === 'down' ? 'down' : ''].filter(Boolean).join(' ');
      els.push({ group: 'nodes', data: { id: `host:${h.id}`, parent: `site:${s}`, label: h.id }, classes: cls });
    }
  }
  const migrating = new Map([...state.migrations.values()].filter((m) => m.state === 'running').map((m) => [m.vm, m]));
  for (const v of state.vms.values()) {
    const h = v.host === null ? undefined : state.hosts.get(v.host);
    if (h === undefined || view.collapsed.has(h.site ?? '(no site)')) continue;
    const cls = ['vm', migrating.has(v.mac) || v.state === 'migrating' ? 'migrating' : '', v.state === 'stopped' ? 'stopped' : '',
      state.topology.centre === v.mac ? 'centre' : ''].filter(Boolean).join(' ');
    const m = migrating.get(v.mac);
    const name = v.name ?? v.mac.slice(-5);
    const progress = m === undefined ? -1 : Math.round(Math.max(0, Math.min(1, m.progress)) * 100);
    const label = m === undefined ? name : `${name} ${progress}%`;
    els.push({ group: 'nodes', data: { id: `vm:${v.mac}`, parent: `host:${v.host}`, label, progress }, classes: cls });
  }
  return els;
}

function migrationElements(cy) {
  const els = [];
  for (const m of state.migrations.values()) {
    if (m.state !== 'running' || cy.getElementById(`vm:${m.vm}`).empty() || cy.getElementById(`host:${m.to}`).empty()) continue;
    els.push({
      group: 'edges',
      data: { id: `mig:${m.id}`, source: `vm:${m.vm}`, target: `host:${m.to}`, label: `migrating ${Math.round(m.progress * 100)}%`, arc: 0 },
      classes: 'migration',
    });
  }
  return els;
}

/** Make the graph's elements those of `els`: remove the rest, update data and classes in place, add the new. */
function reconcile(cy, els) {
  const wanted = new Set(els.map((e) => e.data.id));
  cy.elements().forEach((el) => {
    if (el.removed() === false && !wanted.has(el.id())) cy.remove(el);
  });
  // Nodes before edges, parents before children.
  for (const e of els) {
    const existing = cy.getElementById(e.data.id);
    if (existing.nonempty() && existing.isNode() && (existing.data('parent') ?? undefined) !== e.data.parent) cy.remove(existing);
    if (existing.nonempty() && existing.isEdge() && (existing.data('source') !== e.data.source || existing.data('target') !== e.data.target)) cy.remove(existing);
    const el = cy.getElementById(e.data.id);
    if (el.nonempty()) {
      el.data(e.data);
      el.classes(e.classes);
    } else {
      cy.add(e);
    }
  }
}

export function syncGraph(cy, view) {
  const sites = groupHosts();
  cy.batch(() => {
    reconcile(cy, [...nodeElements(sites, view), ...edgeElements(view)]);
    const mig = migrationElements(cy);
    cy.add(mig.filter((e) => cy.getElementById(e.data.id).empty()));
    for (const e of mig) cy.getElementById(e.data.id).data(e.data);
  });
  bendLongEdges(cy);
  const graph = document.getElementById('graph');
  Object.assign(graph.dataset, {
    nodes: String(cy.nodes().length),
    edges: String(cy.edges('.link').length),
    bundles: String(cy.edges('.link-bundle, .app-bundle').length),
    appEdges: String(cy.edges('.app').length),
    focus: view.focus ?? '',
  });
  const key = JSON.stringify([[...view.collapsed].sort(), ...[...sites].map(([s, hosts]) => [s, hosts.map((h) => [h.id, vmsOf(h.id).map((v) => v.mac)])])]);
  if (key !== view.structureKey) {
    view.structureKey = key;
    cy.layout({ name: 'preset', positions: computePositions(sites, cy.width() / Math.max(1, cy.height()), view.collapsed), fit: false, animate: false }).run();
    if (view.focus !== null && cy.getElementById(`site:${view.focus}`).nonempty()) zoomToSite(cy, view, view.focus);
    else fitView(cy, view);
    bendLongEdges(cy);
  }
}

/** Re-style the labels for the current zoom (graph-style.js's label policy). */
export function restyleForZoom(cy, view) {
  const z = cy.zoom();
  const scale = Math.min(1.8, Math.max(1, 0.9 / z));
  const key = `${scale.toFixed(2)}:${Math.min(60, 13 / z).toFixed(0)}`;
  if (key === view.zoomKey) return;
  view.zoomKey = key;
  view.labelScale = scale;
  cy.style(styleSheet(scale, z));
}

/**
 * Fit the drawing to the panel, no closer than 1.3x; when it must be drawn small, grow the labels
 * (up to 1.8x) so they stay readable.
 */
export function fitView(cy, view) {
  cy.fit(undefined, 30);
  if (cy.zoom() > 1.3) {
    cy.zoom(1.3);
    cy.center();
  }
  restyleForZoom(cy, view);
}

/** Zoom to one site (its hosts and VMs fill the panel, no closer than 2x). */
export function zoomToSite(cy, view, site) {
  const node = cy.getElementById(`site:${site}`);
  if (node.empty()) return;
  cy.fit(node, 40);
  if (cy.zoom() > 2) {
    cy.zoom(2);
    cy.center(node);
  }
  restyleForZoom(cy, view);
}

/** Fast-path links arc above the straight line, migrations below, by a fifth of their length, so parallel ones stay apart. */
function bendLongEdges(cy) {
  cy.edges('.fast-path, .migration').forEach((e) => {
    const p = e.source().position();
    const q = e.target().position();
    const length = Math.hypot(q.x - p.x, q.y - p.y);
    // Positive distances bend to the left of source→target; pick the sign that bends upwards (or downwards).
    const leftIsUp = q.x < p.x;
    const up = e.hasClass('fast-path');
    e.data('arc', (leftIsUp === up ? 1 : -1) * Math.max(30, 0.2 * length));
  });
}
