// The graph's edges at any scale: each link and inferred application edge is drawn on its own
// while there are few; when there are many they are bundled, one edge per pair of hosts or sites
// with the count and the summed rate, and drawn in full only where the operator looks:
//
//   links   on their own up to LINK_DETAIL_MAX links and 8 sites; beyond, one bundle per site
//           pair (links inside a site stay single)
//   app     on their own up to APP_DETAIL_MAX edges; beyond, one bundle per host pair, or per
//           site pair when that would still be more than APP_BUNDLE_MAX (edges inside one host,
//           or one site, leave the network picture: the traffic matrix shows them)
//   detail  always in full: what touches the site zoomed to (view.focus) and the selected VM or
//           host. A collapsed site is the end of everything inside it.
//   modes   view.edgeMode: auto (the above), all (nothing bundled), bundled (no detail
//           exceptions), off (no application edges)
import { rate } from './format.js';
import { linkId, state } from './state.js';

export const LINK_DETAIL_MAX = 30;
export const APP_DETAIL_MAX = 40;
const APP_BUNDLE_MAX = 40;

/** What each drawn bundle holds, for the selection panel: id → { title, items }. */
export const bundles = new Map();

const siteOf = (hostId) => state.hosts.get(hostId)?.site ?? '(no site)';
const pair = (x, y) => (x < y ? [x, y] : [y, x]);

/** The node a host's things attach to: the host, or its site when collapsed. */
function hostEnd(hostId, view) {
  const s = siteOf(hostId);
  return view.collapsed.has(s) ? `site:${s}` : `host:${hostId}`;
}

function addBundle(groups, key, ends, member) {
  if (!groups.has(key)) groups.set(key, { ends, members: [] });
  groups.get(key).members.push(member);
}

function linkEdge(l, end) {
  return {
    group: 'edges',
    data: { id: `link:${linkId(l.a, l.b)}`, source: end(l.a), target: end(l.b), width: l.width, label: rate(l.bytesPerSec), arc: 0 },
    classes: `link ${l.kind} ${l.state}`,
  };
}

/** The links: single or bundled per site pair. `maxRate`: the busiest link's rate (for thickness). */
function linkElements(view) {
  const links = [...state.links.values()].filter((l) => state.hosts.has(l.a) && state.hosts.has(l.b));
  const sites = new Set([...state.hosts.values()].map((h) => h.site ?? '(no site)'));
  const many = view.edgeMode !== 'all' && (links.length > LINK_DETAIL_MAX || sites.size > 8);
  const maxRate = Math.max(1, ...links.map((l) => l.bytesPerSec));
  // Thickness by the square root of the share of the busiest link: busy links stand out, quiet ones stay visible.
  const widthOf = (bps, base) => base + 8 * (bps > 0 ? Math.sqrt(Math.min(1, bps / maxRate)) : 0);
  const end = (h) => hostEnd(h, view);
  const els = [];
  const groups = new Map();
  for (const l of links) {
    const [sa, sb] = pair(siteOf(l.a), siteOf(l.b));
    const collapsedEnd = view.collapsed.has(sa) || view.collapsed.has(sb);
    const detail = !many || sa === sb || (view.edgeMode !== 'bundled' && (view.focus === sa || view.focus === sb));
    if (sa === sb && collapsedEnd) continue;
    if (detail && !collapsedEnd) els.push(linkEdge({ ...l, width: widthOf(l.bytesPerSec, l.kind === 'fast-path' ? 3 : 2) }, end));
    else addBundle(groups, `${sa}|${sb}`, [`site:${sa}`, `site:${sb}`], l);
  }
  for (const [key, g] of groups) {
    if (g.members.length === 1 && !g.ends.some((e) => view.collapsed.has(e.slice(5)))) {
      const l = g.members[0];
      els.push(linkEdge({ ...l, width: widthOf(l.bytesPerSec, l.kind === 'fast-path' ? 3 : 2) }, end));
      continue;
    }
    const bps = g.members.reduce((s, l) => s + l.bytesPerSec, 0);
    const fast = g.members.filter((l) => l.kind === 'fast-path').length;
    const id = `bundle:link:${key}`;
    bundles.set(id, {
      title: `${g.members.length} links: ${key.replace('|', ' – ')}`,
      items: g.members.map((l) => [`${l.a} – ${l.b}`, `${l.kind}, ${l.state}${l.bytesPerSec > 0 ? `, ${rate(l.bytesPerSec)}` : ''}`]),
    });
    els.push({
      group: 'edges',
      data: { id, source: g.ends[0], target: g.ends[1], width: widthOf(bps / g.members.length, 3) + Math.log2(g.members.length), label: `${g.members.length} links${bps > 0 ? ` · ${rate(bps)}` : ''}` },
      classes: `link-bundle${fast > 0 ? ' has-fast' : ''}`,
    });
  }
  return els;
}

