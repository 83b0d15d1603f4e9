// Where the graph's nodes go: sites ⊃ hosts ⊃ VMs, placed by hand (deterministic, and readable for
// the star backbone vnet builds) rather than by a force-directed layout.
//
//   hosts     a host's VMs in a grid (up to ~√n columns, at least 3), so a big host stays square
//   sites     a site's hosts in rows; a hub alone in the bottom row under its spokes
//   drawing   up to 4 other sites: on an arc above the hub's site; up to 8: on an ellipse around
//             it; more: packed in rows (shelves) whose shape follows the panel, the hub's site
//             in the middle. Then sites are pushed apart until no two boxes overlap.
//   collapsed a collapsed site is one box (no hosts or VMs inside), the size of a host
import { state, vmsOf } from './state.js';

export const VM_STEP = 58;
const HOST_GAP = 60;
/** A site's box around its hosts' grid: compound padding plus its label above. */
const SITE_PAD_X = 50;
const SITE_PAD_Y = 80;
/** Sites closer than this (model units) are pushed apart. */
const SITE_GAP = 50;
export const COLLAPSED_SITE = { w: 150, h: 80 };

/** Hosts grouped by site, in id order. */
export function groupHosts() {
  const sites = new Map();
  for (const h of [...state.hosts.values()].sort((x, y) => (x.id < y.id ? -1 : 1))) {
    const s = h.site ?? '(no site)';
    if (!sites.has(s)) sites.set(s, []);
    sites.get(s).push(h);
  }
  return sites;
}

/** A host's box: VMs in a grid of `cols` columns. */
function hostBox(hostId) {
  const n = vmsOf(hostId).length;
  const cols = Math.max(1, Math.min(n, Math.max(3, Math.ceil(Math.sqrt(n)))));
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

/** Shelf packing of `boxes` ([{ w, h }]) in rows of `cols`: each box's centre, and the whole size. */
function shelves(boxes, cols) {
  const rows = [];
  for (let i = 0; i < boxes.length; i += cols) rows.push(boxes.slice(i, i + cols));
  const rowW = rows.map((r) => r.reduce((s, b) => s + b.w + SITE_GAP, 0));
  const rowH = rows.map((r) => Math.max(...r.map((b) => b.h)) + SITE_GAP);
  const w = Math.max(...rowW);
  const h = rowH.reduce((s, x) => s + x, 0);
  const centres = [];
  let y = -h / 2;
  rows.forEach((r, ri) => {
    let x = -rowW[ri] / 2;
    for (const b of r) {
      centres.push({ x: x + (b.w + SITE_GAP) / 2, y: y + rowH[ri] / 2 });
      x += b.w + SITE_GAP;
    }
    y += rowH[ri];
  });
  return { w, h, centres };
}

/** Many sites: shelves with the column count that lets the drawing be largest in the panel; the hub's site in the middle. */
function packedCentres(names, boxes, hubSite, aspect) {
  const order = names.filter((s) => s !== hubSite);
  if (hubSite !== undefined) order.splice(Math.floor(order.length / 2), 0, hubSite);
  const bs = order.map((s) => boxes.get(s));
  let best = null;
  for (let cols = 1; cols <= bs.length; cols++) {
    const p = shelves(bs, cols);
    const size = Math.max(p.w / aspect, p.h);
    if (best === null || size < best.size) best = { size, p };
  }
  return new Map(order.map((s, i) => [s, best.p.centres[i]]));
}

/** Two site boxes closer than SITE_GAP. */
function overlaps(c1, b1, c2, b2) {
  return Math.abs(c1.x - c2.x) * 2 < b1.w + b2.w + SITE_GAP && Math.abs(c1.y - c2.y) * 2 < b1.h + b2.h + SITE_GAP;
}

/** Spread the centres away from the middle until no two sites overlap (bounded: the last round doubles the spread). */
function spreadApart(centres, boxes) {
  const names = [...centres.keys()];
  const clash = () => names.some((a, i) => names.slice(i + 1).some((b) => overlaps(centres.get(a), boxes.get(a), centres.get(b), boxes.get(b))));
  for (let round = 0; round < 40 && clash(); round++) {
    const k = round === 39 ? 2 : 1.08;
    for (const s of names) {
      const c = centres.get(s);
      centres.set(s, { x: c.x * k, y: c.y * k });
    }
  }
}

/** Each site's centre. */
function siteCentres(sites, boxes, aspect) {
  const names = [...sites.keys()];
  const hubSite = names.find((s) => sites.get(s).some((h) => h.role === 'hub'));
  const ring = names.filter((s) => s !== hubSite || names.length === 1);
  const maxW = Math.max(160, ...[...boxes.values()].map((b) => b.w - SITE_PAD_X));
  const maxH = Math.max(100, ...[...boxes.values()].map((b) => b.h - SITE_PAD_Y));
  const centres = new Map();
  if (names.length === 1) {
    centres.set(names[0], { x: 0, y: 0 });
  } else if (hubSite !== undefined && ring.length <= 4) {
    // Adjacent sites on the arc at least a site's width plus a gap apart.
    const rx = ring.length === 1 ? 0 : ring.length === 2 ? (maxW + 140) / 1.9 : (maxW + 60) * (ring.length - 1) * 0.45 + 40;
    const ry = Math.max(maxH + 180, (rx * 0.9) / aspect);
    centres.set(hubSite, { x: 0, y: ry * 0.4 });
    ring.forEach((s, i) => {
      const angle = ring.length === 1 ? -Math.PI / 2 : -Math.PI + Math.PI * (0.1 + (0.8 * i) / (ring.length - 1));
      centres.set(s, { x: rx * Math.cos(angle), y: ry * Math.sin(angle) - ry * 0.3 });
    });
  } else if (ring.length <= 8) {
    const rx = Math.max(maxW * 0.9 + 120, ((maxW + 80) * ring.length) / (2 * Math.PI) * 1.3);
    const ry = Math.max(maxH + 120, rx / aspect);
    if (hubSite !== undefined) centres.set(hubSite, { x: 0, y: 0 });
    ring.forEach((s, i) => {
      const angle = -Math.PI / 2 - Math.PI / ring.length + (2 * Math.PI * i) / ring.length;
      centres.set(s, { x: rx * Math.cos(angle), y: ry * Math.sin(angle) });
    });
  } else {
    return packedCentres(names, boxes, hubSite, aspect);
  }
  spreadApart(centres, boxes);
  return centres;
}

/**
 * Positions of the leaf nodes (VMs, hosts without VMs, collapsed sites), for the panel's aspect
 * ratio (width / height). `collapsed`: the names of the collapsed sites.
 */
export function computePositions(sites, aspectRatio, collapsed) {
  const aspect = Math.min(2.2, Math.max(1, aspectRatio));
  const grids = new Map([...sites].map(([s, hosts]) => [s, collapsed.has(s) ? null : siteGrid(hosts)]));
  const boxes = new Map([...grids].map(([s, g]) => [s, g === null ? COLLAPSED_SITE : { w: g.w + SITE_PAD_X, h: g.h + SITE_PAD_Y }]));
  const centres = siteCentres(sites, boxes, aspect);
  const pos = {};
  for (const [s, hosts] of sites) {
    const c = centres.get(s);
    const g = grids.get(s);
    if (g === null) {
      pos[`site:${s}`] = c;
      continue;
    }
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
