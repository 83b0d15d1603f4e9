/**
 * A port of `vnet daemon`'s configuration, opened and set up as written:
 *
 *   memory   an in-memory port (tests, the unprivileged demo)
 *   stream   QEMU's `-netdev stream` on a Unix socket (`path`, default
 *            qemu.dir/NAME.sock): the daemon listens, QEMU connects
 *   packet   an AF_PACKET socket on an existing interface (`ifname`,
 *            default NAME), locked to the port's MAC (and `allowedMacs`)
 *            and its `ip`; with `qemu:` the daemon creates that TAP
 *            device for the QEMU it boots, and deletes it with the port
 *            (qemu-tap.ts)
 *   tap      the TAP device (created, or attached by name), then
 *            netns:  moved into the VM's network namespace, which must exist
 *                    (`ip netns add NAME`; checked before anything is created)
 *            ip:     the VM's address on the device (a /24 when no prefix is
 *                    given), in its namespace
 *            and the device set up (moving it to a namespace sets it down)
 *
 * A step that fails closes the port and throws PortSetupError naming the
 * port and what was wrong: no half-configured device is left behind.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from '../common/logger.ts';
import { parseMac } from '../common/mac.ts';
import type { DaemonConfig } from '../dataplane/daemon-config.ts';
import { MemoryPort } from '../dataplane/memory-port.ts';
import type { Port } from '../dataplane/port.ts';
import { netnsPath } from '../dataplane/tap-device.ts';
import { TapPort } from '../dataplane/tap-port.ts';
import { StreamPort } from '../dataplane/stream-port.ts';
import { PacketPort } from '../dataplane/packet-port.ts';
import { openQemuTapPort } from './qemu-tap.ts';
import { PortSetupError } from './errors.ts';
import type { QemuHost } from './qemu-host.ts';

const run = promisify(execFile);

export type PortSpec = DaemonConfig['ports'][number];

/** The prefix length given to a port address written without one (IPv4). */
export const DEFAULT_PORT_PREFIX = 24;
/** The prefix length given to an IPv6 port address written without one. */
export const DEFAULT_PORT_PREFIX_V6 = 64;

/** `10.0.0.1` → `10.0.0.1/24`, `fd00::1` → `fd00::1/64`; an address with its prefix stays as it is. */
export function portAddress(ip: string): string {
  if (ip.includes('/')) return ip;
  return `${ip}/${ip.includes(':') ? DEFAULT_PORT_PREFIX_V6 : DEFAULT_PORT_PREFIX}`;
}

/** Open a configured port: a memory port, a QEMU stream socket, a packet socket on an interface, or a TAP device moved into `netns`, addressed and up. */
export async function openConfiguredPort(logger: Logger, spec: PortSpec, qemu?: QemuHost): Promise<Port> {
  const mac = parseMac(spec.mac);
  if (spec.type === 'memory') return new MemoryPort({ name: spec.name, mac, mtu: spec.mtu });
  if (spec.type === 'stream') {
    const path = spec.path ?? qemu?.socketPath(spec.name);
    if (path === undefined) throw new PortSetupError(spec.name, 'a stream port needs path, or qemu: {dir}');
    return StreamPort.listen({ name: spec.name, mac, mtu: spec.mtu, path, logger });
  }
  if (spec.type === 'packet') return openPacketPort(logger, spec);
  if (spec.netns !== undefined && !existsSync(netnsPath(spec.netns))) {
    throw new PortSetupError(spec.name, `network namespace ${spec.netns} does not exist (create it first: ip netns add ${spec.netns})`);
  }
  const port = TapPort.open({ name: spec.name, mac, mtu: spec.mtu, vnetHdr: spec.offload, logger });
  try {
    // The open file descriptor keeps working after the device changes namespace.
    if (spec.netns !== undefined) await ip(spec, ['link', 'set', 'dev', spec.name, 'netns', spec.netns], `cannot move the TAP device into namespace ${spec.netns}`);
    const inNs = spec.netns === undefined ? [] : ['-n', spec.netns];
    if (spec.ip !== undefined) await ip(spec, [...inNs, 'addr', 'replace', portAddress(spec.ip), 'dev', spec.name], `cannot give it the address ${spec.ip}`);
    await ip(spec, [...inNs, 'link', 'set', 'dev', spec.name, 'up'], 'cannot set the TAP device up');
  } catch (err) {
    await port.close();
    throw err;
  }
  return port;
}

/** A packet port: on the TAP device the daemon makes for the QEMU it boots, or on an interface that exists. */
function openPacketPort(logger: Logger, spec: PortSpec): Port {
  const mac = parseMac(spec.mac);
  const lock = { ips: spec.ip === undefined ? [] : [spec.ip.split('/')[0]!], allowedMacs: (spec.security?.allowedMacs ?? []).map(parseMac), unlocked: spec.security?.lock === false };
  if (spec.qemu !== undefined) return openQemuTapPort({ name: spec.name, ifname: spec.ifname, mac, mtu: spec.mtu, logger, ...lock });
  try {
    return PacketPort.open({ name: spec.name, ifname: spec.ifname, mac, mtu: spec.mtu, logger, lock: lock.unlocked ? false : lock });
  } catch (err) {
    throw new PortSetupError(spec.name, (err as Error).message, { cause: err });
  }
}

async function ip(spec: PortSpec, args: string[], what: string): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    const detail = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new PortSetupError(spec.name, `${what}: ip ${args.join(' ')}: ${detail}`, { cause: err });
  }
}
