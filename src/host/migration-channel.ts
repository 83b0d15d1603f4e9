/**
 * The daemon-to-daemon migration channel: the sockets a migration's records
 * travel on (src/migration/drivers/socket-migration.ts), authenticated by the
 * deployment's host certificates, never through the controller.
 *
 * Destination (`MigrationChannelListener`, one per daemon):
 *
 *   accept      a TCP connection takes a pending slot (common/pending-slots.ts):
 *               over `maxPendingPerSource` from its address, that address's
 *               oldest pending connection is cut; over `maxPending` in all, a
 *               random pending one is (VNET_ERR_HOST_CHANNEL_BUSY) — a real
 *               source is never turned away by connections that sit idle
 *   deadline    one timer from accept to the routed hello (TLS + hello line);
 *               past it → cut
 *   TLS 1.3     mutual: the client certificate must chain to the deployment
 *               CA, else the TLS handshake fails
 *   hello       "vnet-migrate/1 <id> <index> <count>" (channel-hello.ts);
 *               the id must be one `expect(id, from)` registered, and the
 *               certificate must name `from` (CN or SAN DNS); else "no CODE"
 *               and the connection is closed
 *   route       "ok"; the socket joins its migration; when all `count`
 *               sockets are in, the expectation resolves with them in index
 *               order, and the id is no longer expected
 *
 * Source (`dialMigrationChannels`): dial each channel in turn with this
 * host's certificate, check the destination's certificate names `to`, send
 * the hello, wait for the reply under the same deadline.
 *
 * Every failure is a typed error (errors.ts) in a result, never an exception
 * or a crash; the listener counts refusals by code.
 */
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Clock } from '../common/clock.ts';
import { PendingSlots, type PendingDropReason, type PendingSlot } from '../common/pending-slots.ts';
import type { VnetError } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import { certificateNames } from '../dataplane/link-handshake.ts';
import {
  encodeChannelHello, encodeChannelReply, LineReader, MAX_CHANNELS, parseChannelHello, parseChannelReply, type ChannelHello,
} from './channel-hello.ts';
import {
  ChannelListenError, ChannelBusyError, ChannelClosedError, ChannelConflictError, ChannelConnectError, ChannelHelloError, ChannelIdentityError,
  ChannelLimitError, ChannelRefusedError, ChannelTimeoutError, ChannelUnknownIdError,
} from './errors.ts';
import { formatHostPort } from '../common/host-port.ts';

export const DEFAULT_CHANNEL_HANDSHAKE_MS = 5000;
export const DEFAULT_MAX_PENDING = 32;
export const DEFAULT_MAX_PENDING_PER_SOURCE = 8;
export const DEFAULT_MAX_EXPECTED = 64;

export interface MigrationChannelComponents {
  readonly logger: Logger;
  readonly clock: Clock;
}

export interface MigrationChannelInit extends TlsCredentials {
  /** Where to listen; port 0 picks a free one. */
  readonly host: string;
  readonly port: number;
  /** The host name to put in `prepared` reports (default: `host`). */
  readonly advertise?: string | undefined;
  /** TLS handshake plus hello, per connection (default 5 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Connections in their handshake at once (default 32); a newcomer evicts a random one. */
  readonly maxPending?: number | undefined;
  /** Connections in their handshake from one address (default 8); a newcomer evicts that address's oldest. */
  readonly maxPendingPerSource?: number | undefined;
  /** Migrations waited for at once (default 64). */
  readonly maxExpected?: number | undefined;
}

export type ChannelsResult = { readonly ok: true; readonly sockets: Duplex[] } | { readonly ok: false; readonly error: VnetError };

/** A migration the destination waits for: its sockets, once all are in. */
export interface ExpectedChannels {
  readonly id: string;
  readonly from: string;
  /** Settles once: every channel in (ok), or cancelled / listener closed (not ok). Never rejects. */
  readonly result: Promise<ChannelsResult>;
  /** Stop waiting; sockets already routed are destroyed. Idempotent. */
  cancel(reason: string): void;
}

export interface ChannelListenerStats {
  accepted: number;
  refused: number;
  refusedByCode: Record<string, number>;
}

