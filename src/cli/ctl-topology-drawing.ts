import type { HostView, LinkView, MigrationView, TopologyView, VmView } from '../controller/api-views.ts';
import { formatRate, formatTime, pad, rateBar, vmName, width } from './ctl-format.ts';

/**
 * `vnet ctl topology`: the host/link graph and the inferred application
 * topology drawn for a terminal (box-drawing characters), and the same graph
 * as Graphviz DOT. Pure functions of the views.
 */

export interface TopologyDrawingInput {
  hosts: readonly HostView[];
  vms: readonly VmView[];
  links: readonly LinkView[];
  topology: TopologyView;
  migrations: readonly MigrationView[];
}

/**
 * The backbone as a tree from the hub (├── └──), each host with its site,
 * state, the rate of its link to the parent and its VMs; then the fast-path
 * links (═══) and the inferred application topology drawn by class.
 */
export function drawTopology(input: TopologyDrawingInput): string {
  const out: string[] = [];
  const vmsByMac = new Map(input.vms.map((v) => [v.mac, v]));
  const hosts = new Map(input.hosts.map((h) => [h.id, h]));
  const running = new Map(input.migrations.filter((m) => m.state === 'running').map((m) => [m.vm, m]));
  const vmsOn = (host: string): string => {
    const list = input.vms
      .filter((v) => v.host === host)
      .map((v) => {
        const m = running.get(v.mac);
        return m !== undefined ? `${v.name ?? v.mac}→${m.to} ${Math.round(m.progress * 100)}%` : (v.name ?? v.mac);
      });
    return list.length > 0 ? `[${list.join(' ')}]` : '';
  };
  const hostLabel = (id: string): string => {
    const h = hosts.get(id);
    if (h === undefined) return `${id} (unknown)`;
    const parts = [h.site ?? 'no site'];
    if (h.role === 'hub') parts.push('hub');
    return `${id} (${parts.join(', ')})${h.state === 'down' ? ' ✗ DOWN' : ''}`;
  };

  // Backbone tree: breadth-first from the hub (or the best-connected host).
  const backbone = input.links.filter((l) => l.kind === 'backbone');
  const adj = new Map<string, LinkView[]>();
  for (const l of backbone) {
    for (const end of [l.a, l.b]) {
      if (!adj.has(end)) adj.set(end, []);
      adj.get(end)!.push(l);
    }
  }
  const ids = [...hosts.keys()].sort();
  const roots = [...ids].sort((x, y) => Number(hosts.get(y)!.role === 'hub') - Number(hosts.get(x)!.role === 'hub') || (adj.get(y)?.length ?? 0) - (adj.get(x)?.length ?? 0));
  const seen = new Set<string>();
  const treeLinks = new Set<LinkView>();
  const rows: Array<{ prefix: string; label: string; rate: string; vms: string }> = [];
  const walk = (id: string, prefix: string, branch: string, via: LinkView | undefined): void => {
    seen.add(id);
    const rate = via === undefined ? '' : via.state === 'up' ? formatRate(via.bytesPerSec) : `link ${via.state}`;
    rows.push({ prefix: prefix + branch, label: hostLabel(id), rate, vms: vmsOn(id) });
    const children = (adj.get(id) ?? [])
      .map((l) => ({ l, other: l.a === id ? l.b : l.a }))
      .filter((c) => !seen.has(c.other))
      .sort((x, y) => (x.other < y.other ? -1 : 1));
    for (const c of children) seen.add(c.other);
    const childPrefix = prefix + (branch === '' ? '' : branch === '└── ' ? '    ' : '│   ');
    children.forEach((c, i) => {
      treeLinks.add(c.l);
      walk(c.other, childPrefix, i === children.length - 1 ? '└── ' : '├── ', c.l);
    });
  };
  for (const id of roots) if (!seen.has(id)) walk(id, '', '', undefined);

  out.push(`Hosts and backbone (${ids.length} hosts, ${backbone.length} backbone links)`);
  const w1 = Math.max(0, ...rows.map((r) => width(r.prefix + r.label)));
  const w2 = Math.max(0, ...rows.map((r) => width(r.rate)));
  for (const r of rows) out.push(`  ${pad(r.prefix + r.label, w1, 'right')}  ${pad(r.rate, w2, 'left')}  ${r.vms}`.trimEnd());
  const extra = backbone.filter((l) => !treeLinks.has(l));
  for (const l of extra) out.push(`  ${l.a} ─── ${l.b}  ${l.state === 'up' ? formatRate(l.bytesPerSec) : `link ${l.state}`}  (backbone, outside the tree)`);

  const fast = input.links.filter((l) => l.kind === 'fast-path');
  out.push('', `Fast-path links (${fast.length})`);
  if (fast.length === 0) out.push('  (none)');
  const fw = Math.max(0, ...fast.map((l) => width(l.a)));
  for (const l of fast) {
    out.push(`  ${pad(l.a, fw, 'right')} ══════ ${l.b}  ${l.state}  ${formatRate(l.bytesPerSec)}  ${l.actor ?? l.requestedBy}: ${l.reason}`);
  }

  out.push('', ...drawApplicationTopology(input.topology, vmsByMac));
  return out.join('\n');
}

