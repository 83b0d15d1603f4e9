// vnet web page: the live topology. Plain browser JavaScript (no build step).
//
// Stages:
//   token     read once from the URL fragment (#token=…), kept in sessionStorage,
//             and removed from the address bar; sent only as the bearer header
//             on API calls and as ?token= on the event WebSocket
//   snapshot  GET /api/v1/overview: hosts, VMs, links, topology, migrations, latestSeq
//   stream    WebSocket /api/v1/events?since=latestSeq: each event updates the
//             state; a render is scheduled for the next animation frame
//   render    the cytoscape graph (sites ⊃ hosts ⊃ VMs, links, inferred
//             application edges, migrations) and the side panels, plus counts
//             in #summary's data-* attributes (the browser test reads them)
'use strict';

(() => {
  const API = '/api/v1';
  const TOKEN_KEY = 'vnet-api-token';
  const MAX_EVENTS_SHOWN = 40;
  const SHOWN_EVENT_TYPES = ['host-changed', 'host-removed', 'vm-changed', 'vm-removed', 'link-changed', 'link-removed', 'rules-changed',
    'topology-changed', 'migration-changed', 'placement-changed', 'decision', 'operator-action'];

  const state = {
    hosts: new Map(),
    vms: new Map(),
    links: new Map(),
    migrations: new Map(),
    topology: { class: 'none', centre: null, confidence: 0, edges: [], detectedAt: null },
    seq: 0,
    events: [],
  };

  let token = null;
  let cy = null;
  let socket = null;
  let reconnectDelay = 500;
  let renderPending = false;
  let structureKey = '';
  let loaded = false;
  let labelScale = 1;

  // ---- token ---------------------------------------------------------------

  function readToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      const t = decodeURIComponent(m[1]);
      sessionStorage.setItem(TOKEN_KEY, t);
      history.replaceState(null, '', location.pathname + location.search);
      return t;
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function askForToken(message) {
    const dialog = document.getElementById('token-dialog');
    document.getElementById('token-error').textContent = message || '';
    if (!dialog.open) dialog.showModal();
  }

  document.getElementById('token-form').addEventListener('submit', () => {
    const t = document.getElementById('token-input').value.trim();
    if (t === '') return;
    token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    void start();
  });

  // ---- API -----------------------------------------------------------------

  class AuthRefused extends Error {}

  async function api(path) {
    const res = await fetch(API + path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (res.status === 401) throw new AuthRefused('the controller refused the token');
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  async function loadSnapshot() {
    const o = await api('/overview');
    state.hosts = new Map(o.hosts.map((h) => [h.id, h]));
    state.vms = new Map(o.vms.map((v) => [v.mac, v]));
    state.links = new Map(o.links.map((l) => [linkId(l.a, l.b), l]));
    state.migrations = new Map(o.migrations.map((m) => [m.id, m]));
    state.topology = o.topology;
    state.seq = o.latestSeq;
    // The recent history, for the events panel.
    // (the window is as long as the page limit, so it is returned whole; traffic reports are left out)
    const recent = await api(`/events?since=${Math.max(0, o.latestSeq - 1000)}&limit=1000&types=${SHOWN_EVENT_TYPES.join(',')}`);
    state.events = recent.events.filter((e) => e.seq <= o.latestSeq).slice(-MAX_EVENTS_SHOWN);
    loaded = true;
    scheduleRender();
  }

  function connectStream() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${proto}://${location.host}${API}/events?since=${state.seq}&token=${encodeURIComponent(token)}`;
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      reconnectDelay = 500;
      setConnection('live');
    };
    ws.onmessage = (msg) => {
      let m;
      try {
        m = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (m.kind === 'hello' && m.gap) {
        // Events were dropped from the history while we were away: start over from a snapshot.
        ws.close();
        void loadSnapshot().then(() => connectStream(), () => scheduleReconnect());
        return;
      }
      if (m.kind === 'event') applyEvent(m.event);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      setConnection('offline');
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    const delay = reconnectDelay;
    reconnectDelay = Math.min(reconnectDelay * 2, 10_000);
    setTimeout(async () => {
      try {
        // A failed upgrade does not say why; ask the API, which does (401 → ask for a token).
        if (loaded) await api('/whoami');
        else await loadSnapshot();
        connectStream();
      } catch (err) {
        if (err instanceof AuthRefused) askForToken('The controller refused this token.');
        else scheduleReconnect();
      }
    }, delay);
  }

  function setConnection(s) {
    const el = document.getElementById('connection');
    el.dataset.state = s;
    el.textContent = s === 'live' ? 'live' : s === 'offline' ? 'reconnecting…' : s;
    el.className = `pill ${s === 'live' ? 'pill-live' : 'pill-off'}`;
  }

  // ---- state updates -------------------------------------------------------

  function linkId(a, b) {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  function applyEvent(e) {
    const p = e.payload;
    switch (e.type) {
      case 'host-changed': state.hosts.set(p.host.id, p.host); break;
      case 'host-removed': state.hosts.delete(p.id); break;
      case 'vm-changed': state.vms.set(p.vm.mac, p.vm); break;
      case 'vm-removed': state.vms.delete(p.mac); break;
      case 'link-changed': state.links.set(linkId(p.link.a, p.link.b), p.link); break;
      case 'link-removed': state.links.delete(linkId(p.a, p.b)); break;
      case 'traffic-updated':
        for (const r of p.links) {
          const l = state.links.get(linkId(r.a, r.b));
          if (l) Object.assign(l, { bytes: r.bytes, frames: r.frames, bytesPerSec: r.bytesPerSec, framesPerSec: r.framesPerSec });
        }
        break;
      case 'topology-changed': state.topology = p.topology; break;
      case 'migration-changed': state.migrations.set(p.migration.id, p.migration); break;
      default: break;
    }
    state.seq = Math.max(state.seq, e.seq);
    if (e.type !== 'traffic-updated') {
      state.events.push(e);
      if (state.events.length > MAX_EVENTS_SHOWN) state.events.shift();
    }
    scheduleRender();
  }

  // ---- formatting ----------------------------------------------------------

  function rate(bytesPerSec) {
    const bits = bytesPerSec * 8;
    if (bits < 1) return '';
    const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
    let v = bits;
    let i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function vmLabel(mac) {
    const vm = state.vms.get(mac);
    return vm && vm.name ? vm.name : mac.slice(-5);
  }

  function describeEvent(e) {
    const p = e.payload;
    switch (e.type) {
      case 'host-changed': return `host ${p.host.id} ${p.host.state}`;
      case 'host-removed': return `host ${p.id} removed`;
      case 'vm-changed': return `VM ${vmLabel(p.vm.mac)} on ${p.vm.host ?? '—'} (${p.vm.state})`;
      case 'vm-removed': return `VM ${p.mac} removed`;
      case 'link-changed': return `${p.link.kind} link ${p.link.a}–${p.link.b} ${p.link.state}`;
      case 'link-removed': return `${p.kind} link ${p.a}–${p.b} removed`;
      case 'rules-changed': return `rules on ${p.host} → v${p.version}`;
      case 'topology-changed': return `topology: ${p.topology.class}`;
      case 'migration-changed': return `migration ${vmLabel(p.migration.vm)} → ${p.migration.to}: ${p.migration.phase} ${Math.round(p.migration.progress * 100)}%`;
      case 'placement-changed': return `placement: ${p.placement.moves.length} move(s) proposed`;
      case 'decision': return `decision: ${p.decision.reason}`;
      case 'operator-action': return `${p.actor}: ${p.action}`;
      default: return e.type;
    }
  }

  // ---- layout --------------------------------------------------------------

  const VM_STEP = 58;
  const HOST_GAP = 60;

  function groupHosts() {
    const sites = new Map();
    for (const h of [...state.hosts.values()].sort((x, y) => (x.id < y.id ? -1 : 1))) {
      const s = h.site ?? '(no site)';
      if (!sites.has(s)) sites.set(s, []);
      sites.get(s).push(h);
    }
    return sites;
  }

  function vmsOf(hostId) {
    return [...state.vms.values()].filter((v) => v.host === hostId).sort((x, y) => (x.mac < y.mac ? -1 : 1));
  }

  /** A host's box: VMs in up to three columns. */
  function hostBox(hostId) {
    const n = vmsOf(hostId).length;
    const cols = Math.max(1, Math.min(3, n));
    return { cols, w: cols * VM_STEP, h: Math.max(1, Math.ceil(n / cols)) * VM_STEP };
  }

  /**
   * A site's hosts in a grid (rows of at most ~sqrt(n) hosts), with each host's offset from the
   * site centre. A hub goes alone in the bottom row, under a single row of up to six spokes, so
   * the star backbone fans out instead of crossing hosts.
   */
  function siteGrid(hosts) {
    const hub = hosts.find((h) => h.role === 'hub');
    const others = hub !== undefined && hosts.length > 1 ? hosts.filter((h) => h !== hub) : hosts;
    const perRow = others.length <= 3 || (others !== hosts && others.length <= 6) ? others.length : Math.ceil(Math.sqrt(others.length));
    const rows = [];
    for (let i = 0; i < others.length; i += perRow) rows.push(others.slice(i, i + perRow));
    if (others !== hosts) rows.push([hub]);
    const rowDims = rows.map((r) => ({
      w: r.reduce((sum, h) => sum + hostBox(h.id).w + HOST_GAP, 0),
      h: Math.max(...r.map((h) => hostBox(h.id).h)) + (r.length === 1 && r[0].role === 'hub' && others !== hosts ? HOST_GAP * 2.5 : HOST_GAP),
    }));
    const w = Math.max(...rowDims.map((d) => d.w));
    const h = rowDims.reduce((sum, d) => sum + d.h, 0);
    const offsets = new Map();
    let y = -h / 2;
    rows.forEach((r, ri) => {
      let x = -rowDims[ri].w / 2;
      for (const host of r) {
        const b = hostBox(host.id);
        // Rows are centred vertically, except the hub's, which sits at the bottom of its taller row.
        const cy0 = host === hub && others !== hosts ? y + rowDims[ri].h - HOST_GAP / 2 - b.h / 2 : y + rowDims[ri].h / 2;
        offsets.set(host.id, { x: x + HOST_GAP / 2 + b.w / 2, y: cy0 });
        x += b.w + HOST_GAP;
      }
      y += rowDims[ri].h;
    });
    return { w, h, offsets };
  }

  /**
   * Positions of the leaf nodes (VMs, and hosts without VMs). With a hub and up to four other
   * sites: the hub's site at the bottom, the others on an arc above it (backbone links fan out,
   * fast paths arc across the top). Otherwise the sites on an ellipse, the hub's site in the middle.
   * The ellipse follows the graph panel's aspect ratio so the drawing fills it.
   */
  function computePositions(sites) {
    const pos = {};
    const siteNames = [...sites.keys()];
    const hubSite = siteNames.find((s) => sites.get(s).some((h) => h.role === 'hub'));
    const grids = new Map([...sites].map(([s, hosts]) => [s, siteGrid(hosts)]));
    const ring = siteNames.filter((s) => s !== hubSite || siteNames.length === 1);
    const maxW = Math.max(160, ...[...grids.values()].map((g) => g.w));
    const maxH = Math.max(100, ...[...grids.values()].map((g) => g.h));
    const aspect = Math.min(2.2, Math.max(1, cy.width() / Math.max(1, cy.height())));
    const centres = new Map();
    if (hubSite !== undefined && siteNames.length > 1 && ring.length <= 4) {
      // Adjacent sites on the arc at least a site's width plus a gap apart.
      const rx = ring.length === 1 ? 0 : ring.length === 2 ? (maxW + 140) / 1.9 : (maxW + 60) * (ring.length - 1) * 0.45 + 40;
      const ry = Math.max(maxH + 180, (rx * 0.9) / aspect);
      centres.set(hubSite, { x: 0, y: ry * 0.4 });
      ring.forEach((s, i) => {
        const angle = ring.length === 1 ? -Math.PI / 2 : -Math.PI + Math.PI * (0.1 + (0.8 * i) / (ring.length - 1));
        centres.set(s, { x: rx * Math.cos(angle), y: ry * Math.sin(angle) - ry * 0.3 });
      });
    } else if (ring.length > 1 || hubSite !== undefined) {
      const rx = Math.max(maxW * 0.9 + 120, ((maxW + 80) * ring.length) / (2 * Math.PI) * 1.3);
      const ry = Math.max(maxH + 120, rx / aspect);
      if (hubSite !== undefined && siteNames.length > 1) centres.set(hubSite, { x: 0, y: 0 });
      ring.forEach((s, i) => {
        const angle = -Math.PI / 2 - Math.PI / ring.length + (2 * Math.PI * i) / ring.length;
        centres.set(s, { x: rx * Math.cos(angle), y: ry * Math.sin(angle) });
      });
    } else {
      centres.set(siteNames[0], { x: 0, y: 0 });
    }
    for (const [s, hosts] of sites) {
      const c = centres.get(s);
      const g = grids.get(s);
      for (const h of hosts) {
        const o = g.offsets.get(h.id);
        const hc = { x: c.x + o.x, y: c.y + o.y };
        const vms = vmsOf(h.id);
        if (vms.length === 0) pos[`host:${h.id}`] = hc;
        const { cols } = hostBox(h.id);
        const rows = Math.ceil(vms.length / cols);
        vms.forEach((v, i) => {
          pos[`vm:${v.mac}`] = {
            x: hc.x + ((i % cols) - (cols - 1) / 2) * VM_STEP,
            y: hc.y + (Math.floor(i / cols) - (rows - 1) / 2) * VM_STEP,
          };
        });
      }
    }
    return pos;
  }

  // ---- graph ---------------------------------------------------------------

  /** The cytoscape style sheet, with label sizes multiplied by `k`. */
  function styleSheet(k) {
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

  function desiredElements(sites) {
    const els = [];
    const showApp = document.getElementById('show-app').checked;
    for (const [s, hosts] of sites) {
      els.push({ group: 'nodes', data: { id: `site:${s}`, label: s }, classes: 'site' });
      for (const h of hosts) {
        const cls = ['host', h.role === 'hub' ? 'hub' : '', h.state === 'down' ? 'down' : ''].filter(Boolean).join(' ');
        els.push({ group: 'nodes', data: { id: `host:${h.id}`, parent: `site:${s}`, label: h.id }, classes: cls });
      }
    }
    const migrating = new Set([...state.migrations.values()].filter((m) => m.state === 'running').map((m) => m.vm));
    for (const v of state.vms.values()) {
      if (v.host === null || !state.hosts.has(v.host)) continue;
      const cls = ['vm', migrating.has(v.mac) || v.state === 'migrating' ? 'migrating' : '', v.state === 'stopped' ? 'stopped' : '',
        state.topology.centre === v.mac ? 'centre' : ''].filter(Boolean).join(' ');
      els.push({ group: 'nodes', data: { id: `vm:${v.mac}`, parent: `host:${v.host}`, label: v.name ?? v.mac.slice(-5) }, classes: cls });
    }
    const maxRate = Math.max(1, ...[...state.links.values()].map((l) => l.bytesPerSec));
    for (const l of state.links.values()) {
      if (!state.hosts.has(l.a) || !state.hosts.has(l.b)) continue;
      const scaled = l.bytesPerSec > 0 ? Math.log1p(l.bytesPerSec) / Math.log1p(maxRate) : 0;
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

  function syncGraph() {
    const sites = groupHosts();
    const els = desiredElements(sites);
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
    bendLongEdges();
    const graph = document.getElementById('graph');
    graph.dataset.nodes = String(cy.nodes().length);
    graph.dataset.edges = String(cy.edges('.link').length);
    const key = JSON.stringify([...sites].map(([s, hosts]) => [s, hosts.map((h) => [h.id, vmsOf(h.id).map((v) => v.mac)])]));
    if (key !== structureKey) {
      structureKey = key;
      cy.layout({ name: 'preset', positions: computePositions(sites), fit: true, padding: 50, animate: false }).run();
      fitView();
      bendLongEdges();
    }
  }

  /**
   * Fit the drawing to the panel, no closer than 1.3x; when it must be drawn small, grow the labels
   * (up to 1.8x) so they stay readable.
   */
  function fitView() {
    cy.fit(undefined, 50);
    if (cy.zoom() > 1.3) {
      cy.zoom(1.3);
      cy.center();
    }
    const scale = Math.min(1.8, Math.max(1, 0.9 / cy.zoom()));
    if (Math.abs(scale - labelScale) > 0.05) {
      labelScale = scale;
      cy.style(styleSheet(scale));
    }
  }

  /** Fast-path links arc above the straight line, migrations below, by a fifth of their length, so parallel ones stay apart. */
  function bendLongEdges() {
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

  // ---- panels --------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'style') e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function renderSummary() {
    const hosts = [...state.hosts.values()];
    const links = [...state.links.values()];
    const sites = new Set(hosts.map((h) => h.site ?? '(no site)'));
    const fast = links.filter((l) => l.kind === 'fast-path').length;
    const running = [...state.migrations.values()].filter((m) => m.state === 'running').length;
    const s = document.getElementById('summary');
    Object.assign(s.dataset, {
      sites: String(sites.size),
      hosts: String(hosts.length),
      hostsUp: String(hosts.filter((h) => h.state === 'up').length),
      vms: String(state.vms.size),
      links: String(links.length),
      fastPathLinks: String(fast),
      migrations: String(running),
      seq: String(state.seq),
      topologyClass: state.topology.class,
    });
    const b = (n) => el('b', null, String(n));
    s.replaceChildren(
      b(sites.size), ` site${sites.size === 1 ? '' : 's'} · `,
      b(hosts.length), ` host${hosts.length === 1 ? '' : 's'} (${hosts.filter((h) => h.state === 'up').length} up) · `,
      b(state.vms.size), ` VM${state.vms.size === 1 ? '' : 's'} · `,
      b(links.length), ` link${links.length === 1 ? '' : 's'} (${fast} fast-path)`,
      running > 0 ? ` · ${running} migrating` : '',
    );
  }

  function renderTopology() {
    const t = state.topology;
    document.getElementById('topology-class').textContent = t.class;
    const parts = [];
    if (t.class !== 'none') parts.push(`confidence ${Math.round(t.confidence * 100)}%`);
    if (t.centre) parts.push(`centre ${vmLabel(t.centre)}`);
    if (t.edges.length > 0) parts.push(`${t.edges.length} edge${t.edges.length === 1 ? '' : 's'}`);
    if (t.detectedAt) parts.push(`since ${clock(t.detectedAt)}`);
    document.getElementById('topology-detail').textContent = parts.join(' · ');
  }

  function renderMigrations() {
    const list = document.getElementById('migrations');
    const ms = [...state.migrations.values()].sort((a, b) => b.startedAt - a.startedAt).slice(0, 8);
    if (ms.length === 0) {
      list.replaceChildren(el('li', { class: 'muted' }, 'none'));
      return;
    }
    list.replaceChildren(
      ...ms.map((m) => {
        const pct = Math.round(Math.max(0, Math.min(1, m.progress)) * 100);
        const eta = m.state === 'running' && m.etaMs !== null ? ` · ETA ${Math.ceil(m.etaMs / 1000)} s` : '';
        const status = m.state === 'running' ? `${m.phase} · ${pct}%${eta}` : m.state === 'failed' ? `failed: ${m.error ?? ''}` : m.state;
        return el(
          'li',
          { class: `migration ${m.state}`, 'data-migration': m.id, 'data-progress': String(pct) },
          el('div', { class: 'what' }, el('span', null, `${vmLabel(m.vm)}: ${m.from} → ${m.to}`), el('span', { class: 'phase' }, status)),
          el('div', { class: 'bar' }, el('div', { style: `width:${pct}%` })),
        );
      }),
    );
  }

  function renderLinks() {
    const body = document.querySelector('#links tbody');
    if (state.links.size === 0) {
      body.replaceChildren(el('tr', null, el('td', { class: 'muted', colspan: '4' }, 'none')));
      return;
    }
    const links = [...state.links.values()].sort((x, y) => (x.kind === y.kind ? (linkId(x.a, x.b) < linkId(y.a, y.b) ? -1 : 1) : x.kind === 'fast-path' ? -1 : 1));
    body.replaceChildren(
      ...links.map((l) =>
        el('tr', { title: l.reason },
          el('td', null, `${l.a} – ${l.b}`),
          el('td', { class: `kind-${l.kind}` }, l.kind),
          el('td', { class: `state-${l.state}` }, l.state),
          el('td', { class: 'num' }, rate(l.bytesPerSec) || '—'),
        ),
      ),
    );
  }

  function renderEvents() {
    const list = document.getElementById('events');
    list.replaceChildren(
      ...[...state.events].reverse().map((e) => el('li', { 'data-seq': String(e.seq) }, el('time', null, clock(e.time)), el('span', null, describeEvent(e)))),
    );
  }

  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => {
      renderPending = false;
      syncGraph();
      renderSummary();
      renderTopology();
      renderMigrations();
      renderLinks();
      renderEvents();
      renderSelection();
      document.getElementById('empty').hidden = state.hosts.size > 0;
      document.body.dataset.ready = 'true';
    });
  }

  // ---- selection -------------------------------------------------------------

  let selected = null; // { kind: 'host' | 'vm' | 'link', key }

  function renderSelection() {
    const card = document.getElementById('selection-card');
    const rows = selectionRows();
    card.hidden = rows === null;
    if (rows === null) return;
    document.getElementById('selection-title').textContent = rows.title;
    document.getElementById('selection').replaceChildren(...rows.items.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, String(v))]));
  }

  function selectionRows() {
    if (selected === null) return null;
    if (selected.kind === 'host') {
      const h = state.hosts.get(selected.key);
      if (!h) return null;
      return {
        title: `Host ${h.id}`,
        items: [
          ['site', h.site ?? '—'], ['role', h.role], ['state', h.state],
          ['last seen', h.lastSeen ? clock(h.lastSeen) : 'never'],
          ['listens on', h.addresses.map((a) => `${a.transport}://${a.host}:${a.port}`).join(', ') || '—'],
          ['VMs', vmsOf(h.id).map((v) => v.name ?? v.mac).join(', ') || 'none'],
        ],
      };
    }
    if (selected.kind === 'vm') {
      const v = state.vms.get(selected.key);
      if (!v) return null;
      return { title: `VM ${v.name ?? v.mac}`, items: [['MAC', v.mac], ['IP', v.ip ?? '—'], ['host', v.host ?? '—'], ['state', v.state]] };
    }
    const l = state.links.get(selected.key);
    if (!l) return null;
    return {
      title: `Link ${l.a} – ${l.b}`,
      items: [
        ['kind', l.kind], ['state', l.state], ['requested by', l.actor ?? l.requestedBy], ['reason', l.reason || '—'],
        ['rate', `${rate(l.bytesPerSec) || '0 bit/s'}, ${Math.round(l.framesPerSec)} frames/s`],
        ['total', `${(l.bytes / 1e6).toFixed(1)} MB, ${l.frames} frames`],
      ],
    };
  }

  function onTap(evt) {
    const t = evt.target;
    if (t === cy) selected = null;
    else if (t.hasClass('host')) selected = { kind: 'host', key: t.id().slice('host:'.length) };
    else if (t.hasClass('vm')) selected = { kind: 'vm', key: t.id().slice('vm:'.length) };
    else if (t.hasClass('link')) selected = { kind: 'link', key: t.id().slice('link:'.length) };
    else return;
    renderSelection();
  }

  document.getElementById('show-app').addEventListener('change', () => scheduleRender());

  // ---- start ---------------------------------------------------------------

  async function start() {
    if (!token) {
      askForToken('');
      return;
    }
    try {
      await loadSnapshot();
    } catch (err) {
      if (err instanceof AuthRefused) askForToken('The controller refused this token.');
      else {
        setConnection('offline');
        scheduleReconnect();
      }
      return;
    }
    const dialog = document.getElementById('token-dialog');
    if (dialog.open) dialog.close();
    connectStream();
  }

  cy = cytoscape({
    container: document.getElementById('graph'),
    style: styleSheet(1),
    elements: [],
    layout: { name: 'preset' },
    minZoom: 0.2,
    maxZoom: 3,
  });
  cy.on('tap', onTap);
  // For debugging from the console (and the browser test): the cytoscape instance.
  window.vnetGraph = cy;
  window.addEventListener('resize', () => fitView());
  token = readToken();
  void start();
})();
