import type { Logger } from '../common/logger.ts';
import type {
  ControllerEventSource, EventHandler, EventPage, EventPayloads, EventQuery, EventSubscribeOptions, EventType, EventView,
} from './api-events.ts';
import type { DecisionView } from './api-views.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * The controller's event history: every event is a row of the `events` table
 * (its id is the event's `seq`, growing for the lifetime of the database) and
 * is delivered to subscribers synchronously, in order, after it is written.
 * Decisions of the reconcile and adaptation loops are events of type
 * `decision`. Old rows are pruned to `maxEvents`, and `traffic-updated`
 * events (one per update period, superseded by the next) to the latest 100.
 */

const MAX_EVENT_PAGE = 1000;
export const DEFAULT_MAX_EVENTS = 10_000;
/** Traffic-updated events kept in the history (older ones are pruned; the latest is what matters). */
export const KEEP_TRAFFIC_EVENTS = 100;

export class ControllerEventLog implements ControllerEventSource {
  readonly #store: ControllerStore;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #maxEvents: number;
  readonly #handlers = new Set<EventHandler>();
  #latest: number;
  #sincePrune = 0;

  constructor(components: { store: ControllerStore; logger: Logger; wallClock?: () => number }, init: { maxEvents?: number } = {}) {
    this.#store = components.store;
    this.#log = components.logger;
    this.#now = components.wallClock ?? Date.now;
    this.#maxEvents = Math.max(1, init.maxEvents ?? DEFAULT_MAX_EVENTS);
    const row = this.#store.db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM events').get() as { id: number };
    this.#latest = row.id;
  }

  /** Append an event and deliver it to every subscriber. */
  emit<K extends EventType>(type: K, payload: EventPayloads[K]): EventView {
    const time = this.#now();
    const seq = this.#store.appendEvent({ atMs: time, type, data: payload });
    this.#latest = seq;
    const event = { seq, time, type, payload } as EventView;
    this.#deliver(event);
    if (++this.#sincePrune >= 100) {
      this.#sincePrune = 0;
      this.#store.db.prepare('DELETE FROM events WHERE id <= ?').run(this.#latest - this.#maxEvents);
      // Traffic snapshots (one per period, the bulk of the history) are superseded by the next: keep the latest few.
      this.#store.db.prepare(
        `DELETE FROM events WHERE type = 'traffic-updated' AND id < (
           SELECT id FROM events WHERE type = 'traffic-updated' ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      ).run(KEEP_TRAFFIC_EVENTS - 1);
    }
    return event;
  }

  /** Record a decision (fast path added, rules pushed, …) as a `decision` event. */
  decide(kind: DecisionView['kind'], reason: string, detail: Record<string, unknown>): DecisionView {
    const decision: DecisionView = { id: this.#latest + 1, time: this.#now(), kind, reason, detail };
    const event = this.emit('decision', { decision });
    // The event seq is the decision id; they agree because emit appends exactly one row.
    return { ...decision, id: event.seq };
  }

  subscribe(handler: EventHandler, options: EventSubscribeOptions = {}): () => void {
    if (options.since !== undefined) {
      let since = options.since;
      for (;;) {
        const page = this.#store.listEvents(since, MAX_EVENT_PAGE);
        for (const r of page) handler(toView(r));
        if (page.length < MAX_EVENT_PAGE) break;
        since = page[page.length - 1]!.id;
      }
    }
    this.#handlers.add(handler);
    return () => { this.#handlers.delete(handler); };
  }

  latestSeq(): number {
    return this.#latest;
  }

  /**
   * On a replica that does not lead (docs/ha.md): deliver to subscribers, in
   * order, the events the leader wrote that have reached this store since the
   * last delivered one. Returns how many were delivered.
   */
  deliverReplicated(): number {
    let delivered = 0;
    for (;;) {
      const page = this.#store.listEvents(this.#latest, MAX_EVENT_PAGE);
      for (const r of page) {
        this.#latest = r.id;
        delivered++;
        this.#deliver(toView(r));
      }
      if (page.length < MAX_EVENT_PAGE) return delivered;
    }
  }

  #deliver(event: EventView): void {
    for (const h of [...this.#handlers]) {
      try {
        h(event);
      } catch (err) {
        this.#log.error({ err, type: event.type }, 'event subscriber threw');
      }
    }
  }

  listEvents(query: EventQuery): EventPage {
    const since = query.since ?? 0;
    const limit = Math.min(Math.max(1, query.limit ?? MAX_EVENT_PAGE), MAX_EVENT_PAGE);
    const types = query.types;
    let rows;
    if (types === undefined || types.length === 0) {
      rows = this.#store.listEvents(since, limit);
    } else {
      const marks = types.map(() => '?').join(',');
      rows = (this.#store.db.prepare(`SELECT * FROM events WHERE id > ? AND type IN (${marks}) ORDER BY id LIMIT ?`).all(since, ...types, limit) as Array<{ id: number; at_ms: number; type: string; data: string }>)
        .map((r) => ({ id: r.id, atMs: r.at_ms, type: r.type, data: JSON.parse(r.data) as unknown }));
    }
    const oldest = this.#store.db.prepare('SELECT COALESCE(MIN(id), 0) AS id FROM events').get() as { id: number };
    return { events: rows.map(toView), oldestSeq: oldest.id, latestSeq: this.#latest };
  }

  /** The most recent decisions, newest last. */
  listDecisions(limit = 100): DecisionView[] {
    const rows = this.#store.db.prepare(`SELECT * FROM events WHERE type = 'decision' ORDER BY id DESC LIMIT ?`).all(Math.max(0, limit)) as Array<{ id: number; data: string }>;
    return rows.reverse().map((r) => {
      const d = (JSON.parse(r.data) as { decision: DecisionView }).decision;
      return { ...d, id: r.id };
    });
  }
}

function toView(r: { id: number; atMs: number; type: string; data: unknown }): EventView {
  const payload = r.type === 'decision' ? { decision: { ...(r.data as { decision: DecisionView }).decision, id: r.id } } : r.data;
  return { seq: r.id, time: r.atMs, type: r.type, payload } as EventView;
}
