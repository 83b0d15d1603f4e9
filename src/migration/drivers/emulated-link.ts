/**
 * An emulated WAN link for virtual-time runs: a FIFO pipe each way of a
 * given bandwidth and round-trip time. A record of `size` bytes handed over
 * at `now` leaves when its direction's pipe is free plus its serialisation
 * time, and arrives half an RTT later. The forward pipe carries the stream,
 * the reverse pipe the receiver's replies (disk-acks, the final ack).
 * Optionally cut at a given time (a link failure): whatever would leave
 * after the cut never arrives; `replyCutAtMs` cuts the reverse direction
 * only (a destination that stops acknowledging).
 */
import { ConfigError } from '../../common/errors.ts';

export interface EmulatedLinkParams {
  /** Bits per second. */
  readonly bandwidthBps: number;
  readonly rttMs: number;
  /** The link breaks at this time (ms); nothing leaves after it. */
  readonly cutAtMs?: number;
  /** The reverse direction breaks at this time (ms): no reply leaves after it. */
  readonly replyCutAtMs?: number;
}

export class EmulatedLink {
  readonly params: EmulatedLinkParams;
  /** Bytes per millisecond. */
  readonly rate: number;
  #busyUntil = 0;
  #bytes = 0;
  #replyBusyUntil = 0;

  constructor(params: EmulatedLinkParams) {
    if (!(params.bandwidthBps > 0) || !(params.rttMs >= 0)) throw new ConfigError('an emulated link needs a positive bandwidth and a non-negative RTT', { key: 'link' });
    this.params = params;
    this.rate = params.bandwidthBps / 8 / 1000;
  }

  /** When the pipe is next free. */
  get busyUntil(): number {
    return this.#busyUntil;
  }

  get bytesCarried(): number {
    return this.#bytes;
  }

  get cut(): number {
    return this.params.cutAtMs ?? Number.POSITIVE_INFINITY;
  }

  /** Sends `size` bytes handed over at `now`; returns the arrival time, or undefined if the link is cut first. */
  send(size: number, now: number): number | undefined {
    const start = Math.max(now, this.#busyUntil);
    const leave = start + size / this.rate;
    if (leave > this.cut) {
      this.#busyUntil = Math.max(this.#busyUntil, this.cut);
      return undefined;
    }
    this.#busyUntil = leave;
    this.#bytes += size;
    return leave + this.params.rttMs / 2;
  }

  /** Sends a reply of `size` bytes back at `now`; returns its arrival at the sender, or undefined if the reverse direction is cut first. */
  reply(size: number, now: number): number | undefined {
    const start = Math.max(now, this.#replyBusyUntil);
    const leave = start + size / this.rate;
    if (leave > Math.min(this.cut, this.params.replyCutAtMs ?? Number.POSITIVE_INFINITY)) return undefined;
    this.#replyBusyUntil = leave;
    return leave + this.params.rttMs / 2;
  }
}
