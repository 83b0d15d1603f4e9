import type { ControllerMessage } from '../../control/control-protocol.ts';
import type { ControlSession } from '../control-server.ts';

/**
 * An OVS host as the control loop's session table sees it (ovs-host.ts):
 * what the loop sends goes to the host's agent; it is open while the
 * switch's OpenFlow connection is. Closing it is the connection's business,
 * not the operator's: revoking a host's identity has no hold on a bridge.
 */

/** Session ids of OVS hosts, apart from the control server's. */
let nextSessionId = 1_000_000_000;

export class OvsSession implements ControlSession {
  readonly id = nextSessionId++;
  readonly hostId: string;
  readonly auth = 'certificate' as const;
  readonly remoteAddress: string;
  closed = false;
  readonly #deliver: (message: ControllerMessage) => void;

  constructor(hostId: string, remote: string, deliver: (message: ControllerMessage) => void) {
    this.hostId = hostId;
    this.remoteAddress = remote;
    this.#deliver = deliver;
  }

  send(message: ControllerMessage): boolean {
    if (this.closed) return false;
    this.#deliver(message);
    return true;
  }

  close(): void {
    // The switch's connection decides (see above).
  }
}
