// vnet web page: the live topology. Plain browser JavaScript modules (no build step).
//
// Stages:
//   token     read once from the URL fragment (#token=…), kept in sessionStorage,
//             and removed from the address bar; sent only as the bearer header
//             on API calls and as ?token= on the event WebSocket
//   snapshot  GET /api/v1/overview: hosts, VMs, links, topology, migrations, latestSeq
//   stream    WebSocket /api/v1/events?since=latestSeq: each event updates the
//             state (state.js); a render is scheduled for the next animation frame
//   render    the cytoscape graph (graph.js, layout.js: sites ⊃ hosts ⊃ VMs, links,
//             inferred application edges, migrations) and the side panels
//             (panels.js), plus counts in #summary's data-* attributes (the
//             browser test reads them)
import { fitView, styleSheet, syncGraph } from './graph.js';
import { renderEvents, renderLinks, renderMigrations, renderPlacement, renderSelection, renderSummary, renderTopology } from './panels.js';
import { applyEvent, loadState, state } from './state.js';

const API = '/api/v1';
const TOKEN_KEY = 'vnet-api-token';
/** Event types the events panel shows (traffic reports arrive every period and are left out). */
const SHOWN_EVENT_TYPES = ['host-changed', 'host-removed', 'hub-changed', 'spoke-hub-changed', 'vm-changed', 'vm-removed', 'link-changed', 'link-removed', 'rules-changed',
  'topology-changed', 'migration-changed', 'placement-changed', 'decision', 'operator-action', 'security'];

let token = null;
let socket = null;
let reconnectDelay = 500;
let renderPending = false;
let loaded = false;
/** What the side panel details: { kind: 'host' | 'vm' | 'link', key } or null. */
let selected = null;
/** The drawing's own state (graph.js). */
const view = { structureKey: '', labelScale: 1 };

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
      // Events were dropped from the history while we were away (or it was reset): start over from a snapshot.
      socket = null;
      ws.close();
      void loadSnapshot().then(() => connectStream(), () => scheduleReconnect());
      return;
    }
    if (m.kind === 'event') {
      applyEvent(m.event);
      scheduleRender();
    }
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

// ---- render --------------------------------------------------------------

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    syncGraph(cy, view, document.getElementById('show-app').checked);
    renderSummary();
    renderTopology();
    renderMigrations();
    renderPlacement();
    renderLinks();
    renderEvents();
    renderSelection(selected);
    document.getElementById('empty').hidden = state.hosts.size > 0;
    document.body.dataset.ready = 'true';
  });
}

function onTap(evt) {
  const t = evt.target;
  if (t === cy) selected = null;
  else if (t.hasClass('host')) selected = { kind: 'host', key: t.id().slice('host:'.length) };
  else if (t.hasClass('vm')) selected = { kind: 'vm', key: t.id().slice('vm:'.length) };
  else if (t.hasClass('link')) selected = { kind: 'link', key: t.id().slice('link:'.length) };
  else return;
  renderSelection(selected);
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

// cytoscape is loaded by a classic <script> before this module (a global, from node_modules).
const cy = globalThis.cytoscape({
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
window.addEventListener('resize', () => fitView(cy, view));
token = readToken();
void start();
