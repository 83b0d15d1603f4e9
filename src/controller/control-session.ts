import type { WebSocket } from 'ws';
import { encodeControlMessage, type ControllerMessage } from '../control/control-protocol.ts';
import { splitControllerMessage } from '../control/control-parts.ts';
import type { ControlSession, SessionAuth } from './control-server.ts';

/** A welcomed daemon's session over its WebSocket: what the handler sends through. */
export class SessionImpl implements ControlSession {
  readonly id: number;
  readonly hostId: string;
  readonly auth: SessionAuth;
  readonly remoteAddress: string;
  readonly #ws: WebSocket;
  readonly #maxBytes: number;

  constructor(id: number, hostId: string, auth: SessionAuth, remoteAddress: string, ws: WebSocket, maxBytes: number) {
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
    for (const part of splitControllerMessage(message, this.#maxBytes)) this.#ws.send(encodeControlMessage(part));
    return true;
  }

  close(code = 1000, reason = ''): void {
    this.#ws.close(code, reason);
  }
}
