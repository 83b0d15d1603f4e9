import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tlsOf } from './record-socket.ts';
import type { Clock } from '../common/clock.ts';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import { isLoopbackAddress } from '../common/ip-address.ts';
import { AbortedError, HandshakeError, LinkAuthError, NotMemberError, PeerGoodbyeError, ProtocolVersionError, UnauthenticatedLinkError } from './errors.ts';
import type { HostMembership } from './link-membership.ts';
import { PROTOCOL_VERSION, type AuthMethod, type ControlMessage, type GoodbyeCode, type HelloMessage, type LinkKind, type LinkRole } from './wire-messages.ts';

/**
 * The hello handshake of a link (link.ts runs the exchange and its timer;
 * docs/wire-protocol.md describes it):
 *
 *   start    `handshakeStartError`: our own side must be able to take part (a
 *            valid local host id, a kind when dialling, a connected socket,
 *            no abort already signalled).
 *   limit    `armHandshake`: the peer's hello must come within the timeout,
 *            and the caller's AbortSignal cancels the handshake.
 *   hello    the dialer sends its hello at once; the listener answers with its
 *            own only after accepting the dialer's.
 *   judge    `judgeHello`: the first message from the peer must be a hello of
 *            our protocol version with the opposite role, the kind we asked
 *            for (dialer) or accept (listener), the expected host, not our own
 *            id, a host of the deployment (link-membership.ts), our
 *            authentication method, and — on TLS — a host id that the peer's
 *            verified certificate names (CN or SAN DNS) — also when the
 *            connection switched to native records (record-socket.ts `tlsOf`). An unauthenticated
 *            plain TCP link is refused unless both ends are on loopback or the
 *            operator allowed it. Anything else fails the handshake with a
 *            typed error and, where the peer should hear why, the goodbye to
 *            send it before the socket is ended.
 *   prove    (handshake-session.ts, link-auth.ts) on authenticated TCP links,
 *            the proofs of identity over the transcript.
 */
export interface HelloExpectation {
  /** Our role. */
  role: LinkRole;
  /** Dialer: the kind we asked for. Listener: the only kind we accept, or undefined for any. */
  kind: LinkKind | undefined;
  expectedPeer: string | undefined;
  localHost: string;
  socket: Duplex;
  /** How each side proves its id on this link: the peer must use the same. */
  method: AuthMethod;
  /** An unauthenticated plain TCP link off loopback is accepted (`transport.allowUnauthenticated`). */
  allowUnauthenticated: boolean;
  membership: HostMembership | undefined;
}

/** A goodbye to send: its code and reason. */
export type Goodbye = [GoodbyeCode, string];

/** What the first message from the peer decides. */
export type HandshakeVerdict = { ok: true; hello: HelloMessage } | { ok: false; error: Error; goodbye: Goodbye | undefined };

/** Why our side cannot start a handshake on `socket` (undefined: it can). */
export function handshakeStartError(init: {
  localHost: string;
  role: LinkRole;
  kind: LinkKind | undefined;
  socket: Duplex;
  signal?: AbortSignal | undefined;
  method: AuthMethod;
  allowUnauthenticated: boolean;
}): Error | undefined {
  if (!HOST_ID_PATTERN.test(init.localHost)) return new HandshakeError(`local host id ${JSON.stringify(init.localHost)} is not a valid host id`);
  if (init.role === 'dialer' && init.kind === undefined) return new HandshakeError('a dialing link needs a kind (backbone or fast-path)');
  if (init.socket.destroyed || !init.socket.writable) return new HandshakeError('socket is not connected');
  if (init.signal?.aborted === true) return new AbortedError('link handshake', { cause: init.signal.reason });
  if (init.role === 'dialer') {
    const why = unauthenticatedRefusal(init.socket, init.method, init.allowUnauthenticated);
    if (why !== undefined) return new UnauthenticatedLinkError(why);
  }
  return undefined;
}

/**
 * Why an unauthenticated link on `socket` is refused (undefined: it is not
 * unauthenticated, or allowed): only a plain TCP socket whose two ends are
 * both loopback addresses may go without, unless the operator allowed it.
 * TLS sockets are authenticated by their certificates; in-process streams
 * (the memory transport) never leave the process.
 */
export function unauthenticatedRefusal(socket: Duplex, method: AuthMethod, allowUnauthenticated: boolean): string | undefined {
  if (method !== 'none' || allowUnauthenticated || tlsOf(socket) !== undefined || !(socket instanceof Socket)) return undefined;
  if (isLoopbackAddress(socket.localAddress) && isLoopbackAddress(socket.remoteAddress)) return undefined;
  return `unauthenticated TCP link between ${socket.localAddress ?? '?'} and ${socket.remoteAddress ?? '?'} refused off loopback: configure a link key (linkKeyFile) or host certificates (tls: {dir}), or set transport option allowUnauthenticated`;
}


