import { createConnection, type Socket } from 'node:net';
import type { Logger } from '../../common/logger.ts';
import { componentLogger, silentLogger } from '../../common/logger.ts';
import { QmpClosedError, QmpCommandError, QmpConnectError, QmpProtocolError, QmpTimeoutError } from '../errors.ts';

/**
 * A small client of QEMU's machine protocol (QMP) over a Unix socket.
 *
 *   connect    open the socket, read the greeting {"QMP": {version, capabilities}},
 *              send qmp_capabilities, wait for its empty return
 *   execute    send {"execute", "arguments", "id"}; the answer with that id
 *              resolves ({"return"}) or rejects ({"error"} → QmpCommandError);
 *              no answer within the deadline → QmpTimeoutError
 *   events     {"event", "data", "timestamp"} go to listeners and to waitForEvent
 *   close      the socket closing rejects every outstanding command (QmpClosedError)
 *
 * Messages are JSON objects, one per line. The decoder bounds the line length;
 * bytes that are not QMP are a QmpProtocolError that closes the connection:
 * after a broken message the client cannot know which answer is whose.
 */

export interface QmpVersion {
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  readonly package: string;
}

export interface QmpGreeting {
  readonly version: QmpVersion;
  readonly capabilities: readonly string[];
}

export interface QmpEvent {
  readonly event: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** Seconds since the epoch, from QEMU's timestamp (NaN when absent). */
  readonly timestamp: number;
}

export interface QmpClientInit {
  readonly logger?: Logger;
  /** Deadline of connect + greeting + capabilities, and the default deadline of each command (ms). */
  readonly timeoutMs?: number;
  /** Longest accepted message line (default 1 MiB). */
  readonly maxLineBytes?: number;
  readonly signal?: AbortSignal;
}

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Splits a byte stream into JSON objects, one per line, in any chunking. */
export class QmpLineDecoder {
  readonly #max: number;
  #parts: Buffer[] = [];
  #partBytes = 0;

  constructor(maxLineBytes = 1 << 20) {
    this.#max = maxLineBytes;
  }

