/**
 * Hellos accepted, waiting for their welcome, welcomed in batches.
 *
 * A deployment reconnecting (a new leader, a controller restart) sends
 * hundreds of hellos at once, and each welcome starts work whose cost is in
 * the deployment's size, not the daemon's: a reconcile over every host. So
 * the control server queues each authenticated hello here and welcomes
 * them in batches of at most `maxBatch`, one batch per turn of the event
 * loop (`setImmediate`): the handler does the shared work once per batch
 * (ControlHandler.sessionsOpened), and between batches the loop runs
 * everything else — the operator API, the update period, acks, reports.
 *
 * A queued hello keeps its pending slot (control-listener.ts) until its
 * batch: the queue is bounded by the listener's cap on connections not
 * welcomed yet, and the hello deadline still applies while it waits.
 */

export const DEFAULT_WELCOME_BATCH = 64;

export class WelcomeBatch<T> {
  readonly #welcome: (batch: T[]) => void;
  readonly #maxBatch: number;
  #queue: T[] = [];
  #scheduled: NodeJS.Immediate | undefined;

  /** `welcome` gets each batch, in arrival order. */
  constructor(welcome: (batch: T[]) => void, maxBatch = DEFAULT_WELCOME_BATCH) {
    if (!(maxBatch >= 1)) throw new RangeError(`welcome batch must be at least 1 (got ${maxBatch})`);
    this.#welcome = welcome;
    this.#maxBatch = maxBatch;
  }

  get size(): number {
    return this.#queue.length;
  }

  push(item: T): void {
    this.#queue.push(item);
    this.#scheduled ??= setImmediate(() => this.#drain());
  }

  /** Drop what is queued (the server is closing). */
  clear(): void {
    this.#queue = [];
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
  }

  #drain(): void {
    this.#scheduled = undefined;
    const batch = this.#queue.splice(0, this.#maxBatch);
    try {
      if (batch.length > 0) this.#welcome(batch);
    } finally {
      // The next batch on a later turn (after what this one queued), whatever this one did.
      if (this.#queue.length > 0) this.#scheduled ??= setImmediate(() => this.#drain());
    }
  }
}
