import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import { LinkTimeoutError } from './errors.ts';
import { ECHO_TOKEN_BYTES, encodeEcho, encodeKeepalive } from './wire-messages.ts';
import type { Goodbye } from './link-handshake.ts';
import { DEFAULT_DEAD_MS, DEFAULT_KEEPALIVE_MS, DEFAULT_PROBE_MS, type LinkStats, type OpenLinkInit } from './link-interface.ts';
import { Liveness } from './link-liveness.ts';
import type { LinkWriter } from './link-writer.ts';

/**
 * A link's probes of its peer, written and counted: the keepalive sent after
 * a quiet spell, and the echo request whose reply measures the round trip
 * (`rttMs`, and `srttMs` smoothed as TCP does). When they go out is
 * link-liveness.ts's timer, which `startLinkLiveness` wires to them and to
 * the link's end on a timeout; whether the link is open to send them, link.ts's.
 *
 *   keepalive   one keepalive message; keepalivesSent counted.
 *   probe       an echo request with a fresh token (the count of requests so
 *               far, 8 bytes big-endian), remembered with its send time.
 *   reply       the peer's reply to our latest request gives a round trip;
 *               a late reply to an older one is ignored.
 *   answer      the peer's echo request answered with its token.
 */
export class LinkProbes {
  readonly #stats: LinkStats;
  readonly #writer: Pick<LinkWriter, 'writeControl'>;
  readonly #clock: Clock;
  /** The outstanding echo request: its token and when it went out (clock ms). */
  #probe: { token: Buffer; sentAt: number } | undefined;

  constructor(stats: LinkStats, writer: Pick<LinkWriter, 'writeControl'>, clock: Clock) {
    this.#stats = stats;
    this.#writer = writer;
    this.#clock = clock;
  }

  keepalive(): void {
    this.#stats.keepalivesSent++;
    this.#writer.writeControl(encodeKeepalive());
  }

  probe(): void {
    const token = Buffer.allocUnsafe(ECHO_TOKEN_BYTES);
    token.writeBigUInt64BE(BigInt(++this.#stats.echoesSent));
    this.#probe = { token, sentAt: this.#clock.now() };
    this.#writer.writeControl(encodeEcho('echo-request', token));
  }

  /** A reply to our latest request gives a round trip; a late reply to an older one is ignored. */
  reply(token: Buffer): void {
    const probe = this.#probe;
    if (probe === undefined || !probe.token.equals(token)) return;
    this.#probe = undefined;
    const stats = this.#stats;
    const rtt = Math.max(0, this.#clock.now() - probe.sentAt);
    stats.echoesAnswered++;
    stats.rttMs = rtt;
    stats.srttMs = stats.srttMs === undefined ? rtt : stats.srttMs + (rtt - stats.srttMs) / 8;
  }

  answer(token: Buffer): void {
    this.#writer.writeControl(encodeEcho('echo-reply', token));
  }
}

/** What the liveness timer of an open link acts on. */
export interface LivenessTarget {
  readonly peerHost: string;
  readonly log: Logger;
  /** Probes go out only while this holds. */
  isOpen(): boolean;
  /** The peer went silent for deadMs, or this process stalled that long: end the link with `err`, telling the peer `goodbye`. */
  timedOut(err: LinkTimeoutError, goodbye: Goodbye): void;
}

/** The liveness timer of a link just opened with `init` (its keepalive, dead and probe times, or the defaults). */
export function startLinkLiveness(init: Pick<OpenLinkInit, 'keepaliveMs' | 'deadMs' | 'probeMs'>, clock: Clock, probes: LinkProbes, link: LivenessTarget): Liveness {
  return new Liveness(clock, init.keepaliveMs ?? DEFAULT_KEEPALIVE_MS, init.deadMs ?? DEFAULT_DEAD_MS, init.probeMs ?? DEFAULT_PROBE_MS, {
    keepalive: () => {
      if (link.isOpen()) probes.keepalive();
    },
    probe: () => {
      if (link.isOpen()) probes.probe();
    },
    stalled: (stalledMs) => {
      link.log.warn({ stalledMs: Math.round(stalledMs) }, 'this process stalled longer than the dead time; closing the link without delivering what waited');
      link.timedOut(new LinkTimeoutError(link.peerHost, stalledMs), ['timeout', `stalled for ${Math.round(stalledMs)} ms`]);
    },
    dead: (silentMs) => {
      link.log.warn({ silentMs: Math.round(silentMs) }, 'peer silent; closing the link');
      link.timedOut(new LinkTimeoutError(link.peerHost, silentMs), ['timeout', `nothing heard for ${Math.round(silentMs)} ms`]);
    },
  });
}
