import type { TLSSocket } from 'node:tls';
import type { RawData, WebSocket } from 'ws';
import type { PendingSlot } from '../common/pending-slots.ts';
import { type ControllerMessage, type DaemonMessage, type HelloMessage } from '../control/control-protocol.ts';
import { encodeControllerMessage } from '../control/control-parts.ts';
import type { TrafficReport } from '../topology/traffic-report.ts';
import type { ConnectionInbox } from './control-inbox.ts';
import type { SessionAuth } from './control-server.ts';

/** A daemon's session as the control server's handler sees it (control-server.ts). */
export interface ControlSession {
  readonly id: number;
  readonly hostId: string;
  readonly auth: SessionAuth;
  readonly remoteAddress: string;
  /** Queue a message; false if the session is closed. */
  send(message: ControllerMessage): boolean;
  close(code?: number, reason?: string): void;
  /** Bytes sent to it that have not left the controller yet (still queued toward its socket); absent: none. */
  queuedBytes?(): number;
}

export type SessionMessage = Exclude<DaemonMessage, { type: 'hello' }>;

/** What a handler receives from a session: the decoded message, a traffic report validated. */
export type SessionInput = Exclude<SessionMessage, { type: 'traffic' }> | { type: 'traffic'; report: TrafficReport };

export interface ControlHandler {
  /** Called after the welcome was sent. Replaces any earlier session of the same host (already closed). */
  sessionOpened(session: ControlSession, hello: HelloMessage): void;
  /**
   * Several sessions welcomed in one batch (a reconnecting deployment): as
   * `sessionOpened` for each, with the work they share done once. Without
   * it, `sessionOpened` is called for each.
   */
  sessionsOpened?(opened: ReadonlyArray<{ session: ControlSession; hello: HelloMessage }>): void;
  messageReceived(session: ControlSession, message: SessionInput): void;
  sessionClosed(session: ControlSession, reason: string): void;
}

/** One control connection in the server, from its upgrade on. */
export interface Connection {
  ws: WebSocket;
  session: SessionImpl | undefined;
  alive: boolean;
  /** Its place among the connections not welcomed yet (settled at the welcome). */
  slot: PendingSlot | undefined;
  tls: TLSSocket;
  remoteAddress: string;
  /** Refused or replaced: whatever else arrives on it is ignored. */
  done: boolean;
  /** Its hello is accepted and its welcome queued (welcome-batch.ts): nothing more is expected before it. */
  welcoming: boolean;
  /** The hello deadline fired; the connection gets one more look after the turn's reads. */
  deadlinePassed: boolean;
  /** Bytes queued toward the peer at the last heartbeat (the ping waits behind them). */
  queued: number;
  /** Messages arriving in parts. */
  readonly inbox: ConnectionInbox;
}

/** What a hello's authentication gave. */
export interface Earned {
  auth: SessionAuth;
  credential: string | undefined;
}


/** A welcomed daemon's session over its WebSocket: what the handler sends through. */
export class SessionImpl implements ControlSession {
  readonly id: number;
  readonly hostId: string;
  readonly auth: SessionAuth;
  readonly remoteAddress: string;
  readonly #ws: WebSocket;
  readonly #maxBytes: number;
  readonly #sent: ((type: string, bytes: number) => void) | undefined;

  /** `sent`: told the bytes of each desired-state push (set-links, set-rules, patch-rules) as it goes. */
  constructor(id: number, hostId: string, auth: SessionAuth, remoteAddress: string, ws: WebSocket, maxBytes: number, sent?: (type: string, bytes: number) => void) {
    this.#sent = sent;
    this.id = id;
    this.hostId = hostId;
    this.auth = auth;
    this.remoteAddress = remoteAddress;
    this.#ws = ws;
    this.#maxBytes = maxBytes;
  }

  /** A message over the limit (the rule or link set of a large deployment) goes in parts (control-parts.ts), back to back. */
  send(message: ControllerMessage): boolean {
    if (this.#ws.readyState !== this.#ws.OPEN) return false;
    let bytes = 0;
    for (const text of encodeControllerMessage(message, this.#maxBytes)) {
      this.#ws.send(text);
      bytes += Buffer.byteLength(text, 'utf8');
    }
    if (message.type === 'set-links' || message.type === 'set-rules' || message.type === 'patch-rules') this.#sent?.(message.type, bytes);
    return true;
  }

  close(code = 1000, reason = ''): void {
    this.#ws.close(code, reason);
  }

  queuedBytes(): number {
    return this.#ws.bufferedAmount;
  }
}

export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
