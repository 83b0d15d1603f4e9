import type { HostView, LinkRequester, LinkState, LinkView, MigrationView, RuleView, TopologyView, VmView } from './api-views.ts';
import { migrationViewOf } from './migration-run.ts';
import type { BackboneVerdict } from './hub-status.ts';
import type { HostRecord, LinkRecord, LinkReportRecord, MigrationRecord, TopologyRecord, VmRecord } from './store/records.ts';

/**
 * Records of the store → the views of the operator API (api-model.ts): plain
 * JSON, null for absent, links normalised a < b.
 */

export interface LinkRate {
  bytesPerSec: number;
  framesPerSec: number;
}

/** A host's view; `backbone`: the hub verdict over every host (hub-status.ts), for its hub fields. */
export function hostView(h: HostRecord, backbone: BackboneVerdict): HostView {
  return {
    id: h.id, site: h.site ?? null, addresses: h.addresses, role: h.role, state: h.connected ? 'up' : 'down', lastSeen: h.lastSeenMs ?? null,
    hub: h.role === 'spoke' && h.connected ? backbone.hubOf.get(h.id) ?? null : null,
    hubState: h.role === 'hub' ? backbone.hubs.get(h.id) ?? (h.connected ? 'standby' : 'down') : null,
  };
}

export function vmView(v: VmRecord): VmView {
  return { mac: v.mac, ip: v.ip ?? null, host: v.host ?? null, state: v.state, name: v.name ?? null };
}

/** Who asked for a link, from the stored `requested_by` ("deployment", "adaptation", "operator:<who>"). */
export function requesterOf(requestedBy: string): { requestedBy: LinkRequester; actor: string | null } {
  if (requestedBy === 'deployment') return { requestedBy: 'config', actor: null };
  if (requestedBy.startsWith('operator')) return { requestedBy: 'operator', actor: requestedBy };
  return { requestedBy: 'adaptation', actor: requestedBy };
}

/**
 * A desired link with what the daemons report of it: state (up if either end
 * says up), totals (what each end sent towards the other) and rates.
 */
export function linkView(l: LinkRecord, reports: readonly LinkReportRecord[], rates: ReadonlyMap<string, LinkRate>): LinkView {
  const ends = reports.filter((r) => (r.host === l.a && r.peer === l.b) || (r.host === l.b && r.peer === l.a));
  let state: LinkState = 'pending';
  if (ends.some((r) => r.state === 'up')) state = 'up';
  else if (ends.some((r) => r.state === 'connecting')) state = 'connecting';
  else if (ends.length > 0) state = 'down';
  const fromA = ends.find((r) => r.host === l.a);
  const fromB = ends.find((r) => r.host === l.b);
  const bytes = (fromA?.txBytes ?? fromB?.rxBytes ?? 0) + (fromB?.txBytes ?? fromA?.rxBytes ?? 0);
  const frames = (fromA?.txFrames ?? fromB?.rxFrames ?? 0) + (fromB?.txFrames ?? fromA?.rxFrames ?? 0);
  const rate = rates.get(pairKey(l.a, l.b)) ?? { bytesPerSec: 0, framesPerSec: 0 };
  return { a: l.a, b: l.b, kind: l.kind, state, ...requesterOf(l.requestedBy), reason: l.reason, bytes, frames, bytesPerSec: rate.bytesPerSec, framesPerSec: rate.framesPerSec };
}

export function pairKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

export function ruleViews(rules: readonly { id: string; priority: number; src: string; dst: string; action: RuleView['action'] }[], reason: (id: string) => string | null): RuleView[] {
  return rules.map((r) => ({ id: r.id, priority: r.priority, src: r.src, dst: r.dst, action: r.action, reason: reason(r.id) }));
}

const PHASES = new Set(['prepare', 'disk', 'memory', 'stop-and-copy', 'cutover', 'resume', 'done']);

/** A stored migration: the coordinator's record of it, or (rows older than the coordinator) what the row and its last step say. */
export function migrationView(m: MigrationRecord, lastStep: { step: string; detail: unknown } | undefined): MigrationView {
  if (m.run !== undefined) return migrationViewOf(m.run);
  const detail = (lastStep?.detail ?? {}) as Record<string, unknown>;
  const num = (k: string): number | null => (typeof detail[k] === 'number' ? (detail[k] as number) : null);
  const phase = lastStep !== undefined && PHASES.has(lastStep.step) ? lastStep.step as MigrationView['phase'] : m.state === 'done' ? 'done' : 'prepare';
  const state: MigrationView['state'] = m.state === 'done' ? 'succeeded' : m.state === 'failed' ? 'failed' : m.state === 'cancelled' ? 'cancelled' : 'running';
  return {
    id: m.id, vm: m.vmMac, from: m.fromHost, to: m.toHost, phase,
    progress: num('progress') ?? (m.state === 'done' ? 1 : 0),
    bytesSent: num('bytesSent') ?? 0, bytesTotal: num('bytesTotal'), etaMs: num('etaMs'),
    state, startedAt: m.startedMs, finishedAt: m.finishedMs ?? null, error: m.error ?? null,
    step: lastStep?.step ?? m.state, rule: null, requestedBy: m.requestedBy, enginePhase: null, iteration: null, pagesLeft: null, dirtyRate: null, cutover: null,
  };
}

export const EMPTY_TOPOLOGY: TopologyView = { class: 'none', centre: null, confidence: 0, edges: [], detectedAt: null, weightsAt: null };

/** The stored inferred topology; its body is the TopologyView the inference step produced. */
export function topologyView(t: TopologyRecord | undefined): TopologyView {
  if (t === undefined) return EMPTY_TOPOLOGY;
  const body = t.body as Partial<TopologyView> | null;
  if (body === null || typeof body !== 'object' || !Array.isArray(body.edges)) return EMPTY_TOPOLOGY;
  return {
    class: (body.class ?? 'irregular'),
    centre: body.centre ?? null,
    confidence: typeof body.confidence === 'number' ? body.confidence : 0,
    edges: body.edges,
    detectedAt: body.detectedAt ?? t.atMs,
    weightsAt: typeof body.weightsAt === 'number' ? body.weightsAt : body.detectedAt ?? t.atMs,
  };
}
