import type { Database } from 'better-sqlite3';

/**
 * Where the controller's state is durable. Both backends keep the same SQL
 * read model (`ControllerStore.db`), so every read is synchronous and every
 * write lands in the model at once; what differs is when a write is durable:
 *
 * - `sqlite` (the embedded default): the model *is* the database file (WAL);
 *   a write is durable (across a crash of the process) when its statement
 *   returns, and `committed()` has nothing to wait for.
 * - `etcd` (etcd-backend.ts): the model is in memory; the leader's writes
 *   are sent to etcd in lease-fenced transactions, and `committed()` is the
 *   promise that every write made so far is in etcd (or the reason it was
 *   refused). Anything that depends on a write's durability — a message to a
 *   daemon, the migration coordinator's commit point — waits for it.
 */
export interface StoreBackend {
  readonly kind: 'sqlite' | 'etcd';
  /** The database file, or `etcd://host:port,...` with the key prefix. */
  readonly location: string;
  /** Resolves when every write made so far is durable; undefined when they already are. */
  committed(): Promise<void> | undefined;
  /** Run `fn` as one transaction whose writes survive a power failure once durable (see committed()). */
  durableTransaction<T>(db: Database, fn: () => T): T;
  /** Stop (an etcd backend sends its pending writes first); undefined when there is nothing to wait for. */
  close(): Promise<void> | undefined;
}

/** The SQLite file backend: durability is the file's. */
export class SqliteFileBackend implements StoreBackend {
  readonly kind = 'sqlite';
  readonly location: string;

  constructor(path: string) {
    this.location = path;
  }

  committed(): undefined {
    return undefined;
  }

  /** synchronous = FULL for this one transaction (the store runs at NORMAL: durable across a crash of the process only). */
  durableTransaction<T>(db: Database, fn: () => T): T {
    const before = db.pragma('synchronous', { simple: true });
    db.pragma('synchronous = FULL');
    try {
      return db.transaction(fn).immediate();
    } finally {
      db.pragma(`synchronous = ${typeof before === 'number' ? before : 1}`);
    }
  }

  /** The file is closed with the store's database handle, at once. */
  close(): undefined {
    return undefined;
  }
}
