import type { Duplex } from 'node:stream';
import type { Clock } from '../common/clock.ts';
import type { Frame } from '../common/frame.ts';
import type { Logger } from '../common/logger.ts';
import type { LinkCounters, LinkKind } from '../control/daemon-control.ts';
import type { LinkAuthenticator } from './link-auth.ts';
import type { FramesHandler } from './link-inbox.ts';
import type { HostMembership } from './link-membership.ts';
import type { NativeForwarder } from './native-forwarder.ts';
import type { NativeEndpointId } from './native-flows.ts';
import type { RecordKeyStatus } from './record-keys.ts';
import type { LinkRole } from './wire-messages.ts';

/**
 * What a link is to the rest of the daemon: the `Link` interface every link
 * implements (a socket link, link.ts; a VXLAN link, vxlan-link.ts), its
 * counters, and what `openLink` takes (`OpenLinkInit`) with its defaults.
 */

/** A link's own counters: the shared list (`LinkCounters`) plus its keepalives and round-trip probes. */
export interface LinkStats extends LinkCounters {
  keepalivesSent: number;
  keepalivesReceived: number;
  /** Echo requests sent, and the replies that matched the latest one. */
  echoesSent: number;
  echoesAnswered: number;
  /** The last measured round trip (echo request → reply), ms; undefined until one was answered. */
  rttMs: number | undefined;
  /** The round trip smoothed as TCP does (srtt ← 7/8 srtt + 1/8 sample), ms. */
  srttMs: number | undefined;
}

/** A new link's counters, all zero, no round trip measured. */
export function newLinkStats(): LinkStats {
  return { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0, keepalivesSent: 0, keepalivesReceived: 0, echoesSent: 0, echoesAnswered: 0, rttMs: undefined, srttMs: undefined };
}

export type CloseHandler = (err: Error | undefined) => void;

export interface Link {
  /** Unique in this process: "<kind>:<peer>#<n>". */
  readonly id: string;
  readonly peerHost: string;
  readonly kind: LinkKind;
  /** Our side's role: we dialled ('dialer') or accepted ('listener'). */
  readonly role: LinkRole;
  readonly stats: LinkStats;
  /** True once the link has ended (onClose has been called). */
  readonly closed: boolean;
  /** Bytes queued on the socket and not yet written: a sender can pace itself on this before frames start to drop. */
  readonly backlogBytes: number;
  /** Send one frame. Never throws; a frame that cannot be sent is counted in txDropped. */
  send(frame: Frame): void;
  /**
   * The link's endpoint in the native forwarder: 'later' while it has none
   * (the first call asks for one, attached once this turn's frames are
   * handled), 'never' for a link that cannot be served natively (TLS,
   * in-memory, closing). Optional: links without it are never served.
   */
  nativeEndpoint?(fwd: NativeForwarder): NativeEndpointId;
  /** A TLS link switched to native records: its version, key generations and counts under the current keys (no key material). */
  recordKeys?(): RecordKeyStatus | undefined;
  /** Where received frames go, in batches; frames that arrived before this call are delivered first. */
  onFrames(handler: FramesHandler): void;
  /** Called exactly once when the link ends (at once if it already has). */
  onClose(handler: CloseHandler): void;
  /**
   * Stop sending, send a goodbye and end the socket, still delivering what the
   * peer sent before it saw the goodbye (onClose once that is over); resolves
   * when the socket has closed.
   */
  close(reason?: string): Promise<void>;
}

export interface OpenLinkInit {
  socket: Duplex;
  localHost: string;
  /** 'dialer' (default) sends its hello first; 'listener' answers the dialer's hello. */
  role?: LinkRole;
  /** Required for a dialer. A listener adopts the dialer's kind, refusing it if this is set and differs. */
  kind?: LinkKind;
  expectedPeer?: string;
  logger: Logger;
  clock?: Clock;
  keepaliveMs?: number;
  deadMs?: number;
  /** Round-trip probe interval (DEFAULT_PROBE_MS). */
  probeMs?: number;
  maxMessageBytes?: number;
  handshakeTimeoutMs?: number;
  /** Proves our host id and checks the peer's on plain TCP links (link-auth.ts); without one, TCP links are refused off loopback. */
  authenticator?: LinkAuthenticator | undefined;
  /** Accept unauthenticated TCP links off loopback (the operator said so). */
  allowUnauthenticated?: boolean;
  /** The deployment's hosts: a peer outside it is refused. */
  membership?: HostMembership | undefined;
  /** Drop frames while the socket's write backlog is above this many bytes (default 8 MiB). */
  highWaterBytes?: number;
  signal?: AbortSignal;
}

export const DEFAULT_KEEPALIVE_MS = 1000;
export const DEFAULT_DEAD_MS = 5000;
/** How often a link measures its round trip with an echo request, traffic or not. */
export const DEFAULT_PROBE_MS = 2000;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

/**
 * The once-only call of a link's close handler: `notify` calls it with
 * `error` the first time it runs (a handler that throws is logged, not
 * passed on), and never again.
 */
export class CloseNotice {
  handler: CloseHandler | undefined;
  error: Error | undefined;
  /** Set once the handler has been called (or there is none to call: a link that never opened). */
  notified = false;
  readonly #log: () => Logger;

  constructor(log: () => Logger) {
    this.#log = log;
  }

  notify(): void {
    if (this.notified) return;
    this.notified = true;
    const handler = this.handler;
    try {
      handler?.(this.error);
    } catch (e) {
      this.#log().error({ err: e }, 'close handler threw');
    }
  }
}
