/**
 * What a packet-socket port (packet-port.ts) checks of every frame it reads,
 * before the frame is the daemon's: pure functions of the bytes, total (any
 * input gives a verdict, nothing throws).
 *
 *   size         `checkPacketSize(captured, wire, max)`: a frame shorter than an
 *                Ethernet header is a runt; one longer on the wire than the port
 *                takes (its MTU + 18; the socket truncated it to its slot) is too
 *                large. Both are counted drops with a PacketFrameError.
 *   address lock `AddressLock.check(frame)`: the Ethernet source is one of the
 *                VM's MACs; with addresses given, an IPv4 packet's source, an
 *                ARP sender (MAC and IP) and an IPv6 packet's source are the
 *                VM's own (IPv4 0.0.0.0 for DHCP, IPv6 :: for duplicate address
 *                detection and fe80::/10 link-local are allowed too). One
 *                802.1Q tag is looked through. A header too short to read is
 *                malformed. A refusal is a counted drop with a PacketSourceError.
 *
 * Why the port checks this itself when the daemon's port security
 * (port-security.ts) also locks the source MAC: a packet socket hears
 * whatever arrives on its interface, which need not be one VM's TAP device
 * (a veth into a namespace, a bridge's port): the lock keeps the overlay from
 * taking in anyone else's frames, and adds the IP checks the daemon does not make.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { formatMac, isMulticastMac, srcMacOf, type Mac } from '../common/mac.ts';
import { MIN_FRAME_BYTES } from '../common/frame.ts';

export type PacketSizeVerdict = 'ok' | 'runt' | 'too-large';

/** `captured` bytes were read of a frame `wire` bytes long; the port takes at most `max`. */
export function checkPacketSize(captured: number, wire: number, max: number): PacketSizeVerdict {
  if (wire > max || captured < wire) return 'too-large';
  if (wire < MIN_FRAME_BYTES) return 'runt';
  return 'ok';
}

export type LockVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'mac' | 'ip' | 'malformed'; readonly detail: string };

const OK: LockVerdict = Object.freeze({ ok: true });
const ETH_IPV4 = 0x0800;
const ETH_ARP = 0x0806;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = 0x8100;

export interface AddressLockInit {
  /** The MACs the VM may send from (its own first). */
  readonly macs: readonly Mac[];
  /** The VM's IP addresses (IPv4 or IPv6, no prefix); empty: IP sources are not checked. */
  readonly ips: readonly string[];
}

export class AddressLock {
  readonly #macs: ReadonlySet<Mac>;
  readonly #v4: ReadonlySet<number>;
  readonly #v6: BlockList | undefined;

  /** Throws RangeError for an address that is neither IPv4 nor IPv6. */
  constructor(init: AddressLockInit) {
    this.#macs = new Set(init.macs);
    const v4 = new Set<number>();
    let v6: BlockList | undefined;
    for (const ip of init.ips) {
      if (isIPv4(ip)) v4.add(ipv4Number(ip));
      else if (isIPv6(ip)) (v6 ??= new BlockList()).addAddress(ip, 'ipv6');
      else throw new RangeError(`not an IP address: ${JSON.stringify(ip)}`);
    }
    this.#v4 = v4;
    this.#v6 = v6;
  }

  /** Whether IP sources are checked (some address was given). */
  get checksIp(): boolean {
    return this.#v4.size > 0 || this.#v6 !== undefined;
  }

  /** The verdict on a frame the VM sent (at least an Ethernet header long). */
  check(frame: Uint8Array): LockVerdict {
    if (frame.length < MIN_FRAME_BYTES) return { ok: false, reason: 'malformed', detail: `${frame.length}-byte frame` };
    const src = srcMacOf(frame);
    if (isMulticastMac(src) || !this.#macs.has(src)) return { ok: false, reason: 'mac', detail: `source MAC ${formatMac(src)}` };
    if (!this.checksIp) return OK;
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    let at = 12;
    let type = view.getUint16(at);
    if (type === ETH_VLAN) {
      if (frame.length < 18) return { ok: false, reason: 'malformed', detail: 'VLAN tag cut short' };
      at += 4;
      type = view.getUint16(at);
    }
    const l3 = at + 2;
    if (type === ETH_IPV4) return this.#ipv4(view, l3);
    if (type === ETH_ARP) return this.#arp(view, l3, src);
    if (type === ETH_IPV6) return this.#ipv6(frame, l3);
    return OK;
  }

  #ipv4(view: DataView, l3: number): LockVerdict {
    if (view.byteLength < l3 + 20) return { ok: false, reason: 'malformed', detail: 'IPv4 header cut short' };
    const src = view.getUint32(l3 + 12);
    if (src === 0 || this.#v4.has(src)) return OK;
    return { ok: false, reason: 'ip', detail: `IPv4 source ${ipv4Text(src)}` };
  }

  #arp(view: DataView, l3: number, src: Mac): LockVerdict {
    // Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4; sender MAC at 8, sender IP at 14.
    if (view.byteLength < l3 + 28) return { ok: false, reason: 'malformed', detail: 'ARP packet cut short' };
    if (view.getUint16(l3) !== 1 || view.getUint16(l3 + 2) !== ETH_IPV4 || view.getUint8(l3 + 4) !== 6 || view.getUint8(l3 + 5) !== 4) return OK;
    const sha = view.getUint16(l3 + 8) * 2 ** 32 + view.getUint32(l3 + 10);
    if (sha !== src) return { ok: false, reason: 'mac', detail: `ARP sender MAC ${formatMac(sha)} on a frame from ${formatMac(src)}` };
    const spa = view.getUint32(l3 + 14);
    if (spa === 0 || this.#v4.has(spa)) return OK;
    return { ok: false, reason: 'ip', detail: `ARP sender ${ipv4Text(spa)}` };
  }

  #ipv6(frame: Uint8Array, l3: number): LockVerdict {
    if (frame.length < l3 + 40) return { ok: false, reason: 'malformed', detail: 'IPv6 header cut short' };
    const s = frame.subarray(l3 + 8, l3 + 24);
    if (s.every((b) => b === 0) || (s[0] === 0xfe && (s[1]! & 0xc0) === 0x80)) return OK;
    const text = Array.from({ length: 8 }, (_, i) => ((s[2 * i]! << 8) | s[2 * i + 1]!).toString(16)).join(':');
    if (this.#v6?.check(text, 'ipv6') === true) return OK;
    return { ok: false, reason: 'ip', detail: `IPv6 source ${text}` };
  }
}

function ipv4Number(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function ipv4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