/** The inferred application topology: a ring as a cycle, a star or tree from its centre, otherwise an adjacency list. */
export function drawApplicationTopology(t: TopologyView, vms: ReadonlyMap<string, VmView>): string[] {
  const name = (mac: string): string => vmName(vms, mac);
  const since = t.detectedAt !== null ? `, since ${formatTime(t.detectedAt)}` : '';
  // The class and edge set are as announced; the rates are the current smoothed ones.
  const live = t.weightsAt !== null && t.weightsAt !== t.detectedAt ? `; rates at ${formatTime(t.weightsAt)}` : '';
  const head = `Application topology: ${t.class}${t.class === 'none' ? '' : ` (confidence ${Math.round(t.confidence * 100)}%${since}${live})`}`;
  if (t.edges.length === 0) return [head, '  (no traffic edges)'];
  const adj = new Map<string, Array<{ other: string; weight: number; rate: number }>>();
  for (const e of t.edges) {
    for (const [x, y] of [[e.a, e.b], [e.b, e.a]] as const) {
      if (!adj.has(x)) adj.set(x, []);
      adj.get(x)!.push({ other: y, weight: e.weight, rate: e.bytesPerSec });
    }
  }
  const lines = [head];
  if (t.class === 'ring') {
    const cycle = ringOrder(adj);
    if (cycle !== undefined) {
      const names = cycle.map(name);
      const chain = names.join(' ── ');
      lines.push(`  ┌─ ${chain} ─┐`, `  └${'─'.repeat(width(chain) + 4)}┘`);
      return lines;
    }
  }
  if ((t.class === 'star' || t.class === 'tree') && t.centre !== null && adj.has(t.centre)) {
    lines.push(`  ${name(t.centre)} (centre)`);
    const seen = new Set([t.centre]);
    const walk = (mac: string, prefix: string): void => {
      const kids = (adj.get(mac) ?? []).filter((k) => !seen.has(k.other)).sort((x, y) => y.weight - x.weight);
      for (const k of kids) seen.add(k.other);
      kids.forEach((k, i) => {
        const last = i === kids.length - 1;
        lines.push(`  ${prefix}${last ? '└── ' : '├── '}${name(k.other)}  ${formatRate(k.rate)}`);
        walk(k.other, prefix + (last ? '    ' : '│   '));
      });
    };
    walk(t.centre, '');
    return lines;
  }
  const max = Math.max(...t.edges.map((e) => e.weight));
  const nw = Math.max(...t.edges.map((e) => width(name(e.a))));
  for (const e of [...t.edges].sort((x, y) => y.weight - x.weight)) {
    lines.push(`  ${pad(name(e.a), nw, 'right')} ── ${name(e.b)}  ${formatRate(e.bytesPerSec)}  ${rateBar(e.weight, max)}`);
  }
  return lines;
}

