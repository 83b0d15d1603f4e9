import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Clock } from '../common/clock.ts';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import { AbortedError, HandshakeError, PeerGoodbyeError, ProtocolVersionError } from './errors.ts';
import { PROTOCOL_VERSION, type ControlMessage, type GoodbyeCode, type HelloMessage, type LinkKind, type LinkRole } from './wire-messages.ts';

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
 *            id, and — on TLS — a host id that the peer's verified certificate
 *            names (CN or SAN DNS). Anything else fails the handshake with a
 *            typed error and, where the peer should hear why, the goodbye to
 *            send it before the socket is ended.
 */
export interface HelloExpectation {
  /** Our role. */
  role: LinkRole;
  /** Dialer: the kind we asked for. Listener: the only kind we accept, or undefined for any. */
  kind: LinkKind | undefined;
  expectedPeer: string | undefined;
  localHost: string;
  socket: Duplex;
}

/** A goodbye to send: its code and reason. */
export type Goodbye = [GoodbyeCode, string];

/** What the first message from the peer decides. */
export type HandshakeVerdict = { ok: true; hello: HelloMessage } | { ok: false; error: Error; goodbye: Goodbye | undefined };

/** Why our side cannot start a handshake on `socket` (undefined: it can). */
export function handshakeStartError(init: { localHost: string; role: LinkRole; kind: LinkKind | undefined; socket: Duplex; signal?: AbortSignal | undefined }): Error | undefined {
  if (!HOST_ID_PATTERN.test(init.localHost)) return new HandshakeError(`local host id ${JSON.stringify(init.localHost)} is not a valid host id`);
  if (init.role === 'dialer' && init.kind === undefined) return new HandshakeError('a dialing link needs a kind (backbone or fast-path)');
  if (init.socket.destroyed || !init.socket.writable) return new HandshakeError('socket is not connected');
  if (init.signal?.aborted === true) return new AbortedError('link handshake', { cause: init.signal.reason });
  return undefined;
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
function certificateMismatch(socket: Duplex, hostId: string): string | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
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
