// The side panels and the summary line: built with DOM nodes and textContent (names from the
// controller are never parsed as HTML).
import { bundles } from './edges.js';
import { clock, describeEvent, rate, vmLabel } from './format.js';
import { groupHosts } from './layout.js';
import { linkId, state, vmsOf } from './state.js';

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

export function renderSummary() {
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

export function renderTopology() {
  const t = state.topology;
  document.getElementById('topology-class').textContent = t.class;
  const parts = [];
  if (t.class !== 'none') parts.push(`confidence ${Math.round(t.confidence * 100)}%`);
  if (t.centre) parts.push(`centre ${vmLabel(t.centre)}`);
  if (t.edges.length > 0) {
    const total = t.edges.reduce((s, e) => s + e.bytesPerSec, 0);
    parts.push(`${t.edges.length} edge${t.edges.length === 1 ? '' : 's'}, ${rate(total) || '0 bit/s'} now`);
  }
  if (t.detectedAt) parts.push(`since ${clock(t.detectedAt)}`);
  if (t.weightsAt) parts.push(`weights at ${clock(t.weightsAt)}`);
  document.getElementById('topology-detail').textContent = parts.join(' · ');
}

/** The engine's figures while it runs; the cutover's once there is one. */
function migrationDetail(m) {
  const parts = [];
  if (m.step) parts.push(m.step);
  if (m.rule) parts.push(m.rule);
  if (m.state === 'running' && m.iteration !== null && m.iteration !== undefined) {
    parts.push(`round ${m.iteration}`, `${m.pagesLeft ?? '?'} pages left`, `${Math.round(m.dirtyRate ?? 0)} pages/s dirtied`);
  }
  const c = m.cutover;
  if (c) {
    parts.push(`cutover ${c.timeMs === null ? '…' : `${c.timeMs} ms`}`, `held ${c.held}`, `flushed ${c.flushed}`, `relayed ${c.relayed}`, `lost ${c.lost}`);
  }
  return parts.join(' · ');
}

export function renderMigrations() {
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
      const status = m.state === 'running' ? `${m.phase} · ${pct}%${eta}` : m.state === 'failed' || m.state === 'cancelled' ? `${m.state}: ${m.error ?? ''}` : m.state;
      return el(
        'li',
        { class: `migration ${m.state}`, 'data-migration': m.id, 'data-progress': String(pct), 'data-step': m.step ?? '' },
        el('div', { class: 'what' }, el('span', null, `${vmLabel(m.vm)}: ${m.from} → ${m.to}`), el('span', { class: 'phase' }, status)),
        el('div', { class: 'bar' }, el('div', { style: `width:${pct}%` })),
        el('div', { class: 'detail' }, migrationDetail(m)),
      );
    }),
  );
}

export function renderLinks() {
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

export function renderEvents() {
  const list = document.getElementById('events');
  list.replaceChildren(
    ...[...state.events].reverse().map((e) => el('li', { 'data-seq': String(e.seq) }, el('time', null, clock(e.time)), el('span', null, describeEvent(e)))),
  );
}

export function renderSelection(selected) {
  const card = document.getElementById('selection-card');
  const rows = selectionRows(selected);
  card.hidden = rows === null;
  if (rows === null) return;
  document.getElementById('selection-title').textContent = rows.title;
  document.getElementById('selection').replaceChildren(...rows.items.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, String(v))]));
}

/** The sites, each with its counts and buttons to zoom to it and to collapse (or open) it. */
let sitesKey = '';

