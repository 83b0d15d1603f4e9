import type { DecisionView, HostRulesView, HostView, LinkView, MatrixView, MigrationView, PlacementView, VmView } from '../controller/api-views.ts';
import type { EventView } from '../controller/api-events.ts';
import { formatHostPort } from '../common/host-port.ts';
import type { ReplicaStatusView } from '../controller/replica-status.ts';

/**
 * How `vnet ctl` shows things to a person: aligned tables, rates, ages,
 * progress bars and event lines (the topology drawing is in
 * ctl-topology-drawing.ts). Pure functions of the views and `now`; no I/O.
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
export function width(s: string): number {
  return [...s].length;
}

export function pad(s: string, w: number, side: 'left' | 'right'): string {
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
export function rateBar(value: number, max: number, cells = 12): string {
  if (!(value > 0) || !(max > 0)) return '';
  return '█'.repeat(Math.max(1, Math.round((value / max) * cells)));
}

export const vmName = (vms: ReadonlyMap<string, VmView>, mac: string): string => vms.get(mac)?.name ?? mac;

// ---- tables -------------------------------------------------------------------

/** A spoke: the hub it is on ('-' if none); a hub: its state as the spokes see it. */
function hubColumn(h: HostView): string {
  return h.role === 'hub' ? h.hubState ?? '-' : h.hub ?? '-';
}

export function hostsTable(hosts: readonly HostView[], now: number): string {
  return table(
    ['HOST', 'SITE', 'ROLE', 'STATE', 'HUB', 'LAST SEEN', 'ADDRESSES'],
    hosts.map((h) => [h.id, h.site ?? '-', h.role, h.state, hubColumn(h), formatAge(h.lastSeen, now), h.addresses.map((a) => `${a.transport}://${formatHostPort(a)}`).join(' ') || '-']),
  );
}

/** `vnet ctl status`: the replica answering, the leader, the store and its health. */
export function statusText(s: ReplicaStatusView): string {
  const leader = s.leader === null ? (s.replica === null ? 'this controller (single, no replicas)' : 'none elected now')
    : `${s.leader.name}${s.leader.api !== null ? ` (API ${s.leader.api})` : ''}${s.leader.control !== null ? ` control ${s.leader.control}` : ''}`;
  const lines = [
    `replica:  ${s.replica ?? '-'}${s.leading ? ' (leading)' : s.replica === null ? '' : ' (following)'}`,
    `leader:   ${leader}`,
    `store:    ${s.store.kind} ${s.store.location}`,
  ];
  if (s.store.kind === 'etcd') {
    lines.push(`lease:    ${s.store.leaderLeaseTtlS === null ? '- (no leader lease)' : `${s.store.leaderLeaseTtlS} s left on the leader's lease`}`);
    const up = s.store.members.filter((m) => m.reachable).length;
    lines.push(`members:  ${up} of ${s.store.members.length} reachable${up * 2 > s.store.members.length ? '' : ' (no quorum from here)'}`, '');
    lines.push(table(['ENDPOINT', 'REACHABLE', 'VERSION', 'RAFT LEADER', 'ERROR'],
      s.store.members.map((m) => [m.endpoint, m.reachable ? 'yes' : 'no', m.version ?? '-', m.raftLeader ? 'yes' : '', m.error ?? ''])));
  }
  return lines.join('\n');
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
    ['ID', 'VM', 'FROM', 'TO', 'STATE', 'PHASE', 'PROGRESS', 'SENT', 'ETA', 'STEP', 'ITER', 'PAGES LEFT', 'DIRTY/S', 'CUTOVER'],
    migrations.map((m) => [
      m.id,
      vmName(byMac, m.vm),
      m.from,
      m.to,
      m.state === 'failed' || m.state === 'cancelled' ? `${m.state}: ${m.error ?? '?'}` : m.state,
      m.phase,
      progressBar(m.state === 'succeeded' ? 1 : m.progress),
      `${formatBytes(m.bytesSent)}${m.bytesTotal !== null ? ` / ${formatBytes(m.bytesTotal)}` : ''}`,
      m.state === 'running' && m.etaMs !== null ? `${Math.ceil(m.etaMs / 1000)}s` : '-',
      m.step ?? '-',
      m.iteration === null || m.iteration === undefined ? '-' : String(m.iteration),
      m.pagesLeft === null || m.pagesLeft === undefined ? '-' : String(m.pagesLeft),
      m.dirtyRate === null || m.dirtyRate === undefined ? '-' : String(Math.round(m.dirtyRate)),
      cutoverText(m),
    ]),
  );
}

/** "12 ms: held 15, flushed 15, relayed 5, lost 0, announced 2", or "-" before the pause. */
export function cutoverText(m: MigrationView): string {
  const c = m.cutover;
  if (c === null || c === undefined) return '-';
  const time = c.timeMs === null ? '…' : c.timeMs < 10_000 ? `${c.timeMs} ms` : `${(c.timeMs / 1000).toFixed(1)} s`;
  return `${time}: held ${c.held}, flushed ${c.flushed}, relayed ${c.relayed}, lost ${c.lost}, announced ${c.announced}`;
}

