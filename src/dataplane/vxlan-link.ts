import type { Frame } from '../common/frame.ts';
import type { Logger } from '../common/logger.ts';
import { FrameHandlerError } from './errors.ts';
import { CloseNotice, newLinkStats, type CloseHandler, type Link, type LinkStats } from './link-interface.ts';
import type { FramesHandler } from './link-inbox.ts';

/**
 * The link to one remote VTEP (vxlan-endpoint.ts): the same `Link` as a
 * TCP or TLS link, so it joins the link slots, the forwarding table, rules
 * and counters like any other — but there is no connection under it.
 *
 *   up       from the moment the endpoint opens until it is closed or the
 *            VTEP leaves the configuration: VXLAN has no handshake and no
 *            keepalive, so liveness is the controller's concern (traffic
 *            counters, host facts), not the link's.
 *   send     hands the frame to the endpoint (one datagram per frame;
 *            oversize frames and a full socket queue are counted in
 *            txDropped).
 *   receive  the endpoint delivers each datagram from this VTEP's address
 *            that decoded with the deployment's VNI; frames arriving
 *            before onFrames is registered are counted and dropped.
 *   no probes VXLAN has no echo: the round-trip figures stay undefined.
 */

export interface VxlanSender {
  transmit(link: VxlanLink, frame: Frame): void;
  readonly backlogBytes: number;
  forget(link: VxlanLink): void;
}

let nextSeq = 1;

export class VxlanLink implements Link {
  readonly id: string;
  readonly peerHost: string;
  readonly kind = 'backbone' as const;
  readonly role = 'dialer' as const;
  readonly stats: LinkStats = newLinkStats();
  /** The VTEP's underlay address (canonical IP literal) and UDP port. */
  readonly address: string;
  readonly port: number;
  /** Frames that arrived while no onFrames handler was registered. */
  unhandled = 0;

  readonly #sender: VxlanSender;
  readonly #log: Logger;
  #handler: FramesHandler | undefined;
  #closed = false;
  readonly #closeNotice: CloseNotice;

  constructor(peer: string, address: string, port: number, sender: VxlanSender, logger: Logger) {
    this.peerHost = peer;
    this.address = address;
    this.port = port;
    this.id = `vxlan:${peer}#${nextSeq++}`;
    this.#sender = sender;
    this.#log = logger;
    this.#closeNotice = new CloseNotice(() => logger);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get backlogBytes(): number {
    return this.#sender.backlogBytes;
  }

  send(frame: Frame): void {
    if (this.#closed) {
      this.stats.txDropped++;
      return;
    }
    this.#sender.transmit(this, frame);
  }

  onFrames(handler: FramesHandler): void {
    this.#handler = handler;
  }

  onClose(handler: CloseHandler): void {
    this.#closeNotice.handler = handler;
    if (this.#closed) this.#closeNotice.notify();
  }

  /** One decoded frame from this VTEP (called by the endpoint). */
  receive(frame: Frame): void {
    if (this.#closed) return;
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.data.length;
    const handler = this.#handler;
    if (handler === undefined) {
      this.unhandled++;
      return;
    }
    try {
      handler([frame]);
    } catch (err) {
      this.#log.error({ err, peer: this.peerHost }, 'frame handler threw; closing the VXLAN link');
      this.#end(err instanceof Error ? err : new FrameHandlerError(err));
    }
  }

  close(_reason?: string): Promise<void> {
    this.#end(undefined);
    return Promise.resolve();
  }

  #end(err: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handler = undefined;
    this.#sender.forget(this);
    this.#closeNotice.error = err;
    if (this.#closeNotice.handler !== undefined) this.#closeNotice.notify();
  }
}
