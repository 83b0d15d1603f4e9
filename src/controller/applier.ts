import type { Logger } from '../common/logger.ts';
import type { Effects, EventEffect, StoreWrite } from './effects.ts';
import type { ControllerEventLog } from './event-log.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { SessionTable } from './session-table.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * The one place where the controller's plans touch the world: store writes
 * (in order, in one transaction; a durable one when it holds a migration's
 * commit point), then messages to the connected daemons (a push that went
 * out is counted), then events and decisions, then log lines.
 * No decisions here: what to do is the planners' (effects.ts).
 *
 * Writes land in the store's model at once (the planners of the next input
 * read them); what follows them waits until they are durable: at once on
 * SQLite, after etcd's answer on etcd (`store.committed()`), so no daemon
 * hears of desired state, and no migration goes past its commit point, that
 * a new leader would not find. Effects keep their order across applies; a
 * write etcd refused (the leadership is gone) releases none of what follows.
 */

export interface ApplierComponents {
  store: ControllerStore;
  events: ControllerEventLog;
  sessions: SessionTable;
  metrics: ControllerMetrics;
  logger: Logger;
}

export class Applier {
  readonly #c: ApplierComponents;
  /** The announcement of the last apply that waited for durability; and how many are waiting. */
  #tail: Promise<void> = Promise.resolve();
  #waiting = 0;

  constructor(components: ApplierComponents) {
    this.#c = components;
  }

  apply(effects: Effects): void {
    const { store } = this.#c;
    if (effects.writes.length > 0) {
      const write = (): void => { for (const w of effects.writes) this.#write(w); };
      if (effects.writes.some((w) => w.op === 'migration' && w.durable === true)) store.durableTransaction(write);
      else store.transaction(write);
    }
    const committed = store.committed();
    if (committed === undefined && this.#waiting === 0) {
      this.#announce(effects);
      return;
    }
    this.#waiting++;
    const previous = this.#tail;
    this.#tail = (async (): Promise<void> => {
      try {
        await previous;
        await committed;
        this.#announce(effects);
      } catch (err) {
        this.#c.logger.warn({ err, messages: effects.messages.length }, 'store writes not durable: what depended on them is dropped');
      } finally {
        this.#waiting--;
      }
    })();
  }

  /** Applies whose messages still wait for their writes to be durable (etcd): pushes planned, not sent yet. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Resolves once every apply so far has announced what it had (or dropped it, its writes refused). */
  settled(): Promise<void> {
    return this.#tail;
  }

  #announce(effects: Effects): void {
    // Messages first: a daemon's push (a cutover's rules) does not wait for the event rows, their subscribers or the log lines.
    for (const { host, message } of effects.messages) {
      const session = this.#c.sessions.get(host)?.session;
      if (session === undefined || !session.send(message)) continue;
      if (message.type === 'set-links' || message.type === 'set-rules' || message.type === 'patch-rules') {
        this.#c.metrics.pushes.inc({ kind: message.type === 'set-links' ? 'links' : 'rules' });
        this.#c.logger.debug({ host, type: message.type }, 'pushed desired state');
      }
    }
    for (const e of effects.events) this.#event(e);
    for (const l of effects.logs) this.#c.logger[l.level](l.fields, l.msg);
  }

  #write(w: StoreWrite): void {
    const { store } = this.#c;
    switch (w.op) {
      case 'upsert-vm': store.upsertVm(w.vm); return;
      case 'remove-vm': store.removeVm(w.mac); return;
      case 'put-link': store.putLink(w.link, w.atMs); return;
      case 'delete-link': store.deleteLink(w.a, w.b, w.kind); return;
      case 'host-connected': store.setHostConnected(w.host, w.connected, w.atMs); return;
      case 'host-facts': store.recordHostFacts(w.facts, w.atMs); return;
      case 'traffic-samples': store.insertTrafficSamples(w.samples); return;
      case 'prune-traffic': store.pruneTraffic(w.beforeMs); return;
      case 'topology': store.insertTopology({ atMs: w.atMs, kind: w.kind, changed: true, body: w.body }); return;
      case 'ack': store.recordAck(w.host, w.kind, w.version); return;
      case 'versions': store.putVersions(w.versions); return;
      case 'migration': store.putMigration(w.migration); return;
      case 'migration-step': store.appendMigrationStep(w.step); return;
    }
  }

  #event(e: EventEffect): void {
    if (e.kind === 'decision') this.#c.events.decide(e.decision, e.reason, e.detail);
    else this.#c.events.emit(e.type, e.payload as never);
  }
}
