// The traffic matrix's row and column order. Pure functions of their arguments (no DOM, no page
// state), so the unit test imports them in Node.
//
// "structure" walks the inferred topology so that its shape shows in the heat map: a ring in ring
// order (a band along the diagonal, plus the two corners that close it), a star or tree from its
// centre (the centre's row and column first, each subtree in a block), a bus from one end. Without
// an inferred topology it walks the matrix's own heaviest pairs. VMs outside the walk follow, by host.

/** The orders the page offers, with their labels. */
export const MATRIX_ORDERS = [
  ['structure', 'inferred structure'],
  ['host', 'site and host'],
  ['name', 'name'],
];

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0);

/** VMs by site, host, then name (VMs on no host last). `vms`: [{ mac, name, host, site }]. */
function hostOrder(vms) {
  const key = (v) => [v.host === null ? 1 : 0, v.site ?? '', v.host ?? ''];
  return [...vms].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
    return byName(a, b);
  });
}

/**
 * Undirected weighted adjacency from `edges` ([{ a, b, weight }]), only between VMs in `known`;
 * each VM's neighbours heaviest first.
 */
function adjacency(edges, known) {
  const adj = new Map();
  const add = (x, y, w) => {
    if (!adj.has(x)) adj.set(x, new Map());
    adj.get(x).set(y, (adj.get(x).get(y) ?? 0) + w);
  };
  for (const e of edges) {
    if (e.a === e.b || !known.has(e.a) || !known.has(e.b)) continue;
    add(e.a, e.b, e.weight);
    add(e.b, e.a, e.weight);
  }
  const sorted = new Map();
  for (const [v, ns] of adj) sorted.set(v, [...ns].sort((p, q) => q[1] - p[1] || (p[0] < q[0] ? -1 : 1)).map(([n]) => n));
  return sorted;
}

/**
 * A depth-first walk of the structure: from the centre if there is one, else from an end (a VM with
 * one neighbour: a bus or a tree's leaf), else from the first VM in host order; neighbours
 * heaviest first. Each further component the same way. Iterative, so a 10 000-VM ring is fine.
 */
function structureOrder(vms, edges, centre) {
  const inHostOrder = hostOrder(vms).map((v) => v.mac);
  const adj = adjacency(edges, new Set(inHostOrder));
  const seen = new Set();
  const out = [];
  const walk = (start) => {
    const stack = [start];
    while (stack.length > 0) {
      const v = stack.pop();
      if (seen.has(v)) continue;
      seen.add(v);
      out.push(v);
      const ns = (adj.get(v) ?? []).filter((n) => !seen.has(n));
      for (let i = ns.length - 1; i >= 0; i--) stack.push(ns[i]);
    }
  };
  if (centre !== null && adj.has(centre)) walk(centre);
  const connected = inHostOrder.filter((m) => adj.has(m));
  for (const m of connected) if (!seen.has(m) && adj.get(m).length === 1) walk(m);
  for (const m of connected) if (!seen.has(m)) walk(m);
  for (const m of inHostOrder) if (!seen.has(m)) out.push(m);
  return out;
}

/**
 * The matrix's VM order (MACs). `vms`: [{ mac, name, host, site }]; `topology`: the inferred
 * { centre, edges: [{ a, b, weight }] }; `traffic`: the matrix's directed entries
 * [{ src, dst, bytesPerSec }], used for "structure" when the topology has no edges.
 */
export function matrixOrder(order, vms, topology, traffic) {
  if (order === 'name') return [...vms].sort(byName).map((v) => v.mac);
  if (order === 'host') return hostOrder(vms).map((v) => v.mac);
  const edges = topology.edges.length > 0
    ? topology.edges
    : traffic.filter((t) => t.bytesPerSec > 0).map((t) => ({ a: t.src, b: t.dst, weight: t.bytesPerSec }));
  return structureOrder(vms, edges, topology.centre);
}

/**
 * A cell's colour for a rate, on a log scale over three decades below the busiest cell: pale
 * yellow (quiet) to dark red (busiest); null for no traffic.
 */
export function heatColour(bytesPerSec, maxBytesPerSec) {
  if (!(bytesPerSec > 0) || !(maxBytesPerSec > 0)) return null;
  const t = Math.max(0, Math.min(1, 1 + Math.log10(bytesPerSec / maxBytesPerSec) / 3));
  // Stops: #fde68a (t=0) → #f97316 (0.5) → #7f1d1d (1).
  const stops = [[253, 230, 138], [249, 115, 22], [127, 29, 29]];
  const [lo, hi, u] = t < 0.5 ? [stops[0], stops[1], t / 0.5] : [stops[1], stops[2], (t - 0.5) / 0.5];
  const c = lo.map((x, i) => Math.round(x + (hi[i] - x) * u));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}
