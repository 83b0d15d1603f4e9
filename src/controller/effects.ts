import type { DaemonFacts, LinkKind } from '../control/daemon-control.ts';
import type { ControllerMessage } from '../control/control-protocol.ts';
import type { DecisionView } from './api-views.ts';
import type { EventPayloads, EventType } from './api-events.ts';
import type { DesiredVersions, MigrationRecord, MigrationStepRecord, TrafficSampleRecord, VmRecord } from './store/records.ts';

/**
 * What a planner wants done, as data. Every controller decision (VM
 * learning, adaptation, placement advice, reconcile, the migration
 * coordinator) is a function of state, input and `now` that returns an
 * `Effects`; the applier (applier.ts) is the only code that performs them:
 *
 *   writes    → the store, in order, in one transaction
 *   events    → the event log (events and decisions), in order, after the writes
 *   logs      → the injected logger
 *   messages  → the connected daemons' sessions
 *
 * and `reconcile` tells the control loop that desired state must be
 * recomputed (why), once the effects are applied. A planner that remembers
 * something between calls returns its next state beside its effects:
 * `Planned<S>`; a stateless one returns `Effects`.
 */

export type StoreWrite =
  | { op: 'upsert-vm'; vm: VmRecord }
  | { op: 'remove-vm'; mac: string }
  | { op: 'put-link'; link: { a: string; b: string; kind: LinkKind; requestedBy: string; reason: string }; atMs: number }
  | { op: 'delete-link'; a: string; b: string; kind: LinkKind }
  | { op: 'host-connected'; host: string; connected: boolean; atMs: number }
  | { op: 'host-facts'; facts: DaemonFacts; atMs: number }
  | { op: 'traffic-samples'; samples: TrafficSampleRecord[] }
  | { op: 'prune-traffic'; beforeMs: number }
  | { op: 'topology'; atMs: number; kind: string; body: unknown }
  | { op: 'ack'; host: string; kind: 'links' | 'rules'; version: number }
  | { op: 'versions'; versions: DesiredVersions }
  /** A migration and the coordinator's record of it; `durable`: the transaction is on disk before anything else is done (the commit point). */
  | { op: 'migration'; migration: MigrationRecord; durable?: boolean }
  | { op: 'migration-step'; step: Omit<MigrationStepRecord, 'id'> };

/** An event of the history (`emit`) or a decision (`decide`). */
export type EventEffect =
  | { [K in EventType]: { kind: 'event'; type: K; payload: EventPayloads[K] } }[EventType]
  | { kind: 'decision'; decision: DecisionView['kind']; reason: string; detail: Record<string, unknown> };

export interface LogEffect {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg: string;
}

export interface OutgoingMessage {
  host: string;
  message: ControllerMessage;
}

export interface Effects {
  readonly writes: StoreWrite[];
  readonly events: EventEffect[];
  readonly logs: LogEffect[];
  readonly messages: OutgoingMessage[];
  /** Why desired state must be recomputed, if it must. */
  reconcile: string | undefined;
}

/** A planner's result: its next state and the effects to perform. */
export interface Planned<S> {
  state: S;
  effects: Effects;
}

export function noEffects(): Effects {
  return { writes: [], events: [], logs: [], messages: [], reconcile: undefined };
}

/** One Effects of several, in order (the first reconcile reason wins). */
export function combineEffects(...all: readonly Effects[]): Effects {
  const out = noEffects();
  for (const e of all) {
    out.writes.push(...e.writes);
    out.events.push(...e.events);
    out.logs.push(...e.logs);
    out.messages.push(...e.messages);
    out.reconcile ??= e.reconcile;
  }
  return out;
}

/** An `emit` as an effect, typed by event type. */
export function event<K extends EventType>(type: K, payload: EventPayloads[K]): EventEffect {
  return { kind: 'event', type, payload } as EventEffect;
}

/** A `decide` as an effect. */
export function decision(kind: DecisionView['kind'], reason: string, detail: Record<string, unknown>): EventEffect {
  return { kind: 'decision', decision: kind, reason, detail };
}