/** The order of a simple cycle through every node (each of degree 2), or undefined if the edges are not one. */
function ringOrder(adj: ReadonlyMap<string, ReadonlyArray<{ other: string }>>): string[] | undefined {
  const nodes = [...adj.keys()].sort();
  if (nodes.length < 3 || nodes.some((n) => adj.get(n)!.length !== 2)) return undefined;
  const start = nodes[0]!;
  const order = [start];
  const visited = new Set(order);
  let prev: string | undefined;
  let cur = start;
  for (let i = 0; i < nodes.length; i++) {
    const next = adj.get(cur)!.map((x) => x.other).find((o) => o !== prev);
    if (next === undefined) return undefined;
    if (next === start) return order.length === nodes.length ? order : undefined;
    if (visited.has(next)) return undefined;
    order.push(next);
    visited.add(next);
    prev = cur;
    cur = next;
  }
  return undefined;
}

// ---- Graphviz -------------------------------------------------------------------

const dotId = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** The same graph as Graphviz DOT: sites as clusters, hosts as boxes, VMs inside, link width by rate. */
export function topologyDot(input: TopologyDrawingInput): string {
  const out = ['graph vnet {', '  graph [overlap=false, splines=true, fontname="Helvetica"];', '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];'];
  const sites = new Map<string, HostView[]>();
  for (const h of input.hosts) {
    const s = h.site ?? '';
    if (!sites.has(s)) sites.set(s, []);
    sites.get(s)!.push(h);
  }
  let i = 0;
  for (const [site, hosts] of sites) {
    const indent = site === '' ? '  ' : '    ';
    if (site !== '') out.push(`  subgraph cluster_${i++} {`, `    label=${dotId(site)}; style=dashed; color="#94a3b8";`);
    for (const h of hosts) {
      out.push(`${indent}${dotId(`host:${h.id}`)} [label=${dotId(h.id)}, shape=box, style="rounded${h.state === 'down' ? ',dashed' : ''}", color=${h.role === 'hub' ? '"#1d4ed8"' : h.state === 'down' ? '"#dc2626"' : '"#0f766e"'}];`);
      for (const v of input.vms.filter((x) => x.host === h.id)) {
        out.push(`${indent}${dotId(`vm:${v.mac}`)} [label=${dotId(v.name ?? v.mac)}, shape=ellipse, style=filled, fillcolor="#99f6e4"];`);
        out.push(`${indent}${dotId(`host:${h.id}`)} -- ${dotId(`vm:${v.mac}`)} [style=dotted, color="#94a3b8"];`);
      }
    }
    if (site !== '') out.push('  }');
  }
  const max = Math.max(1, ...input.links.map((l) => l.bytesPerSec));
  for (const l of input.links) {
    const pen = (1 + (4 * Math.log1p(l.bytesPerSec)) / Math.log1p(max)).toFixed(1);
    const color = l.kind === 'fast-path' ? '"#ea580c"' : '"#64748b"';
    const style = l.state === 'up' ? 'solid' : 'dashed';
    out.push(`  ${dotId(`host:${l.a}`)} -- ${dotId(`host:${l.b}`)} [color=${color}, penwidth=${pen}, style=${style}, label=${dotId(formatRate(l.bytesPerSec))}];`);
  }
  for (const e of input.topology.edges) {
    out.push(`  ${dotId(`vm:${e.a}`)} -- ${dotId(`vm:${e.b}`)} [color="#7c3aed", style=dashed, penwidth=${(1 + 2 * e.weight).toFixed(1)}, constraint=false];`);
  }
  out.push('}');
  return out.join('\n');
}