/** One migration on one line, for `vnet ctl migrate --watch`. */
export function migrationLine(m: MigrationView, vms: readonly VmView[] = []): string {
  const name = vmName(new Map(vms.map((v) => [v.mac, v])), m.vm);
  const head = `migration ${m.id} ${name} ${m.from} → ${m.to}: ${m.state}, ${m.step ?? m.phase}`;
  if (m.state === 'failed' || m.state === 'cancelled') return `${head}: ${m.error ?? '?'}`;
  if (m.state === 'succeeded') return `${head}, cutover ${cutoverText(m)}`;
  const engine = m.iteration !== null && m.iteration !== undefined
    ? `, ${m.enginePhase ?? m.phase} round ${m.iteration}, ${m.pagesLeft ?? '?'} pages left, ${Math.round(m.dirtyRate ?? 0)} pages/s dirtied` : '';
  const eta = m.etaMs !== null ? `, eta ${Math.ceil(m.etaMs / 1000)}s` : '';
  return `${head} ${progressBar(m.progress)}, ${formatBytes(m.bytesSent)} sent${engine}${eta}`;
}

export function placementText(p: PlacementView, vms: readonly VmView[], now: number): string {
  const byMac = new Map(vms.map((v) => [v.mac, v]));
  const computed = `computed ${p.computedAt === null ? 'never' : formatAge(p.computedAt, now)}`;
  if (p.policy !== undefined) return schedulerText(p, byMac, computed);
  const head = `placement: score ${p.score.toFixed(3)} now, ${p.proposedScore.toFixed(3)} proposed, threshold ${p.threshold.toFixed(3)}; ${computed}`;
  if (p.moves.length === 0) return `${head}\n(no moves proposed)`;
  return `${head}\n${table(
    ['VM', 'FROM', 'TO', 'GAIN', 'REASON'],
    p.moves.map((m) => [vmName(byMac, m.vm), m.from, m.to, m.gain.toFixed(3), m.reason]),
    new Set([3]),
  )}`;
}

/** Under a scheduling policy: the policy, the current and best scores with what they are made of, each move with its state, cost and reason. */
function schedulerText(p: PlacementView, byMac: ReadonlyMap<string, VmView>, computed: string): string {
  const unit = p.unit ?? '';
  const lines = [
    `policy ${p.policy}: score ${p.score.toFixed(3)} ${unit} now, best ${p.proposedScore.toFixed(3)} ${unit}, threshold T ${p.threshold.toFixed(3)}; ${computed}${policyTimeText(p)}`,
    ...(p.notes ?? []).map((n) => `  ${n}`),
  ];
  if (p.moves.length === 0) return [...lines, p.refused !== undefined ? `(no moves: ${p.refused})` : '(no moves proposed)'].join('\n');
  const est = (m: PlacementView['moves'][number]): string => (m.bytes === undefined || m.seconds === undefined ? '' : `${formatBytes(m.bytes)} ${m.seconds.toFixed(0)}s`);
  return `${lines.join('\n')}\n${table(
    ['VM', 'FROM', 'TO', 'STATE', 'GAIN', 'COST', 'ESTIMATE', 'REASON'],
    p.moves.map((m) => [vmName(byMac, m.vm), m.from, m.to, m.state ?? 'proposed', m.gain.toFixed(3), (m.cost ?? 0).toFixed(3), est(m), m.reason]),
    new Set([4, 5]),
  )}`;
}

/** With `scheduler.clock`: "; policy time 2026-12-08 03:00 UTC (×720)". */
function policyTimeText(p: PlacementView): string {
  if (p.policyTime === undefined) return '';
  return `; policy time ${new Date(p.policyTime).toISOString().slice(0, 16).replace('T', ' ')} UTC${p.speedup !== undefined && p.speedup !== 1 ? ` (×${p.speedup})` : ''}`;
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
    case 'hub-changed':
      return `hub ${e.payload.hub} ${e.payload.state}${e.payload.previous === null ? '' : ` (was ${e.payload.previous})`}, spokes on it: ${e.payload.spokes.join(', ') || 'none'}`;
    case 'spoke-hub-changed':
      return `spoke ${e.payload.host} on hub ${e.payload.hub}${e.payload.previous === null ? '' : ` (was ${e.payload.previous})`}`;
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
    case 'security': {
      const r = e.payload.report;
      return r.kind === 'mac-conflict'
        ? `${e.payload.host}: MAC ${r.mac} seen at ${r.seenAt}, lives at ${r.home} (${r.by}); ${r.frames} frame(s), not learned`
        : `${e.payload.host}: port ${r.port} ${r.limit}: ${r.frames} frame(s) dropped`;
    }
  }
}
