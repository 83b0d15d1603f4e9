import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { ConfigError } from '../common/errors.ts';
import type { Frame } from '../common/frame.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { softwareOffload } from './offload.ts';
import { offloadNeedsWork } from './virtio-net-hdr.ts';
import { checkVni, decodeVxlan, encodeVxlanHeader, VXLAN_HEADER_BYTES, type VxlanMalformed } from './vxlan-codec.ts';
import { VxlanLink, type VxlanSender } from './vxlan-link.ts';
import { transportError } from './transport.ts';

/**
 * VXLAN (RFC 7348) in userspace: one UDP socket per daemon, one link per
 * remote VTEP (vxlan-link.ts), the deployment's one VNI. vnet daemons, OVS
 * bridges with a VXLAN port and Linux `vxlan` devices share the overlay.
 *
 * VXLAN has no handshake and no authentication, so this is opt-in and for a
 * trusted underlay only (docs/vxlan.md, docs/security.md):
 *
 *   peers    the VTEPs are configured (host id ↔ IP address and UDP port),
 *            never learned: a datagram is accepted only from the address of
 *            a configured VTEP (any source port: Linux and OVS pick the
 *            source port from a hash of the inner flow) and only with the
 *            deployment's VNI. Everything else is counted and dropped
 *            (`VxlanStats`); bad bytes never throw.
 *   MTU      one frame per datagram, never fragmented by us: a frame longer
 *            than `maxFrameBytes` (default 1518: a 1500-byte MTU and a VLAN
 *            tag) is counted and dropped. A GSO super-frame from a TAP port
 *            is segmented in software first. The underlay must carry
 *            maxFrameBytes + 8 (VXLAN) + 8 (UDP) + 20 or 40 (IPv4 / IPv6)
 *            bytes: 1554 over IPv4 for the default.
 *   send     the socket's queue is the link's backlog: above `highWaterBytes`
 *            frames are dropped and counted, like a TCP link's.
 */

export interface VxlanVtep {
  /** The host id its link has (rules, `vnet status`, the traffic matrix name it). */
  peer: string;
  /** An IP literal (IPv4 or IPv6), of the same family as the listen address. */
  host: string;
  port: number;
}

export interface VxlanInit {
  /** The deployment's VXLAN Network Identifier (0…2^24-1). */
  vni: number;
  /** Where the UDP socket binds (an IP literal; port 0: any free port). */
  listen: { host: string; port: number };
  vteps: readonly VxlanVtep[];
  /** Largest Ethernet frame carried (default 1518); larger ones are dropped and counted. */
  maxFrameBytes?: number;
  /** Socket send queue above which frames are dropped (default 4 MiB). */
  highWaterBytes?: number;
}

/** What the endpoint dropped, beyond each link's own counters. */
export interface VxlanStats {
  /** Datagrams from an address that is not a configured VTEP. */
  unknownSource: number;
  /** Datagrams from a VTEP with another VNI. */
  wrongVni: number;
  /** Datagrams that did not decode, by reason. */
  malformed: Record<VxlanMalformed, number>;
  /** Frames not sent because they exceed maxFrameBytes (also in the link's txDropped). */
  oversize: number;
  /** Datagrams the socket failed to send. */
  sendErrors: number;
}

/** The endpoint's drops as (reason, count), one name per counter: what metrics and `vnet status` show. */
export function vxlanDrops(s: Readonly<VxlanStats>): Array<[string, number]> {
  return [
    ['unknown-source', s.unknownSource], ['wrong-vni', s.wrongVni],
    ...Object.entries(s.malformed).map(([why, n]): [string, number] => [`malformed-${why}`, n]),
    ['oversize', s.oversize], ['send-error', s.sendErrors],
  ];
}

