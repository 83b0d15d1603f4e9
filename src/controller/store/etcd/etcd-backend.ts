import BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';
import type { Logger } from '../../../common/logger.ts';
import { VnetError } from '../../../common/errors.ts';
import { EtcdUnavailableError, FencedWriteError, NotLeaderError, StoreError } from '../../errors.ts';
import { applyMigrations } from '../migrations.ts';
import { SCHEMA_MIGRATIONS, SCHEMA_VERSION } from '../schema.ts';
import type { StoreBackend } from '../store-backend.ts';
import { installChangeTriggers, type ModelTable } from './change-triggers.ts';
import { ControllerStore } from '../store.ts';
import { prefixEnd, type Compare, type EtcdClient, type TxnOp, type Watch, type WatchEvent } from './etcd-client.ts';

/**
 * The controller's state in etcd. The SQL model stays (an in-memory SQLite
 * database with the same schema), so reads are synchronous and unchanged;
 * etcd holds one key per row, `<prefix>/t/<table>/<primary key as JSON>`,
 * whose value is the row as JSON.
 *
 * - Leader (after `lead(fence)`): temporary triggers on every table report
 *   each changed primary key; the changed rows are read back when the next
 *   flush starts (a write made then rolled back is read as it really is) and
 *   sent as puts and deletes in etcd transactions guarded by the fence
 *   (`If` the election key's create revision is still the leader's). Flushes
 *   run one at a time, in order; `committed()` is the promise of the flush
 *   that holds every write so far. A refused flush means the leadership is
 *   gone: the writer is told (onWriteRefused) and steps down, reloading the model.
 * - Follower (before `lead`, or after a step-down): writes are refused
 *   (NotLeaderError, before anything changes); the model is loaded at one
 *   revision and kept current by a watch from the next one.
 *
 * A flush of more than `maxTxnOps` rows (etcd's `--max-txn-ops`, 128 by
 * default) or `maxTxnBytes` is split into several transactions, each fenced,
 * sent up to FLUSH_CONCURRENCY at once (their keys are distinct).
 */

/** Transactions of one flush in flight at once. */
const FLUSH_CONCURRENCY = 8;

export interface EtcdFence {
  /** The election key; its create revision identifies one term of one leader. */
  key: string;
  createRevision: number;
}

export interface EtcdBackendInit {
  client: EtcdClient;
  /** Every key of this deployment begins with it (default `/vnet`). */
  prefix?: string;
  maxTxnOps?: number;
  /** Bytes of keys and values per transaction (default 1 MiB, under etcd's 1.5 MiB request limit). */
  maxTxnBytes?: number;
  logger?: Logger;
}

interface Deferred { promise: Promise<void>; resolve(): void; reject(err: unknown): void }

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined); // a refusal is also reported through onWriteRefused
  return { promise, resolve, reject };
}

export class EtcdBackend implements StoreBackend {
  readonly kind = 'etcd';
  readonly location: string;
  readonly db: Database;
  readonly #client: EtcdClient;
  readonly #prefix: string;
  readonly #maxTxnOps: number;
  readonly #maxTxnBytes: number;
  readonly #logger: Logger | undefined;
  /** Table → its primary key columns and all its columns. */
  readonly #tables = new Map<string, ModelTable>();
  readonly #statements = new Map<string, Statement>();
  readonly #refusedListeners: Array<(err: VnetError) => void> = [];
  #fence: EtcdFence | undefined;
  #holds: () => boolean = () => false;
  #applyingRemote = false;
  #pending = new Map<string, { table: string; pk: unknown[] }>();
  #next: Deferred | undefined;
  #inflight: Promise<void> | undefined;
  #watch: Watch | undefined;
  #revision = 0;
  /** Tables etcd has rows of that this schema no longer has (dropped by a migration), and how many rows: the next lead deletes them. */
  #orphans = new Map<string, number>();
  #closed = false;
  #steppingDown: Promise<void> = Promise.resolve();

  private constructor(init: EtcdBackendInit, db: Database) {
    this.#client = init.client;
    this.#prefix = init.prefix ?? '/vnet';
    this.#maxTxnOps = init.maxTxnOps ?? 128;
    this.#maxTxnBytes = init.maxTxnBytes ?? 1024 * 1024;
    this.#logger = init.logger;
    this.location = `etcd://${init.client.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}${this.#prefix}`;
    this.db = db;
  }

