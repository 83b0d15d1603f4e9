// vnet web page: the live topology. Plain browser JavaScript modules (no build step).
//
// Stages:
//   token     read once from the URL fragment (#token=…), kept in sessionStorage,
//             and removed from the address bar; sent only as the bearer header
//             on API calls and as ?token= on the event WebSocket
//   snapshot  GET /api/v1/overview: hosts, VMs, links, topology, migrations, latestSeq
//   stream    WebSocket /api/v1/events?since=latestSeq: each event updates the
//             state (state.js); a render is scheduled for the next animation frame
//   offline   when the stream closes (a controller restart, a network cut) the page
//             says so and retries with backoff (0.5 s doubling to 10 s); each retry
//             starts over from a snapshot, so it resumes with the new controller's state
//   render    the cytoscape graph (graph.js, layout.js, edges.js: sites ⊃ hosts ⊃ VMs,
//             links and inferred application edges, bundled when many, migrations) or
//             the traffic matrix (matrix.js, from GET /api/v1/matrix while it is shown),
//             and the side panels (panels.js), plus counts in #summary's data-*
//             attributes (the browser test reads them)
import { fitView, newView, restyleForZoom, syncGraph, zoomToSite } from './graph.js';
import { styleSheet } from './graph-style.js';
import { matrixView, readoutAt, renderMatrix, setMatrix } from './matrix.js';
import { renderEvents, renderLinks, renderMigrations, renderPlacement, renderSelection, renderSites, renderSummary, renderTopology } from './panels.js';
import { clock } from './format.js';
import { applyEvent, loadState, state } from './state.js';

const API = '/api/v1';
const TOKEN_KEY = 'vnet-api-token';
/** Event types the events panel shows (traffic reports arrive every period and are left out). */
const SHOWN_EVENT_TYPES = ['host-changed', 'host-removed', 'hub-changed', 'spoke-hub-changed', 'vm-changed', 'vm-removed', 'link-changed', 'link-removed', 'rules-changed',
  'topology-changed', 'migration-changed', 'placement-changed', 'decision', 'operator-action', 'security'];
const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 10_000;
/** The matrix is fetched at most this often while it is shown. */
const MATRIX_EVERY_MS = 1000;

let token = null;
let socket = null;
let retryMs = FIRST_RETRY_MS;
let attempt = 0;
let renderPending = false;
let lastMatrixFetch = 0;
let matrixTimer = null;
/** The drawing's own state (graph.js): collapsed sites, focus, edge mode, selection. */
const view = newView();

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
  // The recent history for the events panel: the window is as long as the page limit, so it comes whole.
  const recent = await api(`/events?since=${Math.max(0, o.latestSeq - 1000)}&limit=1000&types=${SHOWN_EVENT_TYPES.join(',')}`);
  loadState(o, recent.events);
  if (matrixShown()) setMatrix(await api('/matrix'));
  scheduleRender();
}

function connectStream() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${proto}://${location.host}${API}/events?since=${state.seq}&token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => {
    retryMs = FIRST_RETRY_MS;
    attempt = 0;
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
      // Events were dropped from the history while we were away (or it was reset): start over from a snapshot.
      socket = null;
      ws.close();
      void loadSnapshot().then(() => connectStream(), () => goOffline());
      return;
    }
    if (m.kind === 'event') {
      applyEvent(m.event);
      if (m.event.type === 'traffic-updated' || m.event.type === 'topology-changed') scheduleMatrixFetch();
      scheduleRender();
    }
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    goOffline();
  };
}

/** The controller is away: say so, and try again after the current backoff. */
function goOffline() {
  const delay = retryMs;
  retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
  attempt += 1;
  setConnection('offline', delay);
  setTimeout(async () => {
    setConnection('connecting');
    try {
      // Fresh state from whatever controller answers now (it may have restarted with another history).
      await loadSnapshot();
      connectStream();
    } catch (err) {
      if (err instanceof AuthRefused) askForToken('The controller refused this token.');
      else goOffline();
    }
  }, delay);
}

function setConnection(s, delayMs) {
  const el = document.getElementById('connection');
  el.dataset.state = s;
  el.dataset.attempt = String(attempt);
  el.textContent = s === 'live' ? 'live' : s === 'offline' ? 'disconnected' : 'connecting…';
  el.className = `pill ${s === 'live' ? 'pill-live' : 'pill-off'}`;
  const banner = document.getElementById('offline-banner');
  banner.hidden = s === 'live' || attempt === 0;
  document.body.classList.toggle('offline', !banner.hidden);
  if (s === 'offline') {
    banner.textContent = `Disconnected from the controller: retrying in ${Math.ceil(delayMs / 1000)} s (attempt ${attempt}). `
      + `What you see is the state at ${state.seq > 0 ? `event ${state.seq}` : 'the last snapshot'}, ${clock(Date.now())}.`;
  } else if (s === 'connecting') {
    banner.textContent = `Reconnecting to the controller (attempt ${attempt})…`;
  }
}

// ---- matrix --------------------------------------------------------------

function matrixShown() {
  return !document.getElementById('matrix-view').hidden;
}

