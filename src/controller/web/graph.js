// The cytoscape graph: its style, the elements the state calls for, and keeping the drawing in step
// with the state without re-laying it out unless hosts or VMs moved. `view` holds the drawing's own
// state: { structureKey, labelScale }.
import { computePositions, groupHosts } from './layout.js';
import { rate } from './format.js';
import { linkId, state, vmsOf } from './state.js';

/** The cytoscape style sheet, with label sizes multiplied by `k`. */
export function styleSheet(k) {
  const fs = (px) => Math.round(px * k * 10) / 10;
  return [
    { selector: 'node', style: { 'font-family': 'system-ui, sans-serif', color: '#1f2937' } },
    {
      selector: 'node.site',
      style: {
        shape: 'round-rectangle', 'background-color': '#f1f5f9', 'border-width': 1, 'border-color': '#cbd5e1', 'border-style': 'dashed',
        label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'text-margin-y': -6, 'font-size': fs(15), 'font-weight': 600, color: '#475569',
        padding: 22,
      },
    },
    {
      selector: 'node.host',
      style: {
        shape: 'round-rectangle', 'background-color': '#ffffff', 'border-width': 2, 'border-color': '#0f766e',
        label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'text-margin-y': -4, 'font-size': fs(13), 'font-weight': 600,
        padding: 14, width: 70, height: 40,
      },
    },
    { selector: 'node.host:childless', style: { 'text-valign': 'center', 'text-margin-y': 0 } },
    { selector: 'node.host.hub', style: { 'border-color': '#1d4ed8', 'border-width': 3, 'background-color': '#eff6ff' } },
    { selector: 'node.host.down', style: { 'border-color': '#dc2626', 'background-color': '#fef2f2', 'border-style': 'dashed' } },
    {
      selector: 'node.vm',
      style: {
        shape: 'ellipse', width: 30, height: 30, 'background-color': '#14b8a6', 'border-width': 2, 'border-color': '#0f766e',
        label: 'data(label)', 'font-size': fs(11), 'text-valign': 'bottom', 'text-margin-y': 3, color: '#374151',
      },
    },
    { selector: 'node.vm.centre', style: { 'background-color': '#8b5cf6', 'border-color': '#5b21b6' } },
    { selector: 'node.vm.migrating', style: { 'background-color': '#f59e0b', 'border-color': '#b45309' } },
    // A running migration's progress as a pie over the VM's node (data(progress): 0..100).
    {
      selector: 'node.vm.migrating[progress >= 0]',
      style: { 'pie-size': '100%', 'pie-1-background-color': '#b45309', 'pie-1-background-size': 'data(progress)', 'pie-1-background-opacity': 0.9 },
    },
    { selector: 'node.vm.stopped', style: { 'background-color': '#d1d5db', 'border-color': '#9ca3af' } },
    {
      selector: 'edge.link',
      style: {
        'curve-style': 'bezier', width: 'data(width)', 'line-color': '#64748b', opacity: 0.85,
        label: 'data(label)', 'font-size': fs(11), color: '#334155', 'text-background-color': '#ffffff', 'text-background-opacity': 0.85,
        'text-background-padding': 2, 'text-rotation': 'autorotate',
      },
    },
    {
      selector: 'edge.fast-path',
      style: { 'line-color': '#ea580c', opacity: 1, 'z-index': 5, 'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(arc)', 'control-point-weights': 0.5 },
    },
    { selector: 'edge.pending, edge.connecting', style: { 'line-style': 'dashed', opacity: 0.7 } },
    { selector: 'edge.down', style: { 'line-style': 'dotted', opacity: 0.5 } },
    {
      selector: 'edge.app',
      style: { 'curve-style': 'unbundled-bezier', 'control-point-distances': 30, width: 'data(width)', 'line-color': '#7c3aed', 'line-style': 'dashed', opacity: 0.55 },
    },
    { selector: 'edge.app.hidden', style: { display: 'none' } },
    { selector: 'node:selected, edge:selected', style: { 'underlay-color': '#0ea5e9', 'underlay-opacity': 0.25, 'underlay-padding': 6 } },
    {
      selector: 'edge.migration',
      style: {
        'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(arc)', 'control-point-weights': 0.5,
        width: 2, 'line-color': '#f59e0b', 'line-style': 'dashed',
        'target-arrow-shape': 'triangle', 'target-arrow-color': '#f59e0b', label: 'data(label)', 'font-size': fs(10), color: '#b45309',
        'text-background-color': '#ffffff', 'text-background-opacity': 0.85,
      },
    },
  ];
}