export const DEFAULT_VXLAN_MAX_FRAME_BYTES = 1518;
const DEFAULT_VXLAN_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export class VxlanEndpoint implements VxlanSender {
  readonly stats: VxlanStats = { unknownSource: 0, wrongVni: 0, malformed: { short: 0, flags: 0, reserved: 0 }, oversize: 0, sendErrors: 0 };
  readonly vni: number;
  readonly maxFrameBytes: number;
  readonly #socket: Socket;
  readonly #header: Buffer;
  readonly #highWater: number;
  readonly #log: Logger;
  /** Canonical VTEP address → its link. */
  readonly #byAddress = new Map<string, VxlanLink>();
  #closed = false;

  /** Bind the socket and make one link per VTEP. Rejects with ConfigError (bad VNI, address, duplicate VTEP) or TransportError (cannot bind). */
  static async open(components: { logger: Logger }, init: VxlanInit): Promise<VxlanEndpoint> {
    const vni = checkVni(init.vni);
    const family = ipFamily(init.listen.host, 'vxlan.listen.host');
    checkPort(init.listen.port, 'vxlan.listen.port', true);
    const max = init.maxFrameBytes ?? DEFAULT_VXLAN_MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < 64 || max > 65_535 - VXLAN_HEADER_BYTES - 48) {
      throw new ConfigError(`must be an integer from 64 to ${65_535 - VXLAN_HEADER_BYTES - 48}, got ${max}`, { key: 'vxlan.maxFrameBytes' });
    }
    const vteps = checkVteps(init.vteps, family);
    const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6 });
    await bind(socket, init.listen);
    return new VxlanEndpoint(components.logger, socket, vni, max, init.highWaterBytes ?? DEFAULT_VXLAN_HIGH_WATER_BYTES, vteps);
  }

  private constructor(logger: Logger, socket: Socket, vni: number, maxFrameBytes: number, highWater: number, vteps: readonly VxlanVtep[]) {
    this.#log = componentLogger(logger, 'vxlan', { vni });
    this.#socket = socket;
    this.vni = vni;
    this.maxFrameBytes = maxFrameBytes;
    this.#header = encodeVxlanHeader(vni);
    this.#highWater = highWater;
    for (const v of vteps) this.#byAddress.set(v.host, new VxlanLink(v.peer, v.host, v.port, this, this.#log));
    try {
      socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
      socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
    } catch {
      // the kernel's limits (net.core.rmem_max) apply; the defaults still work
    }
    socket.on('message', this.#onMessage);
    socket.on('error', (err) => {
      this.stats.sendErrors++;
      this.#log.warn({ err: err.message }, 'VXLAN socket error');
    });
    this.#log.info({ listen: this.address, vteps: vteps.map((v) => v.peer) }, 'VXLAN endpoint open');
  }

  /** Where the socket is bound (the real port when opened on port 0). */
  get address(): { host: string; port: number } {
    const a = this.#socket.address();
    return { host: a.address, port: a.port };
  }

  /** One link per configured VTEP, open until the endpoint closes. */
  links(): VxlanLink[] {
    return [...this.#byAddress.values()];
  }

  get backlogBytes(): number {
    return this.#closed ? 0 : this.#socket.getSendQueueSize();
  }

  transmit(link: VxlanLink, frame: Frame): void {
    if (frame.offload !== undefined && offloadNeedsWork(frame.offload)) {
      const plain = softwareOffload(frame);
      if (plain === undefined) {
        link.stats.txDropped++;
        return;
      }
      for (const f of plain) this.#sendOne(link, f.data);
      return;
    }
    this.#sendOne(link, frame.data);
  }

  #sendOne(link: VxlanLink, data: Buffer): void {
    if (data.length > this.maxFrameBytes) {
      this.stats.oversize++;
      link.stats.txDropped++;
      return;
    }
    if (this.#closed || this.#socket.getSendQueueSize() > this.#highWater) {
      link.stats.txDropped++;
      return;
    }
    link.stats.txFrames++;
    link.stats.txBytes += data.length;
    this.#socket.send([this.#header, data], link.port, link.address);
  }

  forget(link: VxlanLink): void {
    if (this.#byAddress.get(link.address) === link) this.#byAddress.delete(link.address);
  }

  readonly #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const link = this.#byAddress.get(rinfo.address);
    if (link === undefined) {
      this.stats.unknownSource++;
      return;
    }
    const d = decodeVxlan(msg);
    if (!d.ok) {
      this.stats.malformed[d.reason]++;
      link.stats.decodeErrors++;
      return;
    }
    if (d.vni !== this.vni) {
      this.stats.wrongVni++;
      link.stats.decodeErrors++;
      return;
    }
    link.receive({ data: d.frame, offload: undefined });
  };

  /** Close every link and the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const link of this.links()) await link.close('VXLAN endpoint closed');
    this.#closed = true;
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}

function ipFamily(host: string, key: string): 4 | 6 {
  const family = isIP(host);
  if (family === 0) throw new ConfigError(`must be an IP address (VXLAN peers are never resolved by name), got ${JSON.stringify(host)}`, { key });
  return family as 4 | 6;
}

function checkPort(port: number, key: string, zeroOk: boolean): void {
  if (!Number.isInteger(port) || port < (zeroOk ? 0 : 1) || port > 65_535) throw new ConfigError(`must be a UDP port, got ${JSON.stringify(port)}`, { key });
}

/** The VTEPs with canonical addresses; a ConfigError for a bad address, another family, or a peer or address given twice. */
function checkVteps(vteps: readonly VxlanVtep[], family: 4 | 6): VxlanVtep[] {
  const peers = new Set<string>();
  const addresses = new Set<string>();
  return vteps.map((v, i) => {
    const key = `vxlan.vteps[${i}]`;
    if (typeof v.peer !== 'string' || v.peer === '') throw new ConfigError('needs a peer host id', { key });
    if (ipFamily(v.host, `${key}.host`) !== family) throw new ConfigError(`${v.host} is not of the listen address's family (IPv${family})`, { key: `${key}.host` });
    checkPort(v.port, `${key}.port`, false);
    const host = canonicalIp(v.host);
    if (peers.has(v.peer)) throw new ConfigError(`peer ${v.peer} is given twice`, { key });
    if (addresses.has(host)) throw new ConfigError(`address ${host} is given twice`, { key });
    peers.add(v.peer);
    addresses.add(host);
    return { peer: v.peer, host, port: v.port };
  });
}

/** An IP literal as the socket reports a source address (IPv6 compressed, lower case). */
function canonicalIp(host: string): string {
  return isIP(host) === 6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
}

function bind(socket: Socket, at: { host: string; port: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(transportError(`VXLAN cannot bind ${at.host}:${at.port}`, err));
    };
    socket.once('error', onError);
    socket.bind(at.port, at.host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}
