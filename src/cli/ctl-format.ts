import type {
  DecisionView,
  EventView,
  HostRulesView,
  HostView,
  LinkView,
  MatrixView,
  MigrationView,
  PlacementView,
  TopologyView,
  VmView,
} from '../controller/api-model.ts';

/**
 * How `vnet ctl` shows things to a person: aligned tables, rates, progress
 * bars, and the terminal drawing of the host/link graph and the inferred
 * application topology (plus Graphviz DOT). Pure functions of the views and
 * `now`; no I/O.
 */

// ---- primitives ---------------------------------------------------------------

/** Columns separated by two spaces; numeric-looking columns named in `right` are right-aligned. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? pad(c, widths[i]!, 'left') : i === cells.length - 1 ? c : pad(c, widths[i]!, 'right')))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Display width, counting each code point as one column. */
function width(s: string): number {
  return [...s].length;
}

function pad(s: string, w: number, side: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return side === 'left' ? fill + s : s + fill;
}

/** Bytes per second as bits per second ("9.6 Mbit/s"); "-" for zero. */
export function formatRate(bytesPerSec: number): string {
  const bits = bytesPerSec * 8;
  if (!(bits >= 1)) return '-';
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let v = bits;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatBytes(bytes: number): string {
  if (!(bytes >= 1)) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** "12s ago", "3m ago", "never". */
export function formatAge(then: number | null, now: number): string {
  if (then === null) return 'never';
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** "[██████····] 60%" */
export function progressBar(fraction: number, cells = 20): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * cells);
  return `[${'█'.repeat(full)}${'·'.repeat(cells - full)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}

/** A bar proportional to value/max, at most `cells` long. */
function rateBar(value: number, max: number, cells = 12): string {
  if (!(value > 0) || !(max > 0)) return '';
  return '█'.repeat(Math.max(1, Math.round((value / max) * cells)));
}

const vmName = (vms: ReadonlyMap<string, VmView>, mac: string): string => vms.get(mac)?.name ?? mac;

// ---- tables -------------------------------------------------------------------

export function hostsTable(hosts: readonly HostView[], now: number): string {
  return table(
    ['HOST', 'SITE', 'ROLE', 'STATE', 'LAST SEEN', 'ADDRESSES'],
    hosts.map((h) => [h.id, h.site ?? '-', h.role, h.state, formatAge(h.lastSeen, now), h.addresses.map((a) => `${a.transport}://${a.host}:${a.port}`).join(' ') || '-']),
  );
}

export function vmsTable(vms: readonly VmView[]): string {
  return table(
    ['MAC', 'NAME', 'IP', 'HOST', 'STATE'],
    vms.map((v) => [v.mac, v.name ?? '-', v.ip ?? '-', v.host ?? '-', v.state]),
  );
}

export function linksTable(links: readonly LinkView[]): string {
  return table(
    ['A', 'B', 'KIND', 'STATE', 'RATE', 'FRAMES/S', 'TOTAL', 'BY', 'REASON'],
    links.map((l) => [l.a, l.b, l.kind, l.state, formatRate(l.bytesPerSec), String(Math.round(l.framesPerSec)), formatBytes(l.bytes), l.actor ?? l.requestedBy, l.reason]),
    new Set([4, 5, 6]),
  );
}

export function rulesTable(rules: HostRulesView): string {
  const head = `rules on ${rules.host}: version ${rules.version}, applied ${rules.appliedVersion ?? 'never'}${rules.appliedVersion !== null && rules.appliedVersion < rules.version ? ' (pending)' : ''}`;
  if (rules.rules.length === 0) return `${head}\n(no controller rules)`;
  const action = (a: HostRulesView['rules'][number]['action']): string => (typeof a === 'string' ? a : 'port' in a ? `port ${a.port}` : `link ${a.link}`);
  return `${head}\n${table(
    ['ID', 'PRIO', 'SRC', 'DST', 'ACTION', 'REASON'],
    [...rules.rules].sort((x, y) => y.priority - x.priority).map((r) => [r.id, String(r.priority), r.src, r.dst, action(r.action), r.reason ?? '-']),
    new Set([1]),
  )}`;
}

export function matrixTable(matrix: MatrixView, now: number): string {
  const vms = new Map(matrix.vms.map((v) => [v.mac, v]));
  const name = (mac: string): string => vms.get(mac)?.name ?? mac;
  const where = (mac: string): string => vms.get(mac)?.host ?? '?';
  const head = `traffic matrix: ${matrix.vms.length} VMs, ${matrix.edges.length} talking pairs, updated ${matrix.at === null ? 'never' : formatAge(matrix.at, now)} (period ${matrix.periodMs} ms)`;
  if (matrix.edges.length === 0) return `${head}\n(no traffic)`;
  const edges = [...matrix.edges].sort((a, b) => b.bytesPerSec - a.bytesPerSec);
  const max = edges[0]!.bytesPerSec;
  return `${head}\n${table(
    ['FLOW', 'HOSTS', 'RATE', 'FRAMES/S', ''],
    edges.map((e) => [`${name(e.src)} → ${name(e.dst)}`, `${where(e.src)} → ${where(e.dst)}`, formatRate(e.bytesPerSec), String(Math.round(e.framesPerSec)), rateBar(e.bytesPerSec, max)]),
    new Set([2, 3]),
  )}`;
}

