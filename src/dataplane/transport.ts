import type { Duplex } from 'node:stream';
import { realClock, type Clock } from '../common/clock.ts';
import type { LinkAuthenticator } from './link-auth.ts';
import type { HostMembership } from './link-membership.ts';
import type { Logger } from '../common/logger.ts';
import type { TransportKind, LinkKind } from '../control/daemon-control.ts';
import { AbortedError, ConnectTimeoutError, LinkLostError, TransportError } from './errors.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, type Link, type OpenLinkInit } from './link-interface.ts';

/**
 * How daemons reach each other. Three implementations — TCP
 * (`tcp-transport.ts`), mutual TLS (`tls-transport.ts`) and in-process
 * (`memory-transport.ts`) — share this interface and one compliance suite
 * (test/dataplane/transport-compliance.ts). A transport only makes connected
 * byte streams; `openLink` (link.ts) runs the hello handshake over them, so
 * every transport hands out links that behave alike.
 *
 * Constructed, as in js-libp2p, with `(components, init)`: components are
 * the process's shared services, init the link settings of this daemon.
 */

export interface TransportComponents {
  logger: Logger;
  clock?: Clock;
}

/** Link settings every transport passes to openLink. */
export interface LinkSettings {
  /** This daemon's host id: sent in our hello (and, for TLS, named by our certificate). */
  localHost: string;
  keepaliveMs?: number;
  deadMs?: number;
  /** Round-trip probe interval (link.ts DEFAULT_PROBE_MS). */
  probeMs?: number;
  maxMessageBytes?: number;
  /** The whole handshake (TLS, hello, proofs) must finish within this; also the dial's connect timeout. */
  handshakeTimeoutMs?: number;
  highWaterBytes?: number;
  /** Plain TCP: how we prove our id and check the peer's (link-auth.ts). Without one, TCP links are refused off loopback. */
  authenticator?: LinkAuthenticator | undefined;
  /** Plain TCP: accept unauthenticated links off loopback too (warned about at start). */
  allowUnauthenticated?: boolean;
  /** The deployment's hosts (link-membership.ts): links from or to anyone else are refused. */
  membership?: HostMembership | undefined;
  /** Listener: connections in their handshake at once (default 256); more evict the oldest. */
  maxPendingHandshakes?: number;
  /** Listener: of those, from one source address (default 16); more evict that address's oldest. */
  maxPendingPerSource?: number;
}

export interface ListenOptions {
  host: string;
  /** 0: any free port (the listener reports the one it got). */
  port: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** The host id the peer must announce (and, for TLS, its certificate must name). */
  expectedPeer?: string;
  kind: LinkKind;
  signal?: AbortSignal;
}

export interface ListenerStats {
  /** Links that completed the handshake and went to onLink. */
  accepted: number;
  /** Connections refused or failed during the handshake (bad version, wrong host, bad certificate or proof, not a member, timeout, evicted). */
  refused: number;
  /**
   * `refused` by reason: the error code (VNET_ERR_LINK_AUTH, VNET_ERR_NOT_MEMBER,
   * VNET_ERR_UNAUTHENTICATED_LINK, VNET_ERR_HANDSHAKE, VNET_ERR_PROTOCOL_VERSION,
   * VNET_ERR_TLS…), or the connection slot's drop: `deadline` (handshake not
   * done in time), `evicted-source` / `evicted-total` (a newer connection
   * took its slot).
   */
  refusedByCode: Record<string, number>;
  /** Connections in their handshake now. */
  pending: number;
}

export interface TransportListener {
  readonly host: string;
  readonly port: number;
  readonly stats: ListenerStats;
  /** Stop accepting and abort handshakes in progress. Links already handed to onLink stay up: their owner closes them. */
  close(): Promise<void>;
}

export interface Transport {
  readonly kind: TransportKind;
  /** Accept links; each one that completes the handshake goes to `onLink`. Rejects with TransportError (e.g. address in use). */
  listen(opts: ListenOptions, onLink: (link: Link) => void): Promise<TransportListener>;
  /** Dial a peer and run the handshake. Rejects with TransportError, HandshakeError, ProtocolVersionError or AbortedError. */
  connect(opts: ConnectOptions): Promise<Link>;
  /**
   * The daemon runs the native forwarder: offer links its thread can carry
   * where this transport has a way (TLS: native records, tls-switch.ts).
   * Called before listen and connect.
   */
  offerNativeRecords?(offer: boolean): void;
}

/** The openLink settings (minus socket, role, kind) for one transport's links. */
export function linkInit(components: TransportComponents, settings: LinkSettings): Omit<OpenLinkInit, 'socket'> {
  const init: Omit<OpenLinkInit, 'socket'> = { localHost: settings.localHost, logger: components.logger };
  if (components.clock !== undefined) init.clock = components.clock;
  if (settings.keepaliveMs !== undefined) init.keepaliveMs = settings.keepaliveMs;
  if (settings.deadMs !== undefined) init.deadMs = settings.deadMs;
  if (settings.probeMs !== undefined) init.probeMs = settings.probeMs;
  if (settings.maxMessageBytes !== undefined) init.maxMessageBytes = settings.maxMessageBytes;
  if (settings.handshakeTimeoutMs !== undefined) init.handshakeTimeoutMs = settings.handshakeTimeoutMs;
  if (settings.highWaterBytes !== undefined) init.highWaterBytes = settings.highWaterBytes;
  if (settings.authenticator !== undefined) init.authenticator = settings.authenticator;
  if (settings.allowUnauthenticated !== undefined) init.allowUnauthenticated = settings.allowUnauthenticated;
  if (settings.membership !== undefined) init.membership = settings.membership;
  return init;
}

/** Dial-side openLink init from connect options. */
export function dialInit(components: TransportComponents, settings: LinkSettings, opts: ConnectOptions, socket: Duplex): OpenLinkInit {
  const init: OpenLinkInit = { ...linkInit(components, settings), socket, role: 'dialer', kind: opts.kind };
  if (opts.expectedPeer !== undefined) init.expectedPeer = opts.expectedPeer;
  if (opts.signal !== undefined) init.signal = opts.signal;
  return init;
}

/** How long a dial may take to connect (TCP, and TLS when used): the handshake timeout. */
export function connectTimeoutMs(settings: LinkSettings): number {
  return settings.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
}

/**
 * Wait until `socket` emits `event` (connect / secureConnect), failing with
 * `wrap(err)` on an error, a close or the timeout first, or AbortedError on
 * `signal`. On failure the socket is destroyed.
 */
export function waitForConnect(
  socket: Duplex,
  event: 'connect' | 'secureConnect',
  what: string,
  opts: { signal: AbortSignal | undefined; timeoutMs: number; clock: Clock | undefined },
  wrap: (err: Error) => Error,
): Promise<void> {
  const signal = opts.signal;
  return new Promise<void>((resolve, reject) => {
    const timer = (opts.clock ?? realClock).setTimeout(() => onError(new ConnectTimeoutError(opts.timeoutMs)), opts.timeoutMs);
    const cleanup = (): void => {
      timer.cancel();
      socket.off(event, onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const onConnect = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(wrap(err));
    };
    const onClose = (): void => onError(new LinkLostError('connection closed'));
    const onAbort = (): void => {
      cleanup();
      socket.destroy();
      reject(new AbortedError(what, { cause: signal?.reason }));
    };
    if (signal?.aborted === true) {
      onAbort();
      return;
    }
    socket.once(event, onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function transportError(what: string, err: Error): TransportError {
  return new TransportError(`${what}: ${err.message}`, { cause: err });
}
