import { VnetError } from '../common/errors.ts';

/**
 * Errors of the Patterns benchmark. Every failure that ends a worker's run
 * has its own class and stable code; where a peer is to blame, `peer` names
 * its index (and the message its address), so an operator knows whom to look at.
 */

/** Where a failure came from: a worker index and its address, when known. */
export interface PeerRef {
  readonly index: number | undefined;
  readonly address: string;
}

function who(peer: PeerRef): string {
  return peer.index === undefined ? `connection from ${peer.address}` : `worker ${peer.index} (${peer.address})`;
}

/** Base of the errors that name a peer. */
export abstract class PatternsPeerError extends VnetError {
  readonly peer: PeerRef;

  constructor(code: string, peer: PeerRef, message: string, options?: { cause?: unknown }) {
    super(code, `${who(peer)}: ${message}`, options);
    this.peer = peer;
  }
}

/** Bytes on a Patterns connection that are not a valid message (bad magic, version, type, length, payload, or an unexpected message). */
export class PatternsProtocolError extends PatternsPeerError {
  constructor(peer: PeerRef, message: string) {
    super('VNET_ERR_PATTERNS_PROTOCOL', peer, message);
  }
}

/** The peer's hello does not match this worker's run (index, worker count, pattern, size, rounds). */
export class PatternsHandshakeError extends PatternsPeerError {
  constructor(peer: PeerRef, message: string) {
    super('VNET_ERR_PATTERNS_HANDSHAKE', peer, message);
  }
}

/** A peer's connection closed or failed before the peer had sent everything the run expects from it. */
export class PatternsPeerVanishedError extends PatternsPeerError {
  constructor(peer: PeerRef, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_PATTERNS_PEER_VANISHED', peer, message, options);
  }
}

/** A peer gave up the run (its own failure, or one it heard of) and said why; `origin` is the worker where it started. */
export class PatternsPeerAbortError extends PatternsPeerError {
  readonly origin: number;
  readonly reason: string;

  constructor(peer: PeerRef, origin: number, reason: string) {
    super('VNET_ERR_PATTERNS_PEER_ABORTED', peer, `aborted the run (failure at worker ${origin}): ${reason}`);
    this.origin = origin;
    this.reason = reason;
  }
}

/** The connections to the pattern neighbours were not all up within the connect timeout. */
export class PatternsConnectTimeoutError extends VnetError {
  readonly missing: readonly string[];

  constructor(timeoutMs: number, missing: readonly string[], options?: { cause?: unknown }) {
    super('VNET_ERR_PATTERNS_CONNECT_TIMEOUT', `not connected within ${timeoutMs} ms to ${missing.join(', ')}`, options);
    this.missing = missing;
  }
}

/** A round (exchange plus barrier) did not finish within the round timeout; names what was still awaited. */
export class PatternsRoundTimeoutError extends VnetError {
  readonly round: number;

  constructor(round: number, timeoutMs: number, waitingFor: string) {
    super('VNET_ERR_PATTERNS_ROUND_TIMEOUT', `round ${round} did not finish within ${timeoutMs} ms; still waiting for ${waitingFor}`);
    this.round = round;
  }
}

/** The run's parameters are invalid (index out of range, pattern undefined for the worker count, bad sizes). */
export class PatternsConfigError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_PATTERNS_CONFIG', message, options);
  }
}

/** The run was cancelled through its AbortSignal. */
export class PatternsAbortedError extends VnetError {
  constructor(reason: unknown) {
    super('VNET_ERR_PATTERNS_ABORTED', `run cancelled: ${reason instanceof Error ? reason.message : String(reason)}`, { cause: reason });
  }
}
