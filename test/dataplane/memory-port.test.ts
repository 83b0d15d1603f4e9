/**
 * The port compliance suite (port-compliance.ts) against the in-process
 * MemoryPort: the VM side is the port's own transmit / onDeliver.
 */
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { TapError } from '../../src/dataplane/errors.ts';
import { portCompliance } from './port-compliance.ts';

let seq = 0;

portCompliance('memory', {
  async open({ mac, mtu }) {
    const port = new MemoryPort({ name: `mem${seq++}`, mac, mtu });
    const received: Buffer[] = [];
    port.onDeliver((frame) => received.push(Buffer.from(frame)));
    return {
      port,
      vm: {
        async send(frames) {
          for (const f of frames) port.transmit(f);
        },
        received: () => received,
      },
      // As a TAP device being deleted under the port.
      breakDevice: async () => port.fail(new TapError(`the device of ${port.name} went away (simulated)`)),
      cleanup: () => port.close(),
    };
  },
});
