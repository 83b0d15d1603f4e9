import { tlsOf } from './record-socket.ts';
import { HandshakeError, LinkAuthError, PeerGoodbyeError } from './errors.ts';
import { freshNonce, handshakeTranscript, type LinkAuthenticator } from './link-auth.ts';
import type { Clock } from '../common/clock.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, type OpenLinkInit } from './link-interface.ts';
import { armHandshake, handshakeStartError, judgeHello, type Goodbye, type HelloExpectation } from './link-handshake.ts';
import { encodeAuth, encodeHello, type AuthMethod, type ControlMessage, type HelloMessage, type LinkRole } from './wire-messages.ts';

/**
 * One link handshake as a state machine with no I/O: messages from the peer
 * in, the bytes to send and the verdict out (link.ts writes them and runs the
 * timer). The conversation (docs/wire-protocol.md):
 *
 *   dialer                                  listener
 *     hello(kind, id, method, nonce_d)  →     judge (role, kind, id, membership, method)
 *                                       ←   hello(kind, id, method, nonce_l)
 *                                       ←   auth(proof_l)           [method ≠ none]
 *     judge hello, check proof_l
 *     auth(proof_d)                     →     check proof_d          [method ≠ none]
 *     open                                    open
 *
 * With method `none` (TLS links, whose certificates prove the ids; or an
 * unauthenticated TCP link on loopback or allowed by the operator) the auth
 * messages are left out, as in protocol version 1.
 *
 * `startLinkHandshake` starts one for a link: our side's checks, the
 * session, and its timer (link-handshake.ts).
 */
export type HandshakeStep =
  | { next: 'wait'; send: Buffer[] }
  | { next: 'open'; hello: HelloMessage; send: Buffer[] }
  | { next: 'fail'; error: Error; goodbye: Goodbye | undefined };

export interface HandshakeSessionInit extends Omit<HelloExpectation, 'method'> {
  /** Proves our id and checks the peer's on plain TCP; undefined: no authentication (method none). */
  authenticator: LinkAuthenticator | undefined;
  /** Wall-clock now (certificate validity). */
  wallNow: () => number;
}

/** Our authentication method on `socket`: none on TLS (the certificates did it), else the authenticator's. */
export function linkAuthMethod(socket: unknown, authenticator: LinkAuthenticator | undefined): AuthMethod {
  if (tlsOf(socket) !== undefined || authenticator === undefined) return 'none';
  return authenticator.method;
}

/**
 * The handshake of a link opened with `init`, started: its session and the
 * disarm of its timer (the timeout and the caller's AbortSignal, which call
 * `fail`); or why our side cannot take part, with nothing started.
 */
export function startLinkHandshake(init: OpenLinkInit, role: LinkRole, clock: Clock, fail: (err: Error, goodbye: Goodbye | undefined) => void): { session: HandshakeSession; disarm: () => void } | Error {
  const socket = init.socket;
  const allowUnauthenticated = init.allowUnauthenticated ?? false;
  const method = linkAuthMethod(socket, init.authenticator);
  const cannot = handshakeStartError({ localHost: init.localHost, role, kind: init.kind, socket, signal: init.signal, method, allowUnauthenticated });
  if (cannot !== undefined) return cannot;
  const session = new HandshakeSession({
    role,
    kind: init.kind,
    expectedPeer: init.expectedPeer,
    localHost: init.localHost,
    socket,
    allowUnauthenticated,
    membership: init.membership,
    authenticator: init.authenticator,
    wallNow: () => clock.wallNow(),
  });
  const timeoutMs = init.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  return { session, disarm: armHandshake(clock, timeoutMs, init.signal, fail) };
}

export class HandshakeSession {
  readonly #init: HandshakeSessionInit;
  readonly #want: HelloExpectation;
  readonly #nonce = freshNonce();
  /** The peer's hello, once accepted: we then wait for its auth. */
  #peer: HelloMessage | undefined;

  constructor(init: HandshakeSessionInit) {
    this.#init = init;
    this.#want = { ...init, method: linkAuthMethod(init.socket, init.authenticator) };
  }

  get method(): AuthMethod {
    return this.#want.method;
  }

  /** The hello we send (the dialer at once; the listener after accepting the dialer's). */
  hello(kind: HelloMessage['kind']): Buffer {
    return encodeHello({ kind, role: this.#want.role, hostId: this.#want.localHost, auth: this.#want.method, nonce: this.#nonce });
  }

  receive(msg: ControlMessage): HandshakeStep {
    const peer = this.#peer;
    if (peer === undefined) return this.#receiveHello(msg);
    if (msg.type === 'goodbye') {
      const bye = new PeerGoodbyeError(peer.hostId, msg.code, msg.reason);
      return { next: 'fail', error: new HandshakeError(`peer refused the link (${msg.code}): ${msg.reason}`, { cause: bye }), goodbye: undefined };
    }
    if (msg.type !== 'auth') return { next: 'fail', error: new HandshakeError(`expected an auth, got a ${msg.type}`), goodbye: ['protocol', `expected an auth, got a ${msg.type}`] };
    const authenticator = this.#init.authenticator!;
    const peerRole: LinkRole = this.#want.role === 'dialer' ? 'listener' : 'dialer';
    const why = authenticator.check(this.#transcript(peer, peerRole), msg, peer.hostId, this.#init.wallNow());
    if (why !== undefined) {
      const error = new LinkAuthError(`${peer.hostId}: ${why}`);
      error.claimedHost = peer.hostId;
      return { next: 'fail', error, goodbye: ['auth', why] };
    }
    if (this.#want.role === 'listener') return { next: 'open', hello: peer, send: [] };
    return { next: 'open', hello: peer, send: [encodeAuth(authenticator.prove(this.#transcript(peer, 'dialer')))] };
  }

  #receiveHello(msg: ControlMessage): HandshakeStep {
    const verdict = judgeHello(msg, this.#want);
    if (!verdict.ok) {
      if (msg.type === 'hello' && verdict.error instanceof HandshakeError) verdict.error.claimedHost = msg.hostId;
      return { next: 'fail', error: verdict.error, goodbye: verdict.goodbye };
    }
    const hello = verdict.hello;
    const listening = this.#want.role === 'listener';
    if (this.#want.method === 'none') return { next: 'open', hello, send: listening ? [this.hello(hello.kind)] : [] };
    this.#peer = hello;
    if (!listening) return { next: 'wait', send: [] };
    const proof = this.#init.authenticator!.prove(this.#transcript(hello, 'listener'));
    return { next: 'wait', send: [this.hello(hello.kind), encodeAuth(proof)] };
  }

  #transcript(peer: HelloMessage, prover: LinkRole): Buffer {
    const us = { hostId: this.#want.localHost, nonce: this.#nonce };
    const them = { hostId: peer.hostId, nonce: peer.nonce };
    const [dialer, listener] = this.#want.role === 'dialer' ? [us, them] : [them, us];
    return handshakeTranscript({ kind: peer.kind, method: this.#want.method, dialer, listener }, prover);
  }
}
