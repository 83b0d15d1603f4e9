/**
 * What `vnet status` shows of one daemon, read from its admin interface: the
 * daemon and its control channel, its links (each direct or through the
 * hub, with state, rates, queue and last error), its ports (the local VMs)
 * and the remote VMs it has learned, with the path their frames take. Pure
 * functions of two samples of the admin interface; no I/O.
 */
import { packetDropReasons, type DaemonFacts, type LinkFacts, type PacketPortCounters, type PortFacts } from '../control/daemon-control.ts';
import type { RecordKeyStatus } from '../dataplane/record-keys.ts';
import { formatAge, formatBytes, formatRate, table } from './ctl-format.ts';
import { formatHostPort } from '../common/host-port.ts';
import { vxlanDrops, type VxlanStats } from '../dataplane/vxlan-endpoint.ts';

/** `GET /links` of the admin interface (daemon-facts.ts, LinkDetail). */
export interface StatusLink extends LinkFacts {
  address?: { host: string; port: number } | undefined;
  backlogBytes: number;
  /** Round trip, smoothed (echo request → reply), ms; absent until measured. */
  srttMs?: number | undefined;
  lastError?: { code: string; message: string; atMs: number } | undefined;
  /** A TLS link on native records: version, key generations, what went under the current keys. */
  records?: RecordKeyStatus | undefined;
}

/** `GET /status`: the facts and what the daemon's process adds. */
export interface StatusFacts extends DaemonFacts {
  controller?: { url?: string; state: string; lastError?: { code: string; message: string }; refusal?: { code: string; message: string } } | undefined;
  /** The VXLAN endpoint, when the daemon has one: where it is bound, its VNI and what it dropped. */
  vxlan?: { vni: number; address: { host: string; port: number }; stats: VxlanStats } | undefined;
  /** The native forwarder (host/daemon-runner.ts): running with its settings, or why not. */
  nativeForwarding?: {
    running: boolean;
    reason?: string;
    busyPollUs?: number;
    adaptivePoll?: { capUs: number; budgetPercent: number } | false;
    flowTtlMs?: number;
    carriedFrames?: number;
    poll?: { spins: number; hits: number; spinNs: number; budgetDenied: number; contended: number };
  } | undefined;
}

/** `GET /fdb`. */
export interface StatusFdbEntry {
  mac: string;
  location: { kind: 'port'; name: string } | { kind: 'link'; peer: string };
  ageMs: number;
}

/** One reading of the admin interface at `atMs` (monotonic). */
export interface StatusSample {
  atMs: number;
  status: StatusFacts;
  links: StatusLink[];
  fdb: StatusFdbEntry[];
}

/** How a link's frames travel: straight to the peer, or relayed by the hub (a spoke's backbone). */
export function linkPath(role: DaemonFacts['role'], link: Pick<LinkFacts, 'kind' | 'peer'>): string {
  if (link.kind === 'backbone' && role === 'spoke') return `via hub ${link.peer}`;
  return 'direct';
}

function rate(now: number, before: number | undefined, seconds: number): number {
  return before === undefined || seconds <= 0 || now < before ? 0 : (now - before) / seconds;
}

/** Each records link's version, send and receive key generation, bytes under each current key and the send key's age. */
function formatRecordKeys(links: readonly StatusLink[]): string {
  return table(
    ['PEER', 'KIND', 'VERSION', 'TX KEY', 'TX UNDER KEY', 'RX KEY', 'RX UNDER KEY', 'TX KEY AGE'],
    links.map((l) => {
      const r = l.records!;
      return [l.peer, l.kind, `vnet-records/${r.version}`, `gen ${r.txGeneration}`, formatBytes(r.txBytes), `gen ${r.rxGeneration}`, formatBytes(r.rxBytes), `${Math.floor(r.txKeyAgeMs / 1000)} s`];
    }),
    new Set([4, 6, 7]),
  );
}

