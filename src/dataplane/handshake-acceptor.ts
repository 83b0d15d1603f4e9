import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { realClock } from '../common/clock.ts';
import { PendingSlots, type PendingDropReason, type PendingSlot } from '../common/pending-slots.ts';
import { openLink } from './link.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, type Link } from './link-interface.ts';
import { linkInit, type LinkSettings, type ListenerStats, type TransportComponents } from './transport.ts';

/**
 * The accepting side shared by the transports. Each new connection:
 *
 *   slot       takes a pending-connection slot (common/pending-slots.ts, as
 *              the control, API and migration listeners do): a deadline over
 *              the whole handshake, caps per source address (the address's
 *              oldest evicted) and in total (a random one evicted) — a newcomer
 *              is never refused, so a real host always gets in.
 *   TLS        (tls-transport.ts) the TLS handshake on the raw socket, under
 *              that deadline: `admit` on the raw connection, `handshake` on the
 *              TLS socket once it is secure, `fail` if TLS fails.
 *   handshake  the link handshake (hello, proofs, membership) as listener.
 *   outcome    a link goes to `onLink`; anything else is counted in
 *              `stats.refusedByCode` — by error code, or by the slot's drop
 *              reason — and logged with the claimed host id (when a hello
 *              came) and the source address: authentication and membership
 *              refusals as warnings (at most 10 a second, `suppressed` counting
 *              the ones logged at debug since), the rest at debug.
 */

/** A connection holding a slot, before its link handshake has ended. */
export interface PendingConnection {
  readonly source: string;
  /** Aborted when the slot is dropped (deadline, eviction) or the listener closes. */
  readonly signal: AbortSignal;
}

/** Connections in their handshake at once (default); more evict a random one. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 256;
/** Of those, from one source address (default); more evict that address's oldest. */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 16;

interface Pending extends PendingConnection {
  slot: PendingSlot;
  /** Why the slot was dropped, once it was. */
  dropped: PendingDropReason | undefined;
  /** Destroyed when the slot is dropped: the raw socket, and the TLS socket over it once there is one. */
  streams: Duplex[];
  ended: boolean;
}

/** Refusals worth a warning: somebody tried to be a host it could not prove, or is not. */
const SECURITY_CODES = new Set(['VNET_ERR_LINK_AUTH', 'VNET_ERR_NOT_MEMBER', 'VNET_ERR_UNAUTHENTICATED_LINK']);
/** At most this many refusal warnings a second; the rest go to debug and are counted in the next warning (`suppressed`). */
const WARNINGS_PER_SECOND = 10;

export class HandshakeAcceptor {
  readonly stats: ListenerStats = { accepted: 0, refused: 0, refusedByCode: {}, pending: 0 };
  readonly #components: TransportComponents;
  readonly #settings: LinkSettings;
  readonly #onLink: (link: Link) => void;
  readonly #slots: PendingSlots;
  #closed = false;
  #inProcess = 0;
  #warnWindow = { startMs: -Infinity, count: 0, suppressed: 0 };

  constructor(components: TransportComponents, settings: LinkSettings, onLink: (link: Link) => void) {
    this.#components = components;
    this.#settings = settings;
    this.#onLink = onLink;
    this.#slots = new PendingSlots({ clock: components.clock ?? realClock }, {
      maxTotal: settings.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES,
      maxPerSource: settings.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE,
      deadlineMs: settings.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    });
  }

  /** Run the whole handshake on a new connection (plain streams: TCP, in-memory). */
  accept(socket: Duplex): void {
    const pending = this.admit(socket);
    if (pending !== undefined) this.handshake(pending, socket);
  }

  /** Give a new connection a slot (undefined: the listener is closed and the socket was destroyed). */
  admit(socket: Duplex): PendingConnection | undefined {
    if (this.#closed) {
      socket.destroy();
      return undefined;
    }
    // In-process streams (the memory transport) have no address: each its own source, so only the total cap applies.
    const source = socket instanceof Socket ? (socket.remoteAddress ?? 'unknown') : `in-process#${++this.#inProcess}`;
    const abort = new AbortController();
    const pending: Pending = {
      source,
      signal: abort.signal,
      streams: [socket],
      ended: false,
      dropped: undefined,
      slot: this.#slots.admit(source, (reason) => {
        pending.dropped = reason;
        abort.abort(reason);
        for (const s of pending.streams) s.destroy();
      }),
    };
    this.stats.pending = this.#slots.size;
    // Errors before the link owns the socket (a reset during TLS) must not go unhandled.
    socket.on('error', () => {});
    return pending;
  }

  /** Run the link handshake on `stream` (the connection itself, or the TLS socket over it). */
  handshake(connection: PendingConnection, stream: Duplex): void {
    const pending = connection as Pending;
    if (pending.ended) {
      stream.destroy();
      return;
    }
    if (!pending.streams.includes(stream)) pending.streams.push(stream);
    openLink({ ...linkInit(this.#components, this.#settings), socket: stream, role: 'listener', signal: pending.signal }).then(
      (link) => {
        if (!this.#end(pending, 'settle')) return;
        this.stats.accepted++;
        this.#onLink(link);
      },
      (err: Error & { code?: string; claimedHost?: string | undefined }) => this.fail(pending, err),
    );
  }

  /** The connection failed before or during its handshake (a refused TLS handshake); counted once. */
  fail(connection: PendingConnection, err: Error & { code?: string; claimedHost?: string | undefined }): void {
    const pending = connection as Pending;
    const dropped = pending.dropped;
    if (!this.#end(pending, 'release')) return;
    for (const s of pending.streams) s.destroy();
    if (this.#closed) return;
    this.#refused(dropped ?? err.code ?? 'unknown', err, pending.source);
  }

  /** Free the slot once (settled: a link; released: refused or failed); false if the connection had already ended. */
  #end(pending: Pending, how: 'settle' | 'release'): boolean {
    if (pending.ended) return false;
    pending.ended = true;
    if (how === 'settle') pending.slot.settle();
    else pending.slot.release();
    this.stats.pending = this.#slots.size;
    return true;
  }

  #refused(code: string, err: Error & { claimedHost?: string | undefined }, source: string): void {
    this.stats.refused++;
    this.stats.refusedByCode[code] = (this.stats.refusedByCode[code] ?? 0) + 1;
    const fields = { code, claimedHost: err.claimedHost, source, err: err.message };
    if (!SECURITY_CODES.has(code)) {
      this.#components.logger.debug(fields, 'inbound link refused');
      return;
    }
    const w = this.#warnWindow;
    const now = (this.#components.clock ?? realClock).now();
    if (now - w.startMs >= 1000) {
      w.startMs = now;
      w.count = 0;
    }
    if (++w.count > WARNINGS_PER_SECOND) {
      w.suppressed++;
      this.#components.logger.debug(fields, 'inbound link refused');
      return;
    }
    this.#components.logger.warn({ ...fields, suppressed: w.suppressed }, 'inbound link refused');
    w.suppressed = 0;
  }

  /** Stop accepting and drop every connection still in its handshake. */
  abortAll(): void {
    this.#closed = true;
    this.#slots.closeAll();
    this.stats.pending = 0;
  }
}
