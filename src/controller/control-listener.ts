import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { PendingSlots, type PendingDropReason, type PendingSlot, type PendingSlotStats } from '../common/pending-slots.ts';
import { CONTROL_PATH } from '../control/control-protocol.ts';

/**
 * The control channel's listener: an HTTPS server (TLS with `requestCert`,
 * the deployment CA) that upgrades `/control` to a WebSocket, and the slots
 * of the connections that have not said a good hello yet.
 *
 *   TCP accept ─ slot (source address) ─ TLS ─ upgrade ─ hello … welcome ─ settle
 *   └──────────────── one deadline (helloTimeoutMs) ────────────────┘
 *
 * Pending connections are capped per source address and in total
 * (common/pending-slots.ts): a newcomer takes the place of its source's
 * oldest pending connection, or of a random one, so a flood of idle or slow
 * connections can delay a real daemon by one retry at worst, never keep it
 * out. Before the upgrade a dropped connection is cut; after it, the server
 * (`onDrop` of the slot) says why first.
 */

export interface ControlListenerInit {
  tls: { key: string | Buffer; cert: string | Buffer; ca: string | Buffer };
  /** The WebSocket layer's own limit on one message: over it, the connection is closed (1009). */
  maxPayload: number;
  deadlineMs: number;
  maxPendingPerSource: number;
  maxPendingTotal: number;
}

export interface ControlListenerComponents {
  clock: Clock;
  logger: Logger;
  /** A pending connection was dropped (counted by the server). */
  onDropped: (reason: PendingDropReason) => void;
  /** A WebSocket is up; `slot` is its pending slot (settle it at the welcome). */
  onConnection: (ws: WebSocket, req: IncomingMessage, slot: PendingSlot | undefined) => void;
}

/** Pending connections (not welcomed yet) from one address, unless configured. */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 64;
/** Pending connections in all, unless configured. */
export const DEFAULT_MAX_PENDING_TOTAL = 1024;

export class ControlListener {
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #slots: PendingSlots;
  /** Pending slots by remote address and port (the raw and the TLS socket share them). */
  readonly #byPeer = new Map<string, PendingSlot>();

  constructor(components: ControlListenerComponents, init: ControlListenerInit) {
    this.#slots = new PendingSlots({ clock: components.clock, onDropped: components.onDropped }, { deadlineMs: init.deadlineMs, maxPerSource: init.maxPendingPerSource, maxTotal: init.maxPendingTotal });
    this.#server = createServer({
      key: init.tls.key, cert: init.tls.cert, ca: init.tls.ca,
      requestCert: true,
      // Daemons without a certificate may still join with a token; the hello decides.
      rejectUnauthorized: false,
      // Our deadline cuts first; this is a backstop.
      handshakeTimeout: init.deadlineMs + 1000,
    });
    this.#server.on('connection', (raw: Socket) => this.#admit(raw));
    this.#server.on('tlsClientError', (err) => components.logger.debug({ err }, 'TLS handshake failed'));
    this.#wss = new WebSocketServer({ server: this.#server, path: CONTROL_PATH, maxPayload: init.maxPayload, perMessageDeflate: false });
    this.#wss.on('connection', (ws, req) => components.onConnection(ws, req, this.#byPeer.get(peerKey(req.socket))));
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Connections not welcomed yet, and what became of those before them. */
  get pending(): { size: number; stats: Readonly<PendingSlotStats> } {
    return { size: this.#slots.size, stats: this.#slots.stats };
  }

  /** Stop accepting; resolves once the WebSocket server has closed (its clients are the caller's to close first). */
  closeWebSockets(): Promise<void> {
    this.#slots.closeAll();
    return new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #admit(raw: Socket): void {
    raw.on('error', () => undefined);
    const key = peerKey(raw);
    const slot = this.#slots.admit(raw.remoteAddress ?? '?', () => raw.destroy());
    this.#byPeer.set(key, slot);
    raw.once('close', () => {
      slot.release();
      if (this.#byPeer.get(key) === slot) this.#byPeer.delete(key);
    });
  }
}

function peerKey(s: Socket): string {
  return `${s.remoteAddress ?? '?'}|${s.remotePort ?? 0}`;
}
