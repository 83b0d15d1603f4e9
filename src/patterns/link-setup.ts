/**
 * Connection set-up: one TCP connection per pattern edge. The worker with
 * the higher index dials the lower one (retrying while the peer is not yet
 * listening), both send a hello naming themselves and the run's parameters,
 * and each side checks the other's against its own. Everything is bounded by
 * one deadline; a peer that answers with garbage or a different run fails
 * the set-up, named.
 */
import { connect, type Socket } from 'node:net';
import type { Clock, TimerHandle } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { PatternsAbortedError, PatternsConnectTimeoutError, PatternsHandshakeError, PatternsPeerAbortError, PatternsProtocolError } from './errors.ts';
import { FramedSocket } from './framed-socket.ts';
import { formatHostPort as formatAddress } from '../common/host-port.ts';
import type { PatternsListener, PeerAddress } from './listener.ts';
import { encodeHello, type Hello, type PatternsMessage } from './wire.ts';

export interface LinkSetupInit {
  readonly self: Hello;
  readonly peers: readonly PeerAddress[];
  /** Neighbours this worker dials (lower indices). */
  readonly dial: readonly number[];
  /** Neighbours that dial this worker (higher indices). */
  readonly accept: readonly number[];
  readonly listener: PatternsListener;
  readonly reference: Buffer;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 500;

/** The mismatch between two hellos of the same run, or undefined when they agree. */
export function helloMismatch(self: Hello, peer: Hello): string | undefined {
  for (const key of ['workers', 'pattern', 'k', 'messageBytes', 'rounds'] as const) {
    if (self[key] !== peer[key]) return `runs a different ${key} (${String(peer[key])}, here ${String(self[key])})`;
  }
  return undefined;
}

/** Connect to every pattern neighbour; resolves with one framed connection per neighbour index (messages held until attached). */
export function setUpLinks(components: { logger: Logger; clock: Clock }, init: LinkSetupInit): Promise<Map<number, FramedSocket>> {
  const { logger, clock } = components;
  const links = new Map<number, FramedSocket>();
  const pending = new Set<FramedSocket>();
  const dialing = new Set<Socket>();
  const expected = new Set([...init.dial, ...init.accept]);
  const name = (i: number): string => `worker ${i} (${formatAddress(init.peers[i]!)})`;
  let settled = false;
  let lastDialError: unknown;
  const timers = new Set<TimerHandle>();

  return new Promise((resolve, reject) => {
    const finish = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) t.cancel();
      for (const s of dialing) s.destroy();
      init.signal?.removeEventListener('abort', onAbort);
      init.listener.close();
      if (err === undefined) {
        resolve(links);
        return;
      }
      const origin = err instanceof PatternsPeerAbortError ? err.origin : init.self.index;
      const reason = err instanceof PatternsPeerAbortError ? err.reason : err.message;
      for (const f of [...links.values(), ...pending]) f.abortAndClose(0, origin, reason, clock);
      reject(err);
    };
    const onAbort = (): void => finish(new PatternsAbortedError(init.signal?.reason));
    if (init.signal?.aborted) return onAbort();
    init.signal?.addEventListener('abort', onAbort, { once: true });
    const deadline = clock.setTimeout(() => {
      const missing = [...expected].filter((i) => !links.has(i)).map(name);
      finish(new PatternsConnectTimeoutError(init.timeoutMs, missing, lastDialError === undefined ? undefined : { cause: lastDialError }));
    }, init.timeoutMs);
    timers.add(deadline);

    const established = (index: number, f: FramedSocket): void => {
      pending.delete(f);
      f.attach(undefined);
      links.set(index, f);
      logger.debug({ peer: index, remote: f.remote }, 'patterns link up');
      if (links.size === expected.size) finish(undefined);
    };

    /** Handlers for a connection until its hello has been checked. */
    const handshake = (f: FramedSocket, peerIndex: number | undefined, onHello: (h: Hello) => void, onClosedEarly: () => void): void => {
      f.attach({
        message: (m: PatternsMessage) => {
          if (settled) return;
          const ref = { index: peerIndex, address: peerIndex === undefined ? f.remote : formatAddress(init.peers[peerIndex]!) };
          if (m.type === 'abort') return finish(new PatternsPeerAbortError(ref, m.origin, m.reason));
          if (m.type !== 'hello') return finish(new PatternsProtocolError(ref, `sent a ${m.type} message before its hello`));
          onHello(m.hello);
        },
        protocolError: (detail) => {
          if (settled) return;
          finish(new PatternsProtocolError({ index: peerIndex, address: peerIndex === undefined ? f.remote : formatAddress(init.peers[peerIndex]!) }, `during the handshake: ${detail}`));
        },
        closed: () => {
          pending.delete(f);
          if (!settled) onClosedEarly();
        },
      });
    };

    const dial = (index: number, attempt: number): void => {
      if (settled) return;
      const addr = init.peers[index]!;
      const socket: Socket = connect({ host: addr.host, port: addr.port });
      dialing.add(socket);
      const retry = (err: unknown): void => {
        lastDialError = err;
        dialing.delete(socket);
        socket.destroy();
        if (settled) return;
        const t = clock.setTimeout(() => {
          timers.delete(t);
          dial(index, attempt + 1);
        }, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 4)));
        timers.add(t);
      };
      socket.once('error', retry);
      socket.once('connect', () => {
        dialing.delete(socket);
        socket.removeListener('error', retry);
        if (settled) return socket.destroy();
        const f = new FramedSocket(socket, init.reference);
        pending.add(f);
        handshake(
          f,
          index,
          (h) => {
            const ref = { index, address: formatAddress(addr) };
            if (h.index !== index) return finish(new PatternsHandshakeError(ref, `answered as worker ${h.index}`));
            const mismatch = helloMismatch(init.self, h);
            if (mismatch !== undefined) return finish(new PatternsHandshakeError(ref, mismatch));
            established(index, f);
          },
          () => retry(new Error(`${name(index)} closed the connection before its hello`)),
        );
        f.sendRaw(encodeHello(init.self));
      });
    };

    init.listener.onConnection((socket) => {
      if (settled) return socket.destroy();
      const f = new FramedSocket(socket, init.reference);
      pending.add(f);
      handshake(
        f,
        undefined,
        (h) => {
          const ref = { index: h.index, address: f.remote };
          if (!init.accept.includes(h.index)) {
            return finish(new PatternsHandshakeError(ref, `is not a neighbour that dials worker ${init.self.index} in this ${init.self.pattern} pattern`));
          }
          if (links.has(h.index)) return finish(new PatternsHandshakeError(ref, 'connected twice'));
          const mismatch = helloMismatch(init.self, h);
          if (mismatch !== undefined) return finish(new PatternsHandshakeError(ref, mismatch));
          f.sendRaw(encodeHello(init.self));
          established(h.index, f);
        },
        () => logger.debug({ remote: f.remote }, 'patterns connection closed before its hello'),
      );
    });

    for (const i of init.dial) dial(i, 0);
    if (expected.size === 0) finish(undefined);
  });
}