  /** Feed bytes; returns the complete messages they finish. Throws QmpProtocolError on bad input. */
  push(chunk: Uint8Array): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    for (;;) {
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (this.#partBytes + buf.length > this.#max) throw new QmpProtocolError(`QMP message longer than ${this.#max} bytes`);
        if (buf.length > 0) {
          this.#parts.push(Buffer.from(buf));
          this.#partBytes += buf.length;
        }
        return out;
      }
      if (this.#partBytes + nl > this.#max) throw new QmpProtocolError(`QMP message longer than ${this.#max} bytes`);
      const line = Buffer.concat([...this.#parts, buf.subarray(0, nl)]).toString('utf8').trim();
      this.#parts = [];
      this.#partBytes = 0;
      buf = buf.subarray(nl + 1);
      if (line === '') continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch (err) {
        throw new QmpProtocolError(`QMP message is not JSON: ${line.slice(0, 80)}`, { cause: err });
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new QmpProtocolError(`QMP message is not a JSON object: ${line.slice(0, 80)}`);
      out.push(msg as Record<string, unknown>);
    }
  }
}

export class QmpClient {
  readonly greeting: QmpGreeting;
  readonly #socket: Socket;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #pending = new Map<string, Pending>();
  readonly #eventListeners = new Set<(e: QmpEvent) => void>();
  readonly #closeListeners = new Set<(err: Error | undefined) => void>();
  #nextId = 1;
  #closed: Error | undefined;

  private constructor(socket: Socket, greeting: QmpGreeting, log: Logger, timeoutMs: number) {
    this.#socket = socket;
    this.greeting = greeting;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  /** Connect to QEMU's QMP socket at `path` and leave capabilities-negotiation mode. */
  static async connect(path: string, init: QmpClientInit = {}): Promise<QmpClient> {
    const log = componentLogger(init.logger ?? silentLogger(), 'qmp', { path });
    const timeoutMs = init.timeoutMs ?? 10_000;
    const decoder = new QmpLineDecoder(init.maxLineBytes);
    const socket = createConnection({ path });
    let client: QmpClient | undefined;
    let fail: (err: Error) => void = () => {};
    const greeted = new Promise<QmpGreeting>((resolve, reject) => {
      fail = reject;
      socket.on('error', (err) => {
        if (client) client.#shutdown(new QmpClosedError(`QMP ${path}: ${err.message}`, { cause: err }));
        else reject(new QmpConnectError(path, err.message, { cause: err }));
      });
      socket.on('close', () => {
        if (client) client.#shutdown(new QmpClosedError(`QMP ${path}: connection closed`));
        else reject(new QmpConnectError(path, 'connection closed before the greeting'));
      });
      socket.on('data', (chunk: Buffer) => {
        let msgs: Record<string, unknown>[];
        try {
          msgs = decoder.push(chunk);
        } catch (err) {
          const e = err as Error;
          if (client) client.#shutdown(e);
          else reject(new QmpConnectError(path, e.message, { cause: e }));
          socket.destroy();
          return;
        }
        for (const msg of msgs) {
          if (client) {
            client.#dispatch(msg);
            continue;
          }
          const g = parseGreeting(msg);
          if (g === undefined) {
            reject(new QmpConnectError(path, `expected the QMP greeting, got ${JSON.stringify(msg).slice(0, 80)}`));
            socket.destroy();
            return;
          }
          client = new QmpClient(socket, g, log, timeoutMs);
          resolve(g);
        }
      });
    });
    const timer = setTimeout(() => fail(new QmpConnectError(path, `no greeting within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = (): void => fail(new QmpConnectError(path, 'aborted', { cause: init.signal?.reason }));
    init.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await greeted;
      const c = client as QmpClient | undefined;
      if (c === undefined) throw new QmpConnectError(path, 'no greeting');
      await c.execute('qmp_capabilities', undefined, { timeoutMs });
      log.debug({ path, qemu: c.greeting.version.qemu }, 'QMP connected');
      return c;
    } catch (err) {
      socket.destroy();
      if (err instanceof QmpConnectError) throw err;
      throw new QmpConnectError(path, `capabilities negotiation failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
      init.signal?.removeEventListener('abort', onAbort);
    }
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Run a QMP command; resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new QmpClosedError(`QMP ${command}: connection is closed`, { cause: this.#closed }));
    const id = `vnet-${this.#nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new QmpTimeoutError(`answer to ${command}`, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.#log.debug({ command, id }, 'QMP execute');
      this.#socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Listen to every event; returns the function that stops listening. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** Called once when the connection ends: with the error that ended it, or undefined after close(). */
  onClose(listener: (err: Error | undefined) => void): void {
    this.#closeListeners.add(listener);
  }

  /** The next event named `name` (and matching `predicate`) within the deadline. */
  waitForEvent(name: string, opts: { timeoutMs?: number; predicate?: (e: QmpEvent) => boolean } = {}): Promise<QmpEvent> {
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    return new Promise<QmpEvent>((resolve, reject) => {
      if (this.#closed) {
        reject(new QmpClosedError(`QMP: closed while waiting for ${name}`, { cause: this.#closed }));
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        off();
        this.#closeListeners.delete(onClose);
      };
      const off = this.onEvent((e) => {
        if (e.event !== name || (opts.predicate && !opts.predicate(e))) return;
        done();
        resolve(e);
      });
      const onClose = (err: Error | undefined): void => {
        done();
        reject(new QmpClosedError(`QMP: closed while waiting for ${name}`, { cause: err }));
      };
      this.#closeListeners.add(onClose);
      const timer = setTimeout(() => {
        done();
        reject(new QmpTimeoutError(`event ${name}`, timeoutMs));
      }, timeoutMs);
    });
  }

  /** Close the connection; outstanding commands reject with QmpClosedError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const closedEvent = new Promise<void>((resolve) => this.#socket.once('close', () => resolve()));
    this.#shutdown(undefined);
    this.#socket.destroy();
    if (!this.#socket.closed) await closedEvent;
  }

  #dispatch(msg: Record<string, unknown>): void {
    if (typeof msg.event === 'string') {
      const ev = parseEvent(msg);
      for (const l of [...this.#eventListeners]) {
        try {
          l(ev);
        } catch (err) {
          this.#log.error({ err, event: ev.event }, 'QMP event listener threw');
        }
      }
      return;
    }
    if (!('return' in msg) && !('error' in msg)) {
      this.#log.warn({ keys: Object.keys(msg).slice(0, 8) }, 'QMP message is neither an answer nor an event; ignored');
      return;
    }
    // Answers carry our id back. QEMU leaves it out only when it could not parse
    // the request at all; it answers in order, so that answer is the oldest one's.
    const id = typeof msg.id === 'string' ? msg.id : msg.id === undefined ? this.#pending.keys().next().value : undefined;
    const p = id === undefined ? undefined : this.#pending.get(id);
    if (p === undefined || id === undefined) {
      this.#log.debug({ id: msg.id }, 'QMP answer to no outstanding command (timed out?); ignored');
      return;
    }
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const e = msg.error;
      const cls = isRecord(e) && typeof e.class === 'string' ? e.class : 'UnknownError';
      const desc = isRecord(e) && typeof e.desc === 'string' ? e.desc : JSON.stringify(e).slice(0, 200);
      p.reject(new QmpCommandError(p.command, cls, desc));
    } else {
      p.resolve(msg.return);
    }
  }

  #shutdown(err: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = err ?? new QmpClosedError('QMP connection closed by the client');
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(err instanceof QmpProtocolError ? err : new QmpClosedError(`QMP ${p.command}: connection closed before the answer`, { cause: err }));
      this.#pending.delete(id);
    }
    if (err) this.#log.debug({ err }, 'QMP connection ended');
    for (const l of [...this.#closeListeners]) l(err);
    this.#closeListeners.clear();
    this.#eventListeners.clear();
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseGreeting(msg: Record<string, unknown>): QmpGreeting | undefined {
  const q = msg.QMP;
  if (!isRecord(q) || !isRecord(q.version) || !Array.isArray(q.capabilities)) return undefined;
  const v = q.version;
  const qemu = isRecord(v.qemu) ? v.qemu : {};
  const num = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  return {
    version: { qemu: { major: num(qemu.major), minor: num(qemu.minor), micro: num(qemu.micro) }, package: typeof v.package === 'string' ? v.package : '' },
    capabilities: q.capabilities.filter((c): c is string => typeof c === 'string'),
  };
}

function parseEvent(msg: Record<string, unknown>): QmpEvent {
  const ts = msg.timestamp;
  const timestamp = isRecord(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number' ? ts.seconds + ts.microseconds / 1e6 : Number.NaN;
  return { event: String(msg.event), data: isRecord(msg.data) ? msg.data : {}, timestamp };
}
