/**
 * The port compliance suite (port-compliance.ts) against TapPort on the real
 * kernel (root), with and without vnet_hdr. Each port gets its own network
 * namespace (made with `ip netns add` by test/helpers/netns.ts and removed
 * after): the TAP device is created in the host namespace, moved into it
 * (IPv6 off there, so the kernel sends nothing of its own), and the VM is a
 * small Python program in that namespace with an AF_PACKET socket on the
 * device: it sends the raw frames the suite gives it and reports every frame
 * the port delivers.
 *
 * The attached variants run the same suite against TapPort.attach: a
 * multi-queue device is created and moved into the namespace by a holder
 * (TapDevice, as a source daemon would have it), the port attaches a second
 * queue inside the namespace, and the holder closes, leaving the port as the
 * device's only reader.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { silentLogger } from '../../src/common/logger.ts';
import { TapDevice } from '../../src/dataplane/tap-device.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { NetnsHarness, requireTools, run, waitFor } from '../helpers/netns.ts';
import { portCompliance, type PortFixture } from './port-compliance.ts';

requireTools(['ip', 'python3']);

/** The VM: `S <hex>...` sends frames and answers `sent`; each frame the device receives is printed as `R <hex>`. */
const VM_SCRIPT = `
import socket, sys, threading
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
out = threading.Lock()
def say(line):
    with out:
        sys.stdout.write(line + '\\n')
        sys.stdout.flush()
def receive():
    while True:
        try:
            data, addr = s.recvfrom(1 << 17)
        except OSError:
            return
        if addr[2] != socket.PACKET_OUTGOING:
            say('R ' + data.hex())
threading.Thread(target=receive, daemon=True).start()
say('ready')
for line in sys.stdin:
    for h in line.split()[1:]:
        s.send(bytes.fromhex(h))
    say('sent')
`;

/** The Python VM on the far side of one TAP device. */
class PacketSocketVm {
  readonly #child: ChildProcess;
  readonly #received: Buffer[] = [];
  #acks = 0;
  #ready = false;
  #partial = '';

  constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.#onOutput(chunk));
  }

  async ready(): Promise<void> {
    await waitFor(() => this.#ready || this.#child.exitCode !== null, 'the VM program in the namespace', 60_000);
    if (!this.#ready) throw new Error(`the VM program exited with ${this.#child.exitCode}`);
  }

  async send(frames: readonly Buffer[]): Promise<void> {
    const want = this.#acks + 1;
    this.#child.stdin!.write(`S ${frames.map((f) => f.toString('hex')).join(' ')}\n`);
    await waitFor(() => this.#acks >= want || this.#child.exitCode !== null, 'the VM to send its frames');
    if (this.#acks < want) throw new Error(`the VM program exited with ${this.#child.exitCode}`);
  }

  received(): readonly Buffer[] {
    return this.#received;
  }

  #onOutput(chunk: string): void {
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop()!;
    for (const line of lines) {
      if (line === 'ready') this.#ready = true;
      else if (line === 'sent') this.#acks++;
      else if (line.startsWith('R ')) this.#received.push(Buffer.from(line.slice(2), 'hex'));
    }
  }
}

for (const [vnetHdr, attach] of [[false, false], [true, false], [false, true], [true, true]] as const) {
  const ns = new NetnsHarness();
  portCompliance(`tap ${attach ? 'attached in a namespace ' : ''}${vnetHdr ? 'with vnet_hdr' : 'without vnet_hdr'}`, {
    teardown: () => ns.cleanup(),
    async open({ mac, mtu }): Promise<PortFixture> {
      const netns = await ns.namespace();
      // Without IPv6 (and with no address) the kernel sends nothing of its own on the device.
      await ns.exec(netns, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'], { allowFailure: true });
      const name = ns.linkName();
      let port: TapPort;
      if (!attach) {
        port = TapPort.open({ name, mac, mtu, vnetHdr, logger: silentLogger() });
        ns.trackHostLink(name);
        await ns.moveLink(name, netns);
        await ns.linkUp(netns, name);
      } else {
        const holder = TapDevice.open({ name, mac, mtu, vnetHdr, multiQueue: true, up: true });
        ns.trackHostLink(name);
        try {
          await ns.moveLink(name, netns);
          await ns.linkUp(netns, name);
          port = TapPort.attach({ name, mac, mtu, netns, logger: silentLogger() });
        } finally {
          holder.close();
        }
        if (port.acceptsOffload !== vnetHdr) throw new Error(`attached port took vnet_hdr ${port.acceptsOffload}, the device has ${vnetHdr}`);
      }
      const child = ns.spawn(netns, ['python3', '-u', '-c', VM_SCRIPT, name], { stdin: true });
      const vm = new PacketSocketVm(child);
      await vm.ready();
      return {
        port,
        vm,
        breakDevice: async () => {
          await run(['ip', '-n', netns, 'link', 'del', 'dev', name]);
        },
        cleanup: async () => {
          await port.close();
          if (child.exitCode === null && child.signalCode === null) {
            const exited = once(child, 'exit');
            child.kill('SIGKILL');
            await exited;
          }
          await run(['ip', 'netns', 'del', netns], { allowFailure: true });
        },
      };
    },
  });
}