/** Fetch the matrix now, or once MATRIX_EVERY_MS has passed since the last fetch. */
function scheduleMatrixFetch() {
  if (!matrixShown() || matrixTimer !== null) return;
  const wait = Math.max(0, lastMatrixFetch + MATRIX_EVERY_MS - Date.now());
  matrixTimer = setTimeout(async () => {
    lastMatrixFetch = Date.now();
    try {
      setMatrix(await api('/matrix'));
      scheduleRender();
    } catch {
      // The stream's close handles an absent controller.
    } finally {
      matrixTimer = null;
    }
  }, wait);
}

function showTab(matrix) {
  document.getElementById('tab-graph').setAttribute('aria-selected', String(!matrix));
  document.getElementById('tab-matrix').setAttribute('aria-selected', String(matrix));
  document.getElementById('graph-view').hidden = matrix;
  document.getElementById('graph-legend').hidden = matrix;
  document.querySelector('.graph-tools').hidden = matrix;
  document.getElementById('matrix-view').hidden = !matrix;
  document.querySelector('.matrix-tools').hidden = !matrix;
  if (matrix) scheduleMatrixFetch();
  else {
    // The panel may have changed size while the graph was hidden.
    cy.resize();
    if (view.focus !== null) zoomToSite(cy, view, view.focus);
    else fitView(cy, view);
  }
  scheduleRender();
}

// ---- render --------------------------------------------------------------

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    if (matrixShown()) renderMatrix();
    else syncGraph(cy, view);
    renderSummary();
    renderSites(view);
    renderTopology();
    renderMigrations();
    renderPlacement();
    renderLinks();
    renderEvents();
    renderSelection(view.selected);
    document.getElementById('empty').hidden = state.hosts.size > 0;
    document.body.dataset.ready = 'true';
  });
}

function onTap(evt) {
  const t = evt.target;
  if (t === cy) view.selected = null;
  else if (t.hasClass('host')) view.selected = { kind: 'host', key: t.id().slice('host:'.length) };
  else if (t.hasClass('vm')) view.selected = { kind: 'vm', key: t.id().slice('vm:'.length) };
  else if (t.hasClass('link')) view.selected = { kind: 'link', key: t.id().slice('link:'.length) };
  else if (t.hasClass('link-bundle') || t.hasClass('app-bundle')) view.selected = { kind: 'bundle', key: t.id() };
  else if (t.hasClass('site')) view.selected = { kind: 'site', key: t.id().slice('site:'.length) };
  else return;
  // The selected VM's or host's application edges are drawn in full (edges.js).
  scheduleRender();
}

/** Zoom to a site (its edges in full detail), or back to all sites (site null). */
function focusSite(site) {
  view.focus = site;
  syncGraph(cy, view);
  if (site === null) fitView(cy, view);
  else zoomToSite(cy, view, site);
  scheduleRender();
}

/** Collapse a site to one box, or open it again. */
function toggleSite(site) {
  if (view.collapsed.has(site)) view.collapsed.delete(site);
  else view.collapsed.add(site);
  if (view.focus === site) view.focus = null;
  scheduleRender();
}

document.getElementById('edge-mode').addEventListener('change', (e) => {
  view.edgeMode = e.target.value;
  scheduleRender();
});
document.getElementById('fit-all').addEventListener('click', () => focusSite(null));
document.getElementById('sites').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-site]');
  if (b === null) return;
  if (b.dataset.action === 'zoom') focusSite(b.dataset.site);
  else toggleSite(b.dataset.site);
});
document.getElementById('tab-graph').addEventListener('click', () => showTab(false));
document.getElementById('tab-matrix').addEventListener('click', () => showTab(true));
document.getElementById('matrix-order').addEventListener('change', () => scheduleRender());
const matrixCanvas = document.getElementById('matrix-canvas');
matrixCanvas.addEventListener('mousemove', (e) => {
  const r = matrixCanvas.getBoundingClientRect();
  readoutAt(e.clientX - r.left, e.clientY - r.top);
});
matrixCanvas.addEventListener('mouseleave', () => readoutAt(-1, -1));

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
    else goOffline();
    return;
  }
  const dialog = document.getElementById('token-dialog');
  if (dialog.open) dialog.close();
  connectStream();
}

// cytoscape is loaded by a classic <script> before this module (a global, from node_modules).
const cy = globalThis.cytoscape({
  container: document.getElementById('graph'),
  style: styleSheet(1, 1),
  elements: [],
  layout: { name: 'preset' },
  minZoom: 0.05,
  maxZoom: 3,
});
cy.on('tap', onTap);
cy.on('dbltap', 'node.site', (evt) => focusSite(evt.target.id().slice('site:'.length)));
let restylePending = false;
cy.on('zoom', () => {
  if (restylePending) return;
  restylePending = true;
  requestAnimationFrame(() => {
    restylePending = false;
    restyleForZoom(cy, view);
  });
});
// For debugging from the console (and the browser test): the cytoscape instance and the drawing's state.
window.vnetGraph = cy;
window.vnetView = view;
window.vnetMatrix = matrixView;
window.addEventListener('resize', () => {
  if (view.focus !== null) zoomToSite(cy, view, view.focus);
  else fitView(cy, view);
  scheduleRender();
});
token = readToken();
void start();
