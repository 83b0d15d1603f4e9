// Where the graph's nodes go: sites ⊃ hosts ⊃ VMs, placed by hand (deterministic, and readable for
// the star backbone vnet builds) rather than by a force-directed layout.
import { state, vmsOf } from './state.js';

const VM_STEP = 58;
const HOST_GAP = 60;

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
export function computePositions(sites, aspectRatio) {
  const pos = {};
  const siteNames = [...sites.keys()];
  const hubSite = siteNames.find((s) => sites.get(s).some((h) => h.role === 'hub'));
  const grids = new Map([...sites].map(([s, hosts]) => [s, siteGrid(hosts)]));
  const ring = siteNames.filter((s) => s !== hubSite || siteNames.length === 1);
  const maxW = Math.max(160, ...[...grids.values()].map((g) => g.w));
  const maxH = Math.max(100, ...[...grids.values()].map((g) => g.h));
  const aspect = Math.min(2.2, Math.max(1, aspectRatio));
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