  /** Load the model from etcd and follow it (a follower until `lead`). */
  static async open(init: EtcdBackendInit): Promise<EtcdBackend> {
    const db = new BetterSqlite3(':memory:');
    const backend = new EtcdBackend(init, db);
    try {
      db.pragma('foreign_keys = ON');
      db.pragma('recursive_triggers = ON');
      applyMigrations(db, SCHEMA_MIGRATIONS);
      for (const [name, table] of installChangeTriggers(db, (t, pk) => backend.#changed(t, pk))) backend.#tables.set(name, table);
      await backend.#load();
      backend.#follow();
    } catch (err) {
      db.close();
      throw err;
    }
    return backend;
  }

  get leading(): boolean {
    return this.#fence !== undefined;
  }

  /** The etcd revision the model reflects (a follower's, or the one loaded at `lead`). */
  get revision(): number {
    return this.#revision;
  }

  /**
   * Called for each refused flush — the fence no longer holds
   * (FencedWriteError), or etcd refused it otherwise — after which etcd and
   * the model differ: the writer must step down. Returns the unsubscription.
   */
  onWriteRefused(listener: (err: VnetError) => void): () => void {
    this.#refusedListeners.push(listener);
    return () => {
      const i = this.#refusedListeners.indexOf(listener);
      if (i >= 0) this.#refusedListeners.splice(i, 1);
    };
  }

  /**
   * Become the writer: stop following, reload the model as etcd has it now,
   * write under `fence` from now on. `holds` (the leadership's, checked
   * synchronously before every write and every flush) says whether the term
   * still holds: once it is false the writes are refused here, as after a
   * step-down, before etcd's fence would refuse them.
   */
  async lead(fence: EtcdFence, holds: () => boolean = () => true): Promise<void> {
    await this.#steppingDown;
    this.#watch?.close();
    this.#watch = undefined;
    try {
      await this.#load();
      // The rows of tables a migration dropped go with the schema version that dropped them (a program that knows them refuses that version).
      const orphans = [...this.#orphans].map(([table, rows]) => ({ table, rows, prefix: `${this.#prefix}/t/${table}/` }));
      const r = await this.#client.txn([fenceCompare(fence)], [
        { put: { key: `${this.#prefix}/schema`, value: String(SCHEMA_VERSION) } },
        ...orphans.map((o) => ({ delete: { key: o.prefix, rangeEnd: prefixEnd(o.prefix) } })),
      ]);
      if (!r.succeeded) throw new FencedWriteError(`leadership ${fence.key}@${fence.createRevision} is gone before the store could be led`);
      if (orphans.length > 0) this.#logger?.info({ tables: Object.fromEntries(orphans.map((o) => [o.table, o.rows])), schema: SCHEMA_VERSION }, 'etcd rows of tables this schema no longer has: deleted');
      this.#orphans.clear();
    } catch (err) {
      this.#follow(); // still a follower: keep the model current
      throw err;
    }
    this.#fence = fence;
    this.#holds = holds;
  }

  /** Stop writing (the leadership ended): unsent writes are dropped, the model reloaded from etcd and followed. */
  stepDown(): Promise<void> {
    if (this.#fence === undefined) return this.#steppingDown;
    this.#fence = undefined;
    this.#pending.clear();
    this.#next?.reject(new NotLeaderError('pending store writes dropped at step-down'));
    this.#next = undefined;
    const inflight = this.#inflight;
    this.#steppingDown = (async (): Promise<void> => {
      await inflight?.catch(() => undefined);
      // Reload until etcd answers (it may be what ended the term).
      for (let delay = 100; !this.#closed; delay = Math.min(2000, delay * 2)) {
        try {
          await this.#load();
          this.#follow();
          return;
        } catch (err) {
          this.#logger?.warn({ err }, 'store reload after the step-down failed: trying again');
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    })();
    return this.#steppingDown;
  }

  committed(): Promise<void> | undefined {
    return this.#next?.promise ?? this.#inflight;
  }

  /** Durable once `committed()` resolves: a flush is one fenced etcd transaction (quorum-replicated, fsynced). */
  durableTransaction<T>(db: Database, fn: () => T): T {
    return db.transaction(fn).immediate();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#watch?.close();
    this.#watch = undefined;
    const pending = this.committed();
    return pending === undefined ? Promise.resolve() : pending.catch(() => undefined);
  }

  // ---- leader: changed rows to etcd ----------------------------------------

  #changed(table: string, pkJson: string): void {
    if (this.#applyingRemote) return;
    if (this.#fence !== undefined && !this.#holds()) void this.stepDown();
    if (this.#fence === undefined) throw new NotLeaderError(`write to ${table}`);
    this.#pending.set(`${table}\0${pkJson}`, { table, pk: JSON.parse(pkJson) as unknown[] });
    if (this.#next === undefined) {
      const next = deferred();
      this.#next = next;
      const previous = this.#inflight;
      const run = async (): Promise<void> => {
        await previous?.catch(() => undefined);
        await this.#flush(next);
      };
      const inflight = run();
      this.#inflight = inflight;
      void inflight.finally(() => { if (this.#inflight === inflight) this.#inflight = undefined; });
    }
  }

  async #flush(batch: Deferred): Promise<void> {
    if (this.#next !== batch) return; // dropped at a step-down
    const fence = this.#fence;
    this.#next = undefined;
    const ops = this.#opsFor(this.#pending);
    this.#pending = new Map();
    try {
      if (fence === undefined) throw new NotLeaderError('store flush');
      // The chunks of one flush touch distinct keys (one operation a row), so they go out together,
      // a few at a time: a flush costs about one round trip to etcd, not one a chunk. The next flush
      // starts only when all of them are answered, so flushes stay in order.
      const chunks = this.#chunks(ops);
      let failed = false;
      const send = async (): Promise<void> => {
        for (let chunk = chunks.shift(); chunk !== undefined && !failed; chunk = chunks.shift()) {
          try {
            if (!this.#holds() || this.#fence !== fence) {
              void this.stepDown();
              throw new NotLeaderError('store flush after the term ended');
            }
            const r = await this.#txnWhileLeading(fence, chunk);
            if (!r.succeeded) throw new FencedWriteError(`etcd refused a write fenced by ${fence.key}@${fence.createRevision}: another leader holds the key`);
            this.#revision = Math.max(this.#revision, r.revision);
          } catch (err) {
            failed = true; // the other senders stop before their next chunk
            throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(FLUSH_CONCURRENCY, chunks.length) }, send));
      batch.resolve();
    } catch (err) {
      // Fenced, or refused for another reason (too large, ...): etcd and the model differ, so this term is over.
      if (!(err instanceof NotLeaderError)) {
        const refusal = err instanceof VnetError ? err : new StoreError(`etcd write failed: ${(err as Error).message}`, { cause: err });
        for (const l of this.#refusedListeners) l(refusal);
      }
      batch.reject(err);
    }
  }

  /** Transactions of at most `maxTxnOps` operations and `maxTxnBytes` of values (etcd's request limit is 1.5 MiB by default). */
  #chunks(ops: TxnOp[]): TxnOp[][] {
    const chunks: TxnOp[][] = [];
    let chunk: TxnOp[] = [];
    let bytes = 0;
    for (const op of ops) {
      const size = 'put' in op ? op.put.key.length + op.put.value.length : op.delete.key.length;
      if (chunk.length > 0 && (chunk.length >= this.#maxTxnOps || bytes + size > this.#maxTxnBytes)) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(op);
      bytes += size;
    }
    if (chunk.length > 0) chunks.push(chunk);
    return chunks;
  }

  /**
   * One fenced transaction, sent again while etcd cannot be reached (a
   * member down, an etcd leader election) for as long as this replica still
   * leads: the lease keeper ends the leadership when that takes too long
   * (leader-election.ts), and the write is then dropped with the term.
   */
  async #txnWhileLeading(fence: EtcdFence, ops: TxnOp[]): Promise<{ succeeded: boolean; revision: number }> {
    for (let delay = 50; ; delay = Math.min(1000, delay * 2)) {
      try {
        return await this.#client.txn([fenceCompare(fence)], ops);
      } catch (err) {
        if (!(err instanceof EtcdUnavailableError) || this.#fence !== fence || this.#closed) throw err;
        this.#logger?.warn({ err }, 'etcd unreachable: store write sent again');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The etcd operations that bring the changed rows' keys to the model's state now. */
  #opsFor(changed: ReadonlyMap<string, { table: string; pk: unknown[] }>): TxnOp[] {
    const ops: TxnOp[] = [];
    for (const { table, pk } of changed.values()) {
      const t = this.#tables.get(table)!;
      const where = t.pk.map((c) => `"${c}" = ?`).join(' AND ');
      const row = this.#statement(`SELECT * FROM "${table}" WHERE ${where}`).get(...pk) as Record<string, unknown> | undefined;
      const key = this.#rowKey(table, pk);
      ops.push(row === undefined ? { delete: { key } } : { put: { key, value: JSON.stringify(row) } });
    }
    return ops;
  }

  // ---- follower: etcd to the model -------------------------------------------

  async #load(): Promise<void> {
    const schema = await this.#client.range(`${this.#prefix}/schema`);
    const version = Number(schema.kvs[0]?.value ?? 0);
    if (version > SCHEMA_VERSION) {
      throw new StoreError(`etcd store ${this.location} is at schema version ${version}, newer than this program's ${SCHEMA_VERSION}; refusing to use it`);
    }
    const rows = `${this.#prefix}/t/`;
    const r = await this.#client.range(rows, prefixEnd(rows));
    const orphans = new Map<string, number>();
    this.#remote(() => {
      for (const table of this.#tables.keys()) this.#statement(`DELETE FROM "${table}"`).run();
      for (const kv of r.kvs) {
        const table = this.#tableOf(kv.key);
        if (this.#tables.has(table) || table === '') this.#applyPut(kv.key, kv.value); // '': not a row's key, ignored with a warning
        else orphans.set(table, (orphans.get(table) ?? 0) + 1);
      }
    });
    this.#revision = r.revision;
    this.#orphans = orphans;
    if (orphans.size > 0) this.#logger?.info({ tables: Object.fromEntries(orphans), schema: SCHEMA_VERSION }, 'etcd has rows of tables this schema no longer has: ignored, and deleted when this controller leads');
  }

  #follow(): void {
    if (this.#closed) return;
    const rows = `${this.#prefix}/t/`;
    this.#watch = this.#client.watch(rows, prefixEnd(rows), this.#revision + 1, {
      onEvents: (events, revision) => this.#applyEvents(events, revision),
      onCompacted: () => {
        this.#logger?.warn({ store: this.location }, 'etcd history compacted under the watch: reloading the store');
        void this.#load().then(() => this.#follow(), (err: unknown) => this.#logger?.error({ err }, 'store reload failed'));
      },
    });
  }

  #applyEvents(events: WatchEvent[], revision: number): void {
    if (this.#fence !== undefined) return; // the leader is the source of these
    this.#remote(() => {
      for (const e of events) {
        if (e.type === 'PUT') this.#applyPut(e.kv.key, e.kv.value);
        else this.#applyDelete(e.kv.key);
      }
    });
    this.#revision = revision;
  }

  #applyPut(key: string, value: string): void {
    const parsed = this.#parseKey(key);
    if (parsed === undefined) return;
    const { table, columns } = parsed;
    const row = JSON.parse(value) as Record<string, unknown>;
    const cols = Object.keys(row).filter((c) => columns.has(c));
    this.#statement(`INSERT OR REPLACE INTO "${table}" (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`)
      .run(...cols.map((c) => row[c]));
  }

  #applyDelete(key: string): void {
    const parsed = this.#parseKey(key);
    if (parsed === undefined) return;
    const { table, pkCols, pk } = parsed;
    this.#statement(`DELETE FROM "${table}" WHERE ${pkCols.map((c) => `"${c}" = ?`).join(' AND ')}`).run(...pk);
  }

  /** The table of a row's key (`<prefix>/t/<table>/<pk>`); '' when the key has no table part. */
  #tableOf(key: string): string {
    const rest = key.slice(`${this.#prefix}/t/`.length);
    const slash = rest.indexOf('/');
    return slash < 0 ? '' : rest.slice(0, slash);
  }

  #parseKey(key: string): { table: string; columns: Set<string>; pkCols: string[]; pk: unknown[] } | undefined {
    const table = this.#tableOf(key);
    const t = this.#tables.get(table);
    if (t === undefined) {
      this.#logger?.warn({ key }, 'etcd key of no known table ignored');
      return undefined;
    }
    return { table, columns: t.columns, pkCols: t.pk, pk: JSON.parse(decodeURIComponent(key.slice(`${this.#prefix}/t/${table}/`.length))) as unknown[] };
  }

  /** Apply etcd's rows: as the leader checked them, in any order (so no foreign key checks), in one transaction. */
  #remote(fn: () => void): void {
    this.#applyingRemote = true;
    this.db.pragma('foreign_keys = OFF');
    try {
      this.db.transaction(fn).immediate();
    } finally {
      this.db.pragma('foreign_keys = ON');
      this.#applyingRemote = false;
    }
  }

  // ---- the model's tables -----------------------------------------------------

  #rowKey(table: string, pk: unknown[]): string {
    return `${this.#prefix}/t/${table}/${encodeURIComponent(JSON.stringify(pk))}`;
  }

  #statement(sql: string): Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }
}

function fenceCompare(fence: EtcdFence): Compare {
  return { key: fence.key, target: 'CREATE', createRevision: fence.createRevision };
}

/** An etcd-backed store: the model loaded from etcd and followed; `backend.lead(fence)` makes it writable. */
export async function openEtcdStore(init: EtcdBackendInit): Promise<{ store: ControllerStore; backend: EtcdBackend }> {
  const backend = await EtcdBackend.open(init);
  return { store: new ControllerStore(backend.db, backend), backend };
}