export function migrationsTable(migrations: readonly MigrationView[], vms: readonly VmView[]): string {
  if (migrations.length === 0) return '(no migrations)';
  const byMac = new Map(vms.map((v) => [v.mac, v]));
  return table(
    ['ID', 'VM', 'FROM', 'TO', 'STATE', 'PHASE', 'PROGRESS', 'SENT', 'ETA'],
    migrations.map((m) => [
      m.id,
      vmName(byMac, m.vm),
      m.from,
      m.to,
      m.state === 'failed' ? `failed: ${m.error ?? '?'}` : m.state,
      m.phase,
      progressBar(m.state === 'succeeded' ? 1 : m.progress),
      `${formatBytes(m.bytesSent)}${m.bytesTotal !== null ? ` / ${formatBytes(m.bytesTotal)}` : ''}`,
      m.state === 'running' && m.etaMs !== null ? `${Math.ceil(m.etaMs / 1000)}s` : '-',
    ]),
  );
}

export function placementText(p: PlacementView, vms: readonly VmView[], now: number): string {
  const byMac = new Map(vms.map((v) => [v.mac, v]));
  const head = `placement: score ${p.score.toFixed(3)} now, ${p.proposedScore.toFixed(3)} proposed, threshold ${p.threshold.toFixed(3)}; computed ${p.computedAt === null ? 'never' : formatAge(p.computedAt, now)}`;
  if (p.moves.length === 0) return `${head}\n(no moves proposed)`;
  return `${head}\n${table(
    ['VM', 'FROM', 'TO', 'GAIN', 'REASON'],
    p.moves.map((m) => [vmName(byMac, m.vm), m.from, m.to, m.gain.toFixed(3), m.reason]),
    new Set([3]),
  )}`;
}

export function decisionsTable(decisions: readonly DecisionView[]): string {
  if (decisions.length === 0) return '(no decisions)';
  return table(['TIME', 'KIND', 'REASON'], decisions.map((d) => [formatTime(d.time), d.kind, d.reason]));
}

/** One line per event: "#12 2026-11-22 04:00:00Z link-changed  fast-path link a–b pending". */
export function eventLine(e: EventView): string {
  return `#${e.seq} ${formatTime(e.time)} ${e.type.padEnd(17)} ${describeEvent(e)}`;
}

export function describeEvent(e: EventView): string {
  switch (e.type) {
    case 'host-changed':
      return `host ${e.payload.host.id} ${e.payload.host.state}`;
    case 'host-removed':
      return `host ${e.payload.id} removed`;
    case 'vm-changed':
      return `VM ${e.payload.vm.name ?? e.payload.vm.mac} on ${e.payload.vm.host ?? '-'} (${e.payload.vm.state})`;
    case 'vm-removed':
      return `VM ${e.payload.mac} removed`;
    case 'link-changed':
      return `${e.payload.link.kind} link ${e.payload.link.a}–${e.payload.link.b} ${e.payload.link.state} (${e.payload.link.reason})`;
    case 'link-removed':
      return `${e.payload.kind} link ${e.payload.a}–${e.payload.b} removed (${e.payload.reason})`;
    case 'traffic-updated':
      return `traffic on ${e.payload.links.length} links`;
    case 'rules-changed':
      return `rules on ${e.payload.host} now version ${e.payload.version}`;
    case 'topology-changed':
      return `application topology: ${e.payload.topology.class} (confidence ${Math.round(e.payload.topology.confidence * 100)}%)`;
    case 'migration-changed': {
      const m = e.payload.migration;
      return `migration ${m.id} ${m.vm} ${m.from} → ${m.to}: ${m.state}, ${m.phase} ${Math.round(m.progress * 100)}%`;
    }
    case 'placement-changed':
      return `placement: ${e.payload.placement.moves.length} move(s) proposed`;
    case 'decision':
      return `${e.payload.decision.kind}: ${e.payload.decision.reason}`;
    case 'operator-action':
      return `${e.payload.actor} ${e.payload.action} ${JSON.stringify(e.payload.detail)}`;
  }
}

// ---- the topology drawing ------------------------------------------------------

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
  const head = `Application topology: ${t.class}${t.class === 'none' ? '' : ` (confidence ${Math.round(t.confidence * 100)}%${t.detectedAt !== null ? `, since ${formatTime(t.detectedAt)}` : ''})`}`;
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