interface Expectation {
  readonly id: string;
  readonly from: string;
  count: number | undefined;
  readonly sockets: (Duplex | undefined)[];
  settle(r: ChannelsResult): void;
}


export class MigrationChannelListener {
  readonly stats: ChannelListenerStats = { accepted: 0, refused: 0, refusedByCode: {} };
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #server: tls.Server;
  readonly #timeoutMs: number;
  readonly #maxExpected: number;
  readonly #advertise: string;
  readonly #slots: PendingSlots;
  /** Pending slots by remote address and port (the raw and the TLS socket share them). */
  readonly #pending = new Map<string, PendingSlot>();
  readonly #expected = new Map<string, Expectation>();
  /** Refused sockets still saying why (cut on close). */
  readonly #lingering = new Set<TLSSocket>();
  #port = 0;
  #closed = false;

  private constructor(components: MigrationChannelComponents, init: MigrationChannelInit) {
    this.#log = componentLogger(components.logger, 'migration-channel');
    this.#clock = components.clock;
    this.#timeoutMs = init.handshakeTimeoutMs ?? DEFAULT_CHANNEL_HANDSHAKE_MS;
    const maxPending = init.maxPending ?? DEFAULT_MAX_PENDING;
    this.#slots = new PendingSlots({ clock: components.clock, onDropped: (reason) => this.#dropped(reason, maxPending) }, {
      deadlineMs: this.#timeoutMs, maxPerSource: init.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE, maxTotal: maxPending,
    });
    this.#maxExpected = init.maxExpected ?? DEFAULT_MAX_EXPECTED;
    this.#advertise = init.advertise ?? init.host;
    this.#server = tls.createServer({
      ca: init.ca, cert: init.cert, key: init.key,
      requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', allowHalfOpen: false,
      // Our own deadline (TLS and hello together) cuts first; this is a backstop.
      handshakeTimeout: this.#timeoutMs + 1000,
    });
    this.#server.on('connection', (raw: net.Socket) => this.#onConnection(raw));
    this.#server.on('secureConnection', (socket: TLSSocket) => this.#onSecure(socket));
    this.#server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.#log.debug({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake refused');
      this.#refuse(keyOf(socket), 'VNET_ERR_HOST_CHANNEL_TLS');
      socket.destroy();
    });
    this.#server.on('error', (err) => this.#log.warn({ err: err.message }, 'migration listener error'));
  }

  static async listen(components: MigrationChannelComponents, init: MigrationChannelInit): Promise<MigrationChannelListener> {
    const l = new MigrationChannelListener(components, init);
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => reject(new ChannelListenError(formatHostPort(init), err));
      l.#server.once('error', fail);
      l.#server.listen(init.port, init.host, () => { l.#server.off('error', fail); resolve(); });
    });
    const addr = l.#server.address();
    l.#port = typeof addr === 'object' && addr !== null ? addr.port : init.port;
    l.#log.info({ host: init.host, port: l.#port }, 'migration channel listening');
    return l;
  }

  /** Where sources dial (what `prepared` reports). */
  get address(): { host: string; port: number } {
    return { host: this.#advertise, port: this.#port };
  }

  /** Wait for migration `id`'s channels, from host `from` only. Throws ChannelConflictError / ChannelLimitError / ChannelClosedError. */
  expect(id: string, from: string): ExpectedChannels {
    if (this.#closed) throw new ChannelClosedError('the migration listener is closed');
    if (this.#expected.has(id)) throw new ChannelConflictError(id);
    if (this.#expected.size >= this.#maxExpected) throw new ChannelLimitError(this.#maxExpected);
    let settle!: (r: ChannelsResult) => void;
    const result = new Promise<ChannelsResult>((resolve) => { settle = resolve; });
    let settled = false;
    const e: Expectation = {
      id, from, count: undefined, sockets: [],
      settle: (r) => {
        if (settled) return;
        settled = true;
        if (this.#expected.get(id) === e) this.#expected.delete(id);
        if (!r.ok) for (const s of e.sockets) s?.destroy();
        settle(r);
      },
    };
    this.#expected.set(id, e);
    return { id, from, result, cancel: (reason) => e.settle({ ok: false, error: new ChannelClosedError(`migration ${id}: ${reason}`) }) };
  }

  /** Migrations waited for now. */
  get expecting(): number {
    return this.#expected.size;
  }

  /** Connections in their handshake now. */
  get pending(): number {
    return this.#slots.size;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const e of [...this.#expected.values()]) e.settle({ ok: false, error: new ChannelClosedError('the migration listener closed') });
    this.#slots.closeAll();
    for (const s of this.#lingering) s.destroy();
    this.#pending.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #onConnection(raw: net.Socket): void {
    raw.on('error', () => undefined);
    if (this.#closed) {
      raw.destroy();
      return;
    }
    const key = keyOf(raw);
    const slot = this.#slots.admit(raw.remoteAddress ?? '?', (reason) => {
      this.#log.debug({ remote: key, reason }, 'migration channel connection dropped before its hello');
      raw.destroy();
    });
    this.#pending.set(key, slot);
    raw.once('close', () => {
      if (this.#pending.get(key) === slot) this.#pending.delete(key);
      if (slot.pending) {
        slot.release();
        this.#count('VNET_ERR_HOST_CHANNEL_CLOSED');
      }
    });
  }

  /** A pending connection cut: its deadline passed, or a newcomer took its slot. */
  #dropped(reason: PendingDropReason, maxPending: number): void {
    if (reason === 'closing') return;
    this.#count(reason === 'deadline' ? new ChannelTimeoutError('a migration connection', this.#timeoutMs).code : new ChannelBusyError(maxPending).code);
  }

  #onSecure(socket: TLSSocket): void {
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    const key = keyOf(socket);
    const reader = new LineReader();
    const onData = (chunk: Buffer): void => {
      const r = reader.push(chunk);
      if (r.state === 'more') return;
      socket.off('data', onData);
      socket.pause();
      if (r.state === 'error') { this.#reject(key, socket, r.error); return; }
      const hello = parseChannelHello(r.line);
      if (hello instanceof ChannelHelloError) { this.#reject(key, socket, hello); return; }
      this.#route(key, socket, hello, r.rest);
    };
    socket.on('data', onData);
  }

  #route(key: string, socket: TLSSocket, hello: ChannelHello, rest: Buffer): void {
    const e = this.#expected.get(hello.id);
    if (e === undefined) { this.#reject(key, socket, new ChannelUnknownIdError(hello.id)); return; }
    const names = certificateNames(socket.getPeerCertificate());
    if (!socket.authorized || !names.includes(e.from)) { this.#reject(key, socket, new ChannelIdentityError(e.from, names)); return; }
    if ((e.count !== undefined && e.count !== hello.count) || e.sockets[hello.index] !== undefined) {
      this.#reject(key, socket, new ChannelHelloError(`channel ${hello.index} of ${hello.count} does not fit migration ${hello.id}`));
      return;
    }
    this.#pending.get(key)?.settle();
    this.stats.accepted++;
    if (rest.length > 0) socket.unshift(rest);
    socket.write(encodeChannelReply({ ok: true }));
    e.count = hello.count;
    e.sockets[hello.index] = socket;
    this.#log.debug({ id: hello.id, index: hello.index, count: hello.count, from: e.from }, 'migration channel accepted');
    const all = e.sockets.slice(0, e.count);
    if (all.length === e.count && all.every((s) => s !== undefined)) e.settle({ ok: true, sockets: all as Duplex[] });
  }

  #reject(key: string, socket: TLSSocket, err: VnetError): void {
    this.#log.debug({ remote: key, code: err.code, detail: err.message }, 'migration channel refused');
    this.#refuse(key, err.code);
    this.#lingering.add(socket);
    socket.once('close', () => this.#lingering.delete(socket));
    socket.end(encodeChannelReply({ ok: false, code: err.code }));
    // A peer that does not close its end in time is cut.
    this.#clock.setTimeout(() => socket.destroy(), 1000);
  }

  /** Refused with `code`: counted once, its slot freed (a connection already dropped or settled is not counted again). */
  #refuse(key: string, code: string): void {
    const slot = this.#pending.get(key);
    if (slot !== undefined && !slot.pending) return;
    slot?.release();
    this.#count(code);
  }

  #count(code: string): void {
    this.stats.refused++;
    this.stats.refusedByCode[code] = (this.stats.refusedByCode[code] ?? 0) + 1;
  }
}

function keyOf(s: net.Socket): string {
  return `${s.remoteAddress ?? '?'}|${s.remotePort ?? '?'}`;
}

// ------------------------------------------------------------------ source

export interface DialChannelsOptions extends TlsCredentials {
  readonly host: string;
  readonly port: number;
  readonly id: string;
  /** The destination host: its certificate must name it. */
  readonly to: string;
  readonly count: number;
  readonly clock: Clock;
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Open a migration's channels to the destination, one after the other; all of them or none. */
export async function dialMigrationChannels(opts: DialChannelsOptions): Promise<ChannelsResult> {
  if (opts.count < 1 || opts.count > MAX_CHANNELS) return { ok: false, error: new ChannelHelloError(`a migration has 1 or ${MAX_CHANNELS} channels`) };
  const out: Duplex[] = [];
  for (let index = 0; index < opts.count; index++) {
    const r = await dialOne(opts, index);
    if (!r.ok) {
      for (const s of out) s.destroy();
      return r;
    }
    out.push(r.socket);
  }
  return { ok: true, sockets: out };
}

function dialOne(opts: DialChannelsOptions, index: number): Promise<{ ok: true; socket: Duplex } | { ok: false; error: VnetError }> {
  const where = formatHostPort(opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CHANNEL_HANDSHAKE_MS;
  return new Promise((resolve) => {
    let done = false;
    const socket = tls.connect({
      host: opts.host, port: opts.port, ca: opts.ca, cert: opts.cert, key: opts.key, minVersion: 'TLSv1.3',
      // The destination's identity is checked below against `to`, not against the address dialled.
      checkServerIdentity: () => undefined,
      ...(net.isIP(opts.to) === 0 ? { servername: opts.to } : {}),
    });
    socket.on('error', () => undefined);
    const finish = (r: { ok: true; socket: Duplex } | { ok: false; error: VnetError }): void => {
      if (done) return;
      done = true;
      timer.cancel();
      opts.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      if (!r.ok) socket.destroy();
      resolve(r);
    };
    const timer = opts.clock.setTimeout(() => finish({ ok: false, error: new ChannelTimeoutError(`migration channel ${where}`, timeoutMs) }), timeoutMs);
    const onAbort = (): void => finish({ ok: false, error: new ChannelClosedError(`migration ${opts.id}: cancelled while dialling`) });
    opts.signal?.addEventListener('abort', onAbort);
    if (opts.signal?.aborted === true) onAbort();
    const reader = new LineReader();
    const onData = (chunk: Buffer): void => {
      const r = reader.push(chunk);
      if (r.state === 'more') return;
      if (r.state === 'error') { finish({ ok: false, error: r.error }); return; }
      const reply = parseChannelReply(r.line);
      if (reply instanceof ChannelHelloError) { finish({ ok: false, error: reply }); return; }
      if (!reply.ok) { finish({ ok: false, error: new ChannelRefusedError(reply.code) }); return; }
      socket.pause();
      if (r.rest.length > 0) socket.unshift(r.rest);
      finish({ ok: true, socket });
    };
    socket.once('secureConnect', () => {
      const names = certificateNames(socket.getPeerCertificate());
      if (!socket.authorized || !names.includes(opts.to)) { finish({ ok: false, error: new ChannelIdentityError(opts.to, names) }); return; }
      socket.setNoDelay(true);
      socket.on('data', onData);
      socket.write(encodeChannelHello({ id: opts.id, index, count: opts.count }));
    });
    socket.once('error', (err: Error) => finish({ ok: false, error: new ChannelConnectError(where, err.message, { cause: err }) }));
    socket.once('close', () => finish({ ok: false, error: new ChannelConnectError(where, 'closed during the channel handshake') }));
  });
}
