import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { OvsdbConnectionError, OvsdbProtocolError, OvsdbRpcError, OvsdbTransactionError } from './errors.ts';
import { JsonStream } from './json-stream.ts';

/**
 * A small RFC 7047 client: JSON-RPC 1.0 over a Unix socket or TCP.
 * `transact` runs operations atomically (an operation error rejects with an
 * OvsdbTransactionError naming it: nothing was committed); `monitor` returns
 * the initial rows and then calls back with every change (`update`
 * notifications); the server's `echo` keepalives are answered. Pending
 * requests fail with the connection's error if it is lost, and bad bytes
 * from the server close it (OvsdbProtocolError).
 */

/**
 * Where ovsdb-server listens: its Unix socket, TCP, or SSL (`tls`: mutual TLS
 * 1.2+, the server's certificate checked against `ca` — not its name: OVS
 * certificates name a host id, not an address — and ours presented).
 */
export type OvsdbTarget = { path: string } | { host: string; port: number; tls?: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer } };

/** One table's changes: row uuid → { old?, new? } (§4.1.6). */
export type TableUpdates = Record<string, Record<string, { old?: Record<string, unknown>; new?: Record<string, unknown> }>>;

export interface MonitorRequest {
  columns?: string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}

export type OvsdbOperation = Record<string, unknown> & { op: string };

export type OvsdbClientEvents = { close: [OvsdbConnectionError | OvsdbProtocolError | undefined] };

type Pending = { method: string; resolve: (v: unknown) => void; reject: (e: Error) => void };

export class OvsdbClient extends EventEmitter<OvsdbClientEvents> {
  readonly #socket: Socket;
  readonly #where: string;
  readonly #pending = new Map<number, Pending>();
  readonly #monitors = new Map<string, (updates: TableUpdates) => void>();
  #nextId = 1;
  #nextMonitor = 1;
  #closed = false;

  private constructor(socket: Socket, where: string, maxMessageBytes: number | undefined) {
    super();
    this.#socket = socket;
    this.#where = where;
    const stream = new JsonStream(
      { onJson: (v) => this.#onMessage(v), onError: (e) => this.#close(e) },
      maxMessageBytes === undefined ? {} : { maxMessageBytes },
    );
    socket.on('data', (c: Buffer) => stream.push(c));
    socket.on('error', (err) => this.#close(new OvsdbConnectionError(`OVSDB ${where}: ${err.message}`, { cause: err })));
    socket.on('close', () => this.#close(new OvsdbConnectionError(`OVSDB ${where} closed the connection`)));
  }

  /** Connect (Unix socket `{ path }`, TCP `{ host, port }`, SSL `{ host, port, tls }`); rejects with an OvsdbConnectionError. */
  static connect(target: OvsdbTarget, init: { timeoutMs?: number; maxMessageBytes?: number } = {}): Promise<OvsdbClient> {
    const tls = 'path' in target ? undefined : target.tls;
    const where = 'path' in target ? `unix:${target.path}` : `${tls === undefined ? 'tcp' : 'ssl'}:${target.host}:${target.port}`;
    return new Promise((resolve, reject) => {
      const socket = 'path' in target ? connect(target.path)
        : tls === undefined ? connect(target.port, target.host)
        : tlsConnect({ host: target.host, port: target.port, ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', checkServerIdentity: () => undefined });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new OvsdbConnectionError(`OVSDB ${where}: no connection within ${init.timeoutMs ?? 10_000} ms`));
      }, init.timeoutMs ?? 10_000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new OvsdbConnectionError(`OVSDB ${where}: ${err.message}`, { cause: err }));
      });
      socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new OvsdbClient(socket, where, init.maxMessageBytes));
      });
    });
  }

  /** A JSON-RPC request; resolves with `result`, rejects with an OvsdbRpcError when `error` is set. */
  request(method: string, params: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new OvsdbConnectionError(`OVSDB ${this.#where} is closed`));
      const id = this.#nextId++;
      this.#pending.set(id, { method, resolve, reject });
      this.#socket.write(JSON.stringify({ method, params, id }));
    });
  }

  listDbs(): Promise<string[]> {
    return this.request('list_dbs', []) as Promise<string[]>;
  }

  /** Operations run atomically; the results, one per operation. `what` names the transaction in errors. */
  async transact(db: string, operations: readonly OvsdbOperation[], what = 'transaction'): Promise<Record<string, unknown>[]> {
    const results = (await this.request('transact', [db, ...operations])) as (Record<string, unknown> | null)[];
    if (!Array.isArray(results)) throw new OvsdbProtocolError(`OVSDB ${what}: the result is not an array`);
    results.forEach((r, i) => {
      if (r !== null && typeof r.error === 'string') throw new OvsdbTransactionError(what, i, r.error, typeof r.details === 'string' ? r.details : undefined);
    });
    return results.map((r) => r ?? {});
  }

  /**
   * Monitor tables: resolves with the initial rows and a `cancel`; every
   * later change calls `onUpdate`.
   */
  async monitor(db: string, requests: Record<string, MonitorRequest>, onUpdate: (updates: TableUpdates) => void): Promise<{ initial: TableUpdates; cancel: () => Promise<void> }> {
    const id = `vnet-monitor-${this.#nextMonitor++}`;
    this.#monitors.set(id, onUpdate);
    try {
      const initial = (await this.request('monitor', [db, id, requests])) as TableUpdates;
      return {
        initial,
        cancel: async () => {
          this.#monitors.delete(id);
          if (!this.#closed) await this.request('monitor_cancel', [id]);
        },
      };
    } catch (err) {
      this.#monitors.delete(id);
      throw err;
    }
  }

  close(): void {
    this.#close(undefined);
  }

  #onMessage(v: unknown): void {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return this.#close(new OvsdbProtocolError(`OVSDB ${this.#where}: a message that is not a JSON-RPC object`));
    const m = v as { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: unknown };
    if (typeof m.method === 'string') {
      const params = Array.isArray(m.params) ? m.params : [];
      if (m.method === 'echo') this.#socket.write(JSON.stringify({ id: m.id ?? null, result: params, error: null }));
      else if (m.method === 'update' && typeof params[0] === 'string') this.#monitors.get(params[0])?.(params[1] as TableUpdates);
      return;
    }
    if (typeof m.id !== 'number') return;
    const pending = this.#pending.get(m.id);
    if (pending === undefined) return;
    this.#pending.delete(m.id);
    if (m.error !== null && m.error !== undefined) pending.reject(new OvsdbRpcError(pending.method, m.error));
    else pending.resolve(m.result);
  }

  #close(err: OvsdbConnectionError | OvsdbProtocolError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    const why = err ?? new OvsdbConnectionError(`OVSDB ${this.#where} closed by this side`);
    for (const p of this.#pending.values()) p.reject(why);
    this.#pending.clear();
    this.#monitors.clear();
    this.#socket.destroy();
    this.emit('close', err);
  }
}