/** Whether an application edge between VMs `va` and `vb` is drawn in full whatever the count. */
function inDetail(va, vb, view) {
  if (view.edgeMode === 'bundled') return false;
  const sel = view.selected;
  if (sel !== null && sel.kind === 'vm' && (va.mac === sel.key || vb.mac === sel.key)) return true;
  if (sel !== null && sel.kind === 'host' && (va.host === sel.key || vb.host === sel.key)) return true;
  return view.focus !== null && (siteOf(va.host) === view.focus || siteOf(vb.host) === view.focus);
}

/** The inferred application edges: single or bundled per host (or site) pair. */
function appElements(view) {
  if (view.edgeMode === 'off') return [];
  const edges = state.topology.edges.filter((e) => state.vms.get(e.a)?.host && state.vms.get(e.b)?.host
    && state.hosts.has(state.vms.get(e.a).host) && state.hosts.has(state.vms.get(e.b).host));
  const many = view.edgeMode !== 'all' && edges.length > APP_DETAIL_MAX;
  const single = [];
  const rest = [];
  for (const e of edges) {
    const va = state.vms.get(e.a);
    const vb = state.vms.get(e.b);
    const hidden = view.collapsed.has(siteOf(va.host)) || view.collapsed.has(siteOf(vb.host));
    if (!hidden && (!many || inDetail(va, vb, view))) single.push(e);
    else rest.push({ e, va, vb });
  }
  const byHost = (x) => hostEnd(x.host, view);
  const hostPairs = new Set(rest.map(({ va, vb }) => pair(byHost(va), byHost(vb)).join('|')));
  const end = hostPairs.size > APP_BUNDLE_MAX ? (x) => `site:${siteOf(x.host)}` : byHost;
  const groups = new Map();
  for (const { e, va, vb } of rest) {
    const ends = pair(end(va), end(vb));
    if (ends[0] !== ends[1]) addBundle(groups, ends.join('|'), ends, e);
  }
  const els = single.map((e) => ({
    group: 'edges',
    data: { id: `app:${linkId(e.a, e.b)}`, source: `vm:${e.a}`, target: `vm:${e.b}`, width: 1 + 3 * e.weight },
    classes: 'app',
  }));
  const name = (mac) => state.vms.get(mac)?.name ?? mac;
  for (const [key, g] of groups) {
    const weight = g.members.reduce((s, e) => s + e.weight, 0);
    const id = `bundle:app:${key}`;
    bundles.set(id, {
      title: `${g.members.length} application edge${g.members.length === 1 ? '' : 's'}: ${key.replaceAll(/(site|host):/g, '').replace('|', ' – ')}`,
      items: g.members.map((e) => [`${name(e.a)} – ${name(e.b)}`, `weight ${e.weight.toFixed(2)}${e.bytesPerSec > 0 ? `, ${rate(e.bytesPerSec)}` : ''}`]),
    });
    els.push({
      group: 'edges',
      data: { id, source: g.ends[0], target: g.ends[1], width: 1.5 + 2 * Math.min(4, weight), label: g.members.length > 1 ? String(g.members.length) : '' },
      classes: 'app-bundle',
    });
  }
  return els;
}

/** The edges to draw for `view` ({ collapsed, focus, edgeMode, selected }), bundles included. */
export function edgeElements(view) {
  bundles.clear();
  return [...linkElements(view), ...appElements(view)];
}
