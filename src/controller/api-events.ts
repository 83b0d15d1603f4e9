import type { LinkKind } from '../control/daemon-control.ts';
import type { DecisionView, HostView, HubState, LinkView, MigrationView, PlacementView, TopologyEdge, TopologyView, VmView } from './api-views.ts';

/**
 * The controller's events as the operator API streams them (WebSocket,
 * `GET /api/v1/events`): one payload type per event, the event types in
 * order, an event's envelope (`seq`, `time`), the query and page of the
 * retained log, and the source a server subscribes to. State-carrying events
 * hold the whole new view, so a client applies them without re-fetching.
 */

/** Payload of each event type. State-carrying events hold the whole new view, so a client can apply them without re-fetching. */
export interface EventPayloads {
  'host-changed': { host: HostView };
  'host-removed': { id: string };
  /** A hub's state changed (lost, down, back as active or standby); `spokes` are on it now. */
  'hub-changed': { hub: string; state: HubState; previous: HubState | null; spokes: string[] };
  /** A spoke's backbone link is up to another hub than before (a failover; previous null: it had none). */
  'spoke-hub-changed': { host: string; hub: string; previous: string | null };
  'vm-changed': { vm: VmView };
  'vm-removed': { mac: string };
  'link-changed': { link: LinkView };
  'link-removed': { a: string; b: string; kind: LinkKind; actor: string | null; reason: string };
  /** Counters and rates of every link, once per update period. */
  'traffic-updated': { at: number; links: LinkRateView[]; topology?: TopologyWeightsView };
  'rules-changed': { host: string; version: number };
  'topology-changed': { topology: TopologyView };
  'migration-changed': { migration: MigrationView };
  'placement-changed': { placement: PlacementView };
  decision: { decision: DecisionView };
  /** Audit record of an operator action done through the API. */
  'operator-action': { actor: string; action: string; detail: Record<string, unknown> };
  /** A daemon refused what a VM did (docs/security.md): a MAC seen away from its home, or a port limit that dropped frames. Rate limited by the daemon. */
  security: { host: string; report: SecurityReport };
}

/** What a daemon reported refusing; `frames`: since its previous report of the same kind. */
export type SecurityReport =
  | { kind: 'mac-conflict'; mac: string; seenAt: string; home: string; by: 'port' | 'controller'; frames: number }
  | { kind: 'port-limit'; port: string; limit: 'spoofed-source' | 'mac-limit' | 'mac-rate' | 'flood-rate'; frames: number };

/** The current weights of the announced topology's edges, once per update period. */
export interface TopologyWeightsView {
  weightsAt: number;
  edges: TopologyEdge[];
}

export interface LinkRateView {
  a: string;
  b: string;
  bytes: number;
  frames: number;
  bytesPerSec: number;
  framesPerSec: number;
}

export type EventType = keyof EventPayloads;

export const EVENT_TYPES: readonly EventType[] = [
  'host-changed',
  'host-removed',
  'hub-changed',
  'spoke-hub-changed',
  'vm-changed',
  'vm-removed',
  'link-changed',
  'link-removed',
  'traffic-updated',
  'rules-changed',
  'topology-changed',
  'migration-changed',
  'placement-changed',
  'decision',
  'operator-action',
  'security',
];

/** One event: `seq` grows by one per event, from 1, for the lifetime of the store. */
export type EventView = {
  [K in EventType]: { seq: number; time: number; type: K; payload: EventPayloads[K] };
}[EventType];

export interface EventQuery {
  /** Only events with seq > since. */
  since?: number;
  /** At most this many (the oldest first); implementations cap it. */
  limit?: number;
  types?: readonly EventType[];
}

export interface EventPage {
  events: EventView[];
  /** The oldest seq still retained (0 if none): a client whose `since` is below oldestSeq - 1 missed events. */
  oldestSeq: number;
  latestSeq: number;
}

export type EventHandler = (event: EventView) => void;

export interface EventSubscribeOptions {
  /** Replay retained events with seq > since (synchronously, in order) before live ones. */
  since?: number;
}

export interface ControllerEventSource {
  /** Handlers are called synchronously, in seq order, and must not throw. Returns the unsubscribe function. */
  subscribe(handler: EventHandler, options?: EventSubscribeOptions): () => void;
  latestSeq(): number;
}
