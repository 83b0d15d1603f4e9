/**
 * A QEMU VM's NIC on a TAP device, reached by the daemon through a
 * packet-socket port (dataplane/packet-port.ts). QEMU holds the TAP's file
 * (`-netdev tap,ifname=IF,script=no,downscript=no,vnet_hdr=off`, qemu-vm.ts);
 * the daemon owns the device itself:
 *
 *   create    a persistent TAP device, no reader yet (TUNSETPERSIST, then
 *             the daemon's file closed), set up, its MTU the port's + 4; QEMU
 *             attaches to it by name when it starts (on a migration's
 *             destination, the incoming QEMU, after the port exists held)
 *   isolate   the host's own stack kept off it: IPv6 off (no router or
 *             neighbour solicitations into the guest), IPv4 forwarding off
 *             for what the guest sends, no ARP answers from the host's
 *             addresses (arp_ignore 8) — the guest sees the overlay only
 *   attach    the packet port on it, locked to the VM's MAC and address
 *   remove    when the port closes (the VM left, or the daemon stops): the
 *             device deleted (`ip link del`)
 *
 * A step that fails undoes the ones before and throws PortSetupError naming
 * the port.
 */
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from '../common/logger.ts';
import type { Mac } from '../common/mac.ts';
import { PacketPort } from '../dataplane/packet-port.ts';
import { TapDevice } from '../dataplane/tap-device.ts';
import { PortSetupError } from './errors.ts';

const run = promisify(execFile);

export interface QemuTapRequest {
  /** The port's name. */
  readonly name: string;
  /** The TAP device's name (default: the port's). */
  readonly ifname?: string | undefined;
  readonly mac: Mac;
  readonly mtu: number;
  /** The VM's addresses (no prefix) for the port's address lock; none: the MAC only. */
  readonly ips?: readonly string[] | undefined;
  /** MACs besides `mac` the VM may send from. */
  readonly allowedMacs?: readonly Mac[] | undefined;
  /** No address lock at all (the port's `security.lock: false`). */
  readonly unlocked?: boolean | undefined;
  readonly logger: Logger;
}

/** Create the VM's TAP device, keep the host's stack off it, and attach a packet port to it; the device goes with the port. */
export function openQemuTapPort(req: QemuTapRequest): PacketPort {
  const ifname = req.ifname ?? req.name;
  try {
    // Created (or taken over from a daemon that died), persistent, with no reader: QEMU attaches by name.
    // Its MTU has a VLAN tag's room: the kernel refuses a packet socket's frame over the interface's MTU + 14,
    // and the port delivers up to MTU + 18 (a tagged frame); the guest's own MTU is its NIC's business.
    TapDevice.open({ name: ifname, persist: true, mtu: req.mtu + 4, up: true }).close();
  } catch (err) {
    throw new PortSetupError(req.name, `cannot create the TAP device ${ifname} for its QEMU: ${(err as Error).message}`, { cause: err });
  }
  try {
    isolateFromHost(ifname);
    return PacketPort.open({
      name: req.name, ifname, mac: req.mac, mtu: req.mtu, logger: req.logger,
      lock: req.unlocked === true ? false : { ips: req.ips ?? [], allowedMacs: req.allowedMacs ?? [] },
      onClosed: () => removeTap(ifname),
    });
  } catch (err) {
    void removeTap(ifname).catch(() => undefined);
    throw new PortSetupError(req.name, `TAP device ${ifname}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * A name for the TAP device of an arriving VM's port: the port's name, or,
 * when an interface has it already (two daemons on one kernel: the
 * source's device is still there), the name with `.mN` in its last bytes.
 */
export function freeTapName(port: string): string {
  const taken = (n: string): boolean => existsSync(`/sys/class/net/${n}`);
  if (!taken(port)) return port;
  for (let i = 1; i < 1000; i++) {
    const suffix = `.m${i}`;
    const name = `${port.slice(0, 15 - suffix.length)}${suffix}`;
    if (!taken(name)) return name;
  }
  throw new PortSetupError(port, 'no free name for its TAP device');
}

/** Delete the TAP device (QEMU, if it still held it, loses its NIC). */
export async function removeTap(ifname: string): Promise<void> {
  await run('ip', ['link', 'del', 'dev', ifname]);
}

/** The host's IP stack off the device: nothing of the host's reaches the guest, nothing of the guest's is routed or answered by the host. */
function isolateFromHost(ifname: string): void {
  const settings: Array<[string, string, boolean]> = [
    // IPv6 may be compiled out or disabled for the whole namespace: then there is nothing to turn off.
    [`/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`, '1', true],
    [`/proc/sys/net/ipv4/conf/${ifname}/forwarding`, '0', false],
    [`/proc/sys/net/ipv4/conf/${ifname}/arp_ignore`, '8', false],
  ];
  for (const [file, value, optional] of settings) {
    try {
      writeFileSync(file, value);
    } catch (err) {
      if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`cannot keep the host's stack off the TAP device: ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
}