/**
 * The handshake's time limit and the caller's abort signal: `fail` is called
 * with a HandshakeError (and the timeout goodbye) or an AbortedError, whichever
 * comes first. Returns the function that disarms both once the handshake ends.
 */
export function armHandshake(clock: Clock, timeoutMs: number, signal: AbortSignal | undefined, fail: (err: Error, goodbye: Goodbye | undefined) => void): () => void {
  const onAbort = (): void => fail(new AbortedError('link handshake', { cause: signal?.reason }), undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = clock.setTimeout(() => fail(new HandshakeError(`no hello from the peer within ${timeoutMs} ms`), ['timeout', 'no hello in time']), timeoutMs);
  return () => {
    timer.cancel();
    signal?.removeEventListener('abort', onAbort);
  };
}

/** Judge the first control message the peer sent during the handshake. */
export function judgeHello(msg: ControlMessage, want: HelloExpectation): HandshakeVerdict {
  if (msg.type === 'foreign-hello') {
    return { ok: false, error: new ProtocolVersionError(msg.version, PROTOCOL_VERSION), goodbye: ['version', `this host speaks protocol version ${PROTOCOL_VERSION}, not ${msg.version}`] };
  }
  if (msg.type === 'goodbye') {
    const bye = new PeerGoodbyeError(want.expectedPeer ?? 'peer', msg.code, msg.reason);
    return { ok: false, error: new HandshakeError(`peer refused the link (${msg.code}): ${msg.reason}`, { cause: bye }), goodbye: undefined };
  }
  if (msg.type !== 'hello') {
    return { ok: false, error: new HandshakeError(`expected a hello, got a ${msg.type}`), goodbye: ['protocol', `expected a hello, got a ${msg.type}`] };
  }
  const refusal = helloRefusal(msg, want);
  if (refusal !== undefined) return { ok: false, error: new HandshakeError(refusal), goodbye: ['refused', refusal] };
  if (want.membership?.admits(msg.hostId) === false) {
    return { ok: false, error: new NotMemberError(msg.hostId), goodbye: ['refused', `host ${msg.hostId} is not a member of this deployment`] };
  }
  if (msg.auth !== want.method) {
    const why = `peer authenticates with ${msg.auth}, this host with ${want.method}`;
    return { ok: false, error: new LinkAuthError(why), goodbye: ['auth', why] };
  }
  if (want.role === 'listener') {
    const why = unauthenticatedRefusal(want.socket, want.method, want.allowUnauthenticated);
    if (why !== undefined) return { ok: false, error: new UnauthenticatedLinkError(why), goodbye: ['auth', why] };
  }
  return { ok: true, hello: msg };
}

/** Why the hello is refused (sent to the peer in the goodbye), or undefined if it is acceptable. */
export function helloRefusal(hello: HelloMessage, want: HelloExpectation): string | undefined {
  const peerRole: LinkRole = want.role === 'dialer' ? 'listener' : 'dialer';
  if (hello.role !== peerRole) return `peer ${hello.hostId} is a ${hello.role} too`;
  if (want.kind !== undefined && hello.kind !== want.kind) {
    return want.role === 'dialer' ? `asked for a ${want.kind} link, peer answered ${hello.kind}` : `this listener accepts ${want.kind} links, not ${hello.kind}`;
  }
  if (want.expectedPeer !== undefined && hello.hostId !== want.expectedPeer) return `expected host ${want.expectedPeer}, peer says it is ${hello.hostId}`;
  if (hello.hostId === want.localHost) return `peer claims our own host id ${hello.hostId}`;
  return certificateMismatch(want.socket, hello.hostId);
}

/** For a TLS socket: why the certificate does not vouch for `hostId` (undefined when it does, or for plain sockets). */
function certificateMismatch(stream: Duplex, hostId: string): string | undefined {
  const socket = tlsOf(stream);
  if (socket === undefined) return undefined;
  if (!socket.authorized) return `peer certificate not authorized: ${String(socket.authorizationError ?? 'none presented')}`;
  const cert = socket.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0) return 'peer presented no certificate';
  const names = certificateNames(cert);
  if (names.includes(hostId)) return undefined;
  return `peer says it is ${hostId} but its certificate names ${names.join(', ') || 'nobody'}`;
}

/** CN and DNS subject alternative names of a peer certificate. */
export function certificateNames(cert: { subject?: unknown; subjectaltname?: string | undefined }): string[] {
  const names: string[] = [];
  const cn = (cert.subject as { CN?: string | string[] } | undefined)?.CN;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...cn);
  for (const entry of (cert.subjectaltname ?? '').split(',')) {
    const e = entry.trim();
    if (e.startsWith('DNS:')) names.push(e.slice(4));
  }
  return names;
}
