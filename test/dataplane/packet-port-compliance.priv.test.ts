/**
 * The port compliance suite (port-compliance.ts) against PacketPort on the
 * real kernel (root), in the topology it is made for: the VM's side holds a
 * TAP device's file, as QEMU does with `-netdev tap`, and the port is an
 * AF_PACKET socket on the device's interface. What the VM writes to its file
 * arrives on the interface and is read by the port; what the port sends on
 * the interface is what the VM reads from its file. Each port gets its own
 * TAP device, made in the test's own namespace with a unique name (IPv6
 * off on it and no address: the host's stack sends nothing of its own on
 * it), deleted after. breakDevice closes the VM's file: the device, not
 * persistent, goes away under the port.
 */
import { writeFileSync } from 'node:fs';
import { silentLogger } from '../../src/common/logger.ts';
import { PacketPort } from '../../src/dataplane/packet-port.ts';
import { TapDevice } from '../../src/dataplane/tap-device.ts';
import { NetnsHarness, requireTools, run } from '../helpers/netns.ts';
import { portCompliance, type PortFixture } from './port-compliance.ts';

requireTools(['ip']);

const ns = new NetnsHarness();
portCompliance('packet socket on a TAP device a VM holds', {
  teardown: () => ns.cleanup(),
  async open({ mac, mtu }): Promise<PortFixture> {
    const name = ns.linkName();
    // The VM's side: the TAP device's file, as QEMU holds it (no vnet_hdr); the host's stack kept off the interface.
    // Its MTU has a VLAN tag's room, as qemu-tap.ts makes it (the kernel holds a packet socket's frame to the interface's MTU).
    const tap = TapDevice.open({ name, mtu: mtu + 4 });
    ns.trackHostLink(name);
    writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
    await run(['ip', 'link', 'set', 'dev', name, 'up']);
    const received: Buffer[] = [];
    tap.start((buffer, records, count) => {
      for (let i = 0; i < count; i++) received.push(Buffer.from(buffer.subarray(records[2 * i]!, records[2 * i]! + records[2 * i + 1]!)));
    }, () => undefined);
    const port = PacketPort.open({ name, mac, mtu, logger: silentLogger() });
    return {
      port,
      vm: {
        async send(frames) {
          for (const f of frames) {
            const n = tap.write(f);
            if (n < 0) throw new Error(`the VM's TAP write failed: ${n}`);
          }
        },
        received: () => received,
      },
      breakDevice: async () => { tap.close(); },
      cleanup: async () => {
        await port.close();
        tap.close();
      },
    };
  },
});