export function renderSites(view) {
  const body = document.querySelector('#sites tbody');
  const sites = [...groupHosts()];
  // Rebuilt only when it changes, so a click on its buttons is not lost to a traffic update.
  const key = JSON.stringify([view.focus, [...view.collapsed], sites.map(([s, hosts]) => [s, hosts.map((h) => [h.id, vmsOf(h.id).length])])]);
  if (key === sitesKey) return;
  sitesKey = key;
  if (sites.length === 0) {
    body.replaceChildren(el('tr', null, el('td', { class: 'muted', colspan: '4' }, 'none')));
    return;
  }
  body.replaceChildren(
    ...sites.map(([s, hosts]) => {
      const collapsed = view.collapsed.has(s);
      return el('tr', { 'data-site': s, class: view.focus === s ? 'focus' : '' },
        el('td', null, s),
        el('td', { class: 'num' }, String(hosts.length)),
        el('td', { class: 'num' }, String(hosts.reduce((n, h) => n + vmsOf(h.id).length, 0))),
        el('td', { class: 'actions' },
          el('button', { type: 'button', 'data-site': s, 'data-action': 'zoom', disabled: collapsed ? '' : null }, 'zoom'),
          el('button', { type: 'button', 'data-site': s, 'data-action': 'collapse' }, collapsed ? 'open' : 'collapse')),
      );
    }),
  );
}

/** `tls://10.0.0.1:7000`, `tls://[fd00::1]:7000`: an IPv6 literal in brackets. */
export function endpointText(a) {
  return `${a.transport}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

function selectionRows(selected) {
  if (selected === null) return null;
  if (selected.kind === 'bundle') {
    const b = bundles.get(selected.key);
    return b === undefined ? null : { title: b.title, items: b.items };
  }
  if (selected.kind === 'site') {
    const hosts = groupHosts().get(selected.key);
    if (hosts === undefined) return null;
    return {
      title: `Site ${selected.key}`,
      items: [['hosts', hosts.map((h) => h.id).join(', ')], ['VMs', String(hosts.reduce((n, h) => n + vmsOf(h.id).length, 0))]],
    };
  }
  if (selected.kind === 'host') {
    const h = state.hosts.get(selected.key);
    if (!h) return null;
    return {
      title: `Host ${h.id}`,
      items: [
        ['site', h.site ?? '—'], ['role', h.role], ['state', h.state],
        h.role === 'hub' ? ['as a hub', h.hubState ?? '—'] : ['on hub', h.hub ?? '—'],
        ['last seen', h.lastSeen ? clock(h.lastSeen) : 'never'],
        ['listens on', h.addresses.map(endpointText).join(', ') || '—'],
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

export function renderPlacement() {
  const p = state.placement;
  const card = document.getElementById('placement-card');
  // Under a scheduling policy the card always shows the policy and its scores; advice shows only proposals.
  card.hidden = p.moves.length === 0 && !p.policy;
  if (card.hidden) return;
  const unit = p.unit ? ` ${p.unit}` : '';
  document.getElementById('placement-detail').textContent = p.policy
    ? `policy ${p.policy}: score ${p.score.toFixed(2)} now, best ${p.proposedScore.toFixed(2)}${unit} (net gain must beat T = ${p.threshold.toFixed(2)})${p.policyTime !== undefined ? `; policy time ${new Date(p.policyTime).toISOString().slice(0, 16).replace('T', ' ')} UTC${p.speedup > 1 ? ` (×${p.speedup})` : ''}` : ''}${p.moves.length === 0 && p.refused ? `; ${p.refused}` : ''}`
    : `score ${p.score.toFixed(2)} → ${p.proposedScore.toFixed(2)} (moves must gain more than ${p.threshold.toFixed(2)})`;
  const running = new Set([...state.migrations.values()].filter((m) => m.state === 'running').map((m) => `${m.vm}>${m.to}`));
  document.getElementById('placement').replaceChildren(
    ...p.moves.map((m) => {
      const cost = m.cost === undefined ? '' : `, cost ${m.cost.toFixed(2)} (${(m.bytes / 2 ** 30).toFixed(2)} GiB, ${m.seconds.toFixed(0)} s)`;
      const started = running.has(`${m.vm}>${m.to}`) || m.state === 'started' ? ' (started)' : '';
      const parts = [el('span', null, `${vmLabel(m.vm)}: ${m.from} → ${m.to}${started}`), el('span', { class: 'phase' }, `+${m.gain.toFixed(2)}${cost}`)];
      if (p.policy) parts.push(el('div', { class: 'muted' }, m.reason));
      return el('li', { title: m.reason }, ...parts);
    }),
  );
}