/** The whole report; `before` (an earlier sample) gives the rates, without it they show "-". */
export function formatStatus(now: StatusSample, before: StatusSample | undefined, wallNowMs: number): string {
  const s = now.status;
  const seconds = before === undefined ? 0 : (now.atMs - before.atMs) / 1000;
  const out: string[] = [];
  const listen = s.listen === undefined ? 'not listening' : `listening ${s.listen.transport} ${formatHostPort(s.listen)}`;
  out.push(`host ${s.hostId} (${s.role}${s.site !== undefined ? `, site ${s.site}` : ''}), ${listen}`);
  const c = s.controller;
  if (c === undefined) out.push('controller: none (standalone)');
  else {
    const why = c.refusal ?? (c.state === 'connected' ? undefined : c.lastError);
    out.push(`controller: ${c.url ?? ''} ${c.refusal !== undefined ? 'refused' : c.state}${why !== undefined ? ` (${why.code}: ${why.message})` : ''}`.replace(/: {2}/, ': '));
  }
  out.push(`rules v${s.rulesVersion}, links v${s.linksVersion}`);
  if (s.vxlan !== undefined) out.push(formatVxlan(s.vxlan));
  if (s.nativeForwarding !== undefined) out.push(formatNativeForwarding(s.nativeForwarding));

  out.push('', 'LINKS');
  if (now.links.length === 0) out.push('(none)');
  else {
    const prev = new Map((before?.links ?? []).map((l) => [`${l.kind}/${l.peer}`, l]));
    out.push(table(
      ['PEER', 'KIND', 'PATH', 'STATE', 'RTT', 'TX', 'RX', 'QUEUE', 'DROPPED', 'RECONNECTS', 'LAST ERROR'],
      now.links.map((l) => {
        const p = prev.get(`${l.kind}/${l.peer}`);
        const err = l.lastError === undefined ? '-' : `${l.lastError.code} ${formatAge(l.lastError.atMs, wallNowMs)}: ${l.lastError.message}`;
        return [
          l.peer, l.kind, linkPath(s.role, l), l.state, l.srttMs === undefined ? '-' : `${l.srttMs.toFixed(2)} ms`,
          formatRate(rate(l.txBytes, p?.txBytes, seconds)), formatRate(rate(l.rxBytes, p?.rxBytes, seconds)),
          formatBytes(l.backlogBytes), String(l.txDropped), String(l.reconnects), err,
        ];
      }),
      new Set([4, 7, 8, 9]),
    ));
  }

  const keyed = now.links.filter((l) => l.records !== undefined);
  if (keyed.length > 0) out.push('', 'RECORD KEYS (TLS links on native records)', formatRecordKeys(keyed));

  out.push('', 'PORTS (local VMs)');
  if (s.ports.length === 0) out.push('(none)');
  else {
    const prev = new Map((before?.status.ports ?? []).map((p) => [p.name, p]));
    out.push(table(
      ['PORT', 'KIND', 'MAC', 'IP', 'FROM VM', 'TO VM', 'RX FRAMES', 'TX FRAMES', 'DROPPED'],
      s.ports.map((p: PortFacts) => {
        const q = prev.get(p.name);
        return [p.name, p.kind, p.mac, p.ip ?? '-', formatRate(rate(p.rxBytes, q?.rxBytes, seconds)), formatRate(rate(p.txBytes, q?.txBytes, seconds)), String(p.rxFrames), String(p.txFrames), String(p.txDropped)];
      }),
      new Set([6, 7, 8]),
    ));
    for (const p of s.ports) if (p.packet !== undefined) out.push(formatPacketDrops(p.name, p.packet));
  }

  out.push('', 'REMOTE VMs (learned)');
  const remote = now.fdb.filter((e) => e.location.kind === 'link');
  if (remote.length === 0) out.push('(none)');
  else {
    const kinds = new Map(now.links.map((l) => [l.peer, l]));
    out.push(table(
      ['MAC', 'LINK', 'PATH', 'SEEN'],
      remote.sort((a, b) => a.mac.localeCompare(b.mac)).map((e) => {
        const peer = e.location.kind === 'link' ? e.location.peer : '';
        const l = kinds.get(peer);
        return [e.mac, peer, l === undefined ? '-' : linkPath(s.role, l), formatAge(wallNowMs - e.ageMs, wallNowMs)];
      }),
    ));
  }
  return out.join('\n');
}

/** One line: a packet port's drops from the VM and the kernel's, by name (zero included, so an operator sees what is counted). */
export function formatPacketDrops(port: string, c: Readonly<PacketPortCounters>): string {
  return `${port} (packet) dropped: ${packetDropReasons(c).map(([reason, n]) => `${reason} ${n}`).join(', ')}`;
}

/** One line: whether established flows bypass the event loop, and how many frames the forwarder's thread carried. */
export function formatNativeForwarding(n: NonNullable<StatusFacts['nativeForwarding']>): string {
  if (!n.running) return `native forwarder: off (${n.reason ?? 'unknown reason'})`;
  const line = `native forwarder: running (${pollMode(n)}, flow TTL ${n.flowTtlMs ?? 0} ms), ${n.carriedFrames ?? 0} frames carried`;
  const p = n.poll;
  if (p === undefined) return line;
  return `${line}; busy polling: ${p.spins} spins (${p.hits} ended by traffic), ${(p.spinNs / 1e6).toFixed(1)} ms spinning, refused ${p.budgetDenied} by the budget and ${p.contended} for busy CPUs`;
}

/** How the forwarder's thread polls: a fixed spin, adaptive, or never. */
function pollMode(n: NonNullable<StatusFacts['nativeForwarding']>): string {
  if ((n.busyPollUs ?? 0) > 0) return `busy poll ${n.busyPollUs} µs after every batch`;
  if (n.adaptivePoll === undefined || n.adaptivePoll === false) return 'no busy polling';
  return `adaptive busy polling up to ${n.adaptivePoll.capUs} µs, budget ${n.adaptivePoll.budgetPercent}% of a core`;
}

/** One line: the VXLAN endpoint and every drop counter, by name (zero included, so an operator sees what is counted). */
export function formatVxlan(v: NonNullable<StatusFacts['vxlan']>): string {
  const drops = vxlanDrops(v.stats).map(([reason, n]) => `${reason} ${n}`).join(', ');
  return `vxlan: VNI ${v.vni} on ${formatHostPort(v.address)}, dropped: ${drops}`;
}