function desiredElements(sites, showApp) {
  const els = [];
  for (const [s, hosts] of sites) {
    els.push({ group: 'nodes', data: { id: `site:${s}`, label: s }, classes: 'site' });
    for (const h of hosts) {
      const cls = ['host', h.role === 'hub' ? 'hub' : '', h.state === 'down' ? 'down' : ''].filter(Boolean).join(' ');
      els.push({ group: 'nodes', data: { id: `host:${h.id}`, parent: `site:${s}`, label: h.id }, classes: cls });
    }
  }
  const migrating = new Map([...state.migrations.values()].filter((m) => m.state === 'running').map((m) => [m.vm, m]));
  for (const v of state.vms.values()) {
    if (v.host === null || !state.hosts.has(v.host)) continue;
    const cls = ['vm', migrating.has(v.mac) || v.state === 'migrating' ? 'migrating' : '', v.state === 'stopped' ? 'stopped' : '',
      state.topology.centre === v.mac ? 'centre' : ''].filter(Boolean).join(' ');
    const m = migrating.get(v.mac);
    const name = v.name ?? v.mac.slice(-5);
    const progress = m === undefined ? -1 : Math.round(Math.max(0, Math.min(1, m.progress)) * 100);
    const label = m === undefined ? name : `${name} ${progress}%`;
    els.push({ group: 'nodes', data: { id: `vm:${v.mac}`, parent: `host:${v.host}`, label, progress }, classes: cls });
  }
  const maxRate = Math.max(1, ...[...state.links.values()].map((l) => l.bytesPerSec));
  for (const l of state.links.values()) {
    if (!state.hosts.has(l.a) || !state.hosts.has(l.b)) continue;
    // Thickness by the square root of the share of the busiest link: busy links stand out, quiet ones stay visible.
    const scaled = l.bytesPerSec > 0 ? Math.sqrt(l.bytesPerSec / maxRate) : 0;
    const width = (l.kind === 'fast-path' ? 3 : 2) + 8 * scaled;
    els.push({
      group: 'edges',
      data: { id: `link:${linkId(l.a, l.b)}`, source: `host:${l.a}`, target: `host:${l.b}`, width, label: rate(l.bytesPerSec), arc: 0 },
      classes: `link ${l.kind} ${l.state}`,
    });
  }
  for (const e of state.topology.edges) {
    if (!state.vms.has(e.a) || !state.vms.has(e.b)) continue;
    if (state.vms.get(e.a).host === null || state.vms.get(e.b).host === null) continue;
    els.push({
      group: 'edges',
      data: { id: `app:${linkId(e.a, e.b)}`, source: `vm:${e.a}`, target: `vm:${e.b}`, width: 1 + 3 * e.weight },
      classes: showApp ? 'app' : 'app hidden',
    });
  }
  for (const m of state.migrations.values()) {
    if (m.state !== 'running' || !state.vms.has(m.vm) || !state.hosts.has(m.to)) continue;
    els.push({
      group: 'edges',
      data: { id: `mig:${m.id}`, source: `vm:${m.vm}`, target: `host:${m.to}`, label: `migrating ${Math.round(m.progress * 100)}%`, arc: 0 },
      classes: 'migration',
    });
  }
  return els;
}

export function syncGraph(cy, view, showApp) {
  const sites = groupHosts();
  const els = desiredElements(sites, showApp);
  const wanted = new Set(els.map((e) => e.data.id));
  cy.batch(() => {
    cy.elements().forEach((el) => {
      if (!wanted.has(el.id())) cy.remove(el);
    });
    // Nodes before edges, parents before children.
    for (const e of els) {
      const existing = cy.getElementById(e.data.id);
      if (existing.nonempty() && existing.isNode() && (existing.data('parent') ?? undefined) !== e.data.parent) cy.remove(existing);
      const el = cy.getElementById(e.data.id);
      if (el.nonempty()) {
        el.data(e.data);
        el.classes(e.classes);
      } else {
        cy.add(e);
      }
    }
  });
  bendLongEdges(cy);
  const graph = document.getElementById('graph');
  graph.dataset.nodes = String(cy.nodes().length);
  graph.dataset.edges = String(cy.edges('.link').length);
  const key = JSON.stringify([...sites].map(([s, hosts]) => [s, hosts.map((h) => [h.id, vmsOf(h.id).map((v) => v.mac)])]));
  if (key !== view.structureKey) {
    view.structureKey = key;
    cy.layout({ name: 'preset', positions: computePositions(sites, cy.width() / Math.max(1, cy.height())), fit: true, padding: 50, animate: false }).run();
    fitView(cy, view);
    bendLongEdges(cy);
  }
}

/**
 * Fit the drawing to the panel, no closer than 1.3x; when it must be drawn small, grow the labels
 * (up to 1.8x) so they stay readable.
 */
export function fitView(cy, view) {
  cy.fit(undefined, 50);
  if (cy.zoom() > 1.3) {
    cy.zoom(1.3);
    cy.center();
  }
  const scale = Math.min(1.8, Math.max(1, 0.9 / cy.zoom()));
  if (Math.abs(scale - view.labelScale) > 0.05) {
    view.labelScale = scale;
    cy.style(styleSheet(scale));
  }
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
